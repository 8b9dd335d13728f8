#!/usr/bin/env python3
"""An HTTP test service for the W3C trace-context test suite, backed by
tracer-node's `proxy_request`.

The suite (github.com/w3c/trace-context, `test/`) POSTs a JSON array of
`{url, arguments}` to this service. For each incoming request the adapter
asks the node what a sidecar does with it: `proxy_request {headers,
outbound}` with the request's headers as `[name, value]` pairs (repeats and
casing kept) and one outbound call per array element. It then POSTs each
element's `arguments` to its `url` with the headers the node answered for
that call (`outbound[i]`), and answers 200.

Usage: adapter.py PORT [TRACER_NODE_BINARY]
Then, beside a checkout of the suite:
    SERVICE_ENDPOINT=http://127.0.0.1:PORT/test STRICT_LEVEL=2 SPEC_LEVEL=2 python3 test.py
"""

import asyncio
import json
import sys

from aiohttp import ClientSession, web


class Node:
    """One tracer-node process; requests go one at a time over its pipes."""

    def __init__(self, binary):
        self.binary = binary
        self.proc = None
        self.lock = asyncio.Lock()
        self.msg_id = 0

    async def start(self):
        self.proc = await asyncio.create_subprocess_exec(
            self.binary,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )

    async def call(self, body):
        async with self.lock:
            self.msg_id += 1
            body = dict(body, msg_id=self.msg_id)
            line = json.dumps({"src": "w3c", "dest": "service", "body": body})
            self.proc.stdin.write(line.encode() + b"\n")
            await self.proc.stdin.drain()
            while True:
                out = await self.proc.stdout.readline()
                if not out:
                    raise RuntimeError("tracer-node exited")
                reply = json.loads(out)["body"]
                if reply.get("in_reply_to") == self.msg_id:
                    return reply


async def handle(request, node, session):
    calls = await request.json()
    headers = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers]
    reply = await node.call(
        {"type": "proxy_request", "headers": headers, "outbound": max(1, len(calls))}
    )
    if reply["type"] != "proxy_forward":
        return web.Response(status=500, text=json.dumps(reply))
    for call, forward in zip(calls, reply["outbound"]):
        async with session.post(call["url"], json=call["arguments"], headers=forward) as r:
            await r.read()
    return web.Response(status=200)


async def main():
    port = int(sys.argv[1])
    node = Node(sys.argv[2] if len(sys.argv) > 2 else "tracer-node")
    await node.start()
    session = ClientSession()
    app = web.Application()
    app.router.add_post("/test", lambda r: handle(r, node, session))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"adapter listening on http://127.0.0.1:{port}/test", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
