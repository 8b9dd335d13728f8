//! The node: read a line, address it, route it, dispatch it inside the
//! sidecar's span, write the reply; fire timers between lines and while
//! waiting for input; flush output only when about to wait.

use crate::codec::{self, Body, Head, Incoming, Line};
use crate::config::Config;
use crate::ctx::{Calls, Ctx, Due, Request, RpcCallback, RpcError};
use crate::error::{Error, ErrorCode};
use crate::input::{Input, Next};
use crate::registry::{Handler, Registry};
use crate::sidecar::{self, Server};
use crate::state::{State, OUT_HIGH_WATER};
use crate::stores::{Processor, StoreLimits, TraceStore};
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracer_core::otlp::{ExportStats, Pipeline};
use tracer_core::{attach, global, LogBridge, SpanContext, Status, Tracer};

/// The node runtime.
pub struct Node {
    registry: Registry,
    state: State,
    calls: Calls,
}

#[derive(Deserialize)]
struct Init {
    node_id: String,
    #[serde(default)]
    node_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "init_ok")]
struct InitOk {}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

/// Where a message's reply goes, and what its body asks.
struct Addressed<'l> {
    reply_src: Cow<'l, str>,
    reply_dest: Cow<'l, str>,
    msg_id: Option<u64>,
    msg_type: Cow<'l, str>,
    in_reply_to: Option<u64>,
}

/// Where a message goes once addressed.
enum Route {
    /// Nothing more to do (answered, or a duplicate).
    Done,
    /// A handler serves it.
    Handler(&'static Handler),
}

impl Node {
    /// A node serving the given handlers. Fails only when an export file
    /// cannot be opened.
    pub fn new(registry: Registry, config: Config) -> Result<Self, String> {
        let traces = Arc::new(Mutex::new(TraceStore::new(StoreLimits {
            max_traces: config.max_traces,
            max_spans_per_trace: config.max_spans_per_trace,
            max_bytes: config.trace_bytes(),
        })));
        let pipeline = Pipeline::from_config(&config.export).map_err(|e| e.to_string())?;
        // One pipeline: the store keeps user spans, the export gets all.
        let tracer = Tracer::new(
            config.export.sampler.clone(),
            (Processor(traces.clone()), pipeline.span_processor()),
        );
        Ok(Node {
            registry,
            state: State::new(config, tracer, traces, pipeline),
            calls: Calls::new(),
        })
    }

    /// Delivers what the export holds, until the flush deadline (which
    /// bounds the whole exit, a request in flight included); reports what
    /// was exported and dropped on stderr. Called at end of input.
    pub fn shutdown(&mut self) -> Vec<(&'static str, ExportStats)> {
        let deadline = Instant::now() + self.state.config.export.flush_timeout;
        let out = self.state.pipeline.shutdown(deadline);
        for (what, st) in &out {
            eprintln!(
                "tracer-node: export of {what}: {} exported, {} dropped, {} retries",
                st.exported, st.dropped, st.retries
            );
        }
        out
    }

    /// Makes this node's tracer the process-wide one (for `#[traced]`) and
    /// bridges the `log` crate into its log pipeline (the store and the
    /// export). Call once, in `main`.
    pub fn install_globals(&self) {
        if global::set_tracer(self.state.tracer.clone()).is_err() {
            eprintln!(
                "tracer-node: a global tracer was already installed; #[traced] spans go there"
            );
        }
        let logs = (
            Processor(self.state.logs.clone()),
            self.state
                .pipeline
                .logs
                .as_ref()
                .map(|l| l.processor.clone()),
        );
        let bridge = LogBridge::new(logs, "tracer-node", log::LevelFilter::Info);
        if bridge.install().is_err() {
            eprintln!("tracer-node: a logger was already installed; log records are not stored");
        }
    }

    /// Serves lines from `input` until it closes, writing replies to
    /// `output`; then fails the RPCs in flight at once (no reply can come),
    /// runs the timers due within the flush timeout, and delivers what the
    /// export holds.
    pub fn run<R: Read + Send + 'static, W: Write>(
        &mut self,
        input: R,
        mut output: W,
    ) -> io::Result<()> {
        // Read directly (fastest) until a timer must be waited for together
        // with input; then hand the reader to a thread of its own.
        let mut direct = Some(BufReader::with_capacity(64 << 10, input));
        let mut threaded: Option<Input> = None;
        let mut line = Vec::new();
        loop {
            let deadline = self.calls.timers.next_deadline();
            let max = self.state.config.max_line;
            if let Some(reader) = direct.as_mut() {
                if deadline.is_some() && reader.buffer().is_empty() {
                    let reader = direct.take().expect("direct reader");
                    threaded = Some(Input::spawn(reader));
                }
            }
            if let Some(reader) = direct.as_mut() {
                // A whole line already in the reader's buffer is handled
                // where it lies, without a copy.
                let buf = reader.buffer();
                if let Some(i) = memchr::memchr(b'\n', buf).filter(|&i| i <= max) {
                    let l = &buf[..i];
                    self.handle_line(l.strip_suffix(b"\r").unwrap_or(l));
                    reader.consume(i + 1);
                    self.fire_timers();
                    self.state.pipeline.hold_back();
                    if self.state.out.len() >= OUT_HIGH_WATER {
                        self.flush(&mut output)?;
                    }
                    continue;
                }
            }
            let next = if let Some(reader) = direct.as_mut() {
                // About to wait for input: nothing may sit in a buffer meanwhile.
                if reader.buffer().is_empty() && !self.state.out.is_empty() {
                    self.flush(&mut output)?;
                }
                match codec::read_line(reader, &mut line, max)? {
                    Line::Complete => Next::Line,
                    Line::TooLong(n) => Next::TooLong(n),
                    Line::Eof => Next::Eof,
                }
            } else {
                let input = threaded.as_mut().expect("threaded reader");
                let out = &mut self.state.out;
                let next = input.next(max, deadline, || {
                    if !out.is_empty() {
                        output.write_all(out)?;
                        output.flush()?;
                        out.clear();
                    }
                    Ok(())
                })?;
                if next == Next::Line {
                    std::mem::swap(&mut line, &mut input.line);
                }
                next
            };
            match next {
                Next::Eof => break,
                Next::Line => self.handle_line(&line),
                Next::Timeout => {}
                Next::TooLong(n) => {
                    let e = Error::malformed(format!(
                        "line of {n} bytes exceeds the limit of {} bytes (TRACER_MAX_LINE); skipped",
                        self.state.config.max_line
                    ));
                    self.error_unaddressed(&e);
                }
            }
            self.fire_timers();
            self.state.pipeline.hold_back();
            if self.state.out.len() >= OUT_HIGH_WATER {
                self.flush(&mut output)?;
            }
        }
        self.end_of_input();
        // Timers due within the flush timeout still fire (a collector's
        // quiet period, say); later ones are dropped with the node.
        let until = Instant::now() + self.state.config.export.flush_timeout;
        while let Some(d) = self.calls.timers.next_deadline().filter(|d| *d <= until) {
            self.flush(&mut output)?;
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
            self.fire_timers();
        }
        self.flush(&mut output)?;
        self.shutdown();
        Ok(())
    }

    /// What `run` does for each input line: handle it, then fire the timers
    /// that are due; returns when the next timer is due. Output stays in
    /// the node until [`write_output`](Self::write_output). For embedding
    /// the node in another loop (and for benchmarks).
    pub fn step(&mut self, line: &[u8]) -> Option<Instant> {
        self.handle_line(line);
        self.fire_timers();
        self.state.pipeline.hold_back();
        self.calls.timers.next_deadline()
    }

    /// Writes out (and clears) the output produced so far.
    pub fn write_output<W: Write>(&mut self, output: &mut W) -> io::Result<()> {
        self.flush(output)
    }

    /// Input ended: no reply can arrive, so every RPC in flight fails now
    /// (its callback runs with a timeout error), and new ones fail at once.
    fn end_of_input(&mut self) {
        self.calls.closed = true;
        let mut ids: Vec<u64> = self.calls.rpcs.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.rpc_timed_out(id);
        }
    }

    /// Runs what is due: RPC deadlines (their callbacks get a timeout) and
    /// plugin timers.
    fn fire_timers(&mut self) {
        if self.calls.timers.len() == 0 {
            return; // no clock read on a line when nothing is pending
        }
        let now = Instant::now();
        while let Some(due) = self.calls.timers.pop_due(now) {
            match due {
                Due::Rpc(id) => self.rpc_timed_out(id),
                Due::Call(callback) => {
                    self.call_back(None, None, |ctx| callback(ctx));
                }
            }
        }
    }

    fn rpc_timed_out(&mut self, id: u64) {
        let Some(p) = self.calls.rpcs.remove(&id) else {
            return;
        };
        self.calls.timers.cancel(p.timer);
        let err = RpcError::Timeout {
            dest: p.dest,
            after: p.sent.elapsed(),
        };
        let mut span = p.span;
        span.set_status(Status::Error(Cow::Owned(err.to_string())));
        let client = span.context().clone();
        drop(span);
        self.rpc_done(p.callback, client, None, Err(err));
    }

    fn rpc_done(
        &mut self,
        callback: RpcCallback,
        client: SpanContext,
        src: Option<&str>,
        reply: Result<&Body<'_>, RpcError>,
    ) {
        self.call_back(Some(client), src, |ctx| callback(ctx, reply));
    }

    /// Runs a callback (an RPC's or a timer's) with a `Ctx` of its own,
    /// whose `incoming()` is `client` (an RPC's ended CLIENT span); a panic
    /// in it is reported on stderr (there is no request to answer).
    fn call_back(
        &mut self,
        client: Option<SpanContext>,
        src: Option<&str>,
        f: impl FnOnce(&mut Ctx<'_>),
    ) {
        let me = self.state.own_id().to_owned();
        let _current = client.clone().map(attach);
        let mut ctx = Ctx {
            state: &mut self.state,
            calls: &mut self.calls,
            req: Request {
                msg_type: "callback",
                msg_id: None,
                src,
                dest: Some(&me),
                reply_src: &me,
                reply_dest: src.unwrap_or("client"),
                extra: &[],
                always_reply: false,
            },
            span: None,
            incoming: client,
            replied: true,
        };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| f(&mut ctx))) {
            eprintln!(
                "tracer-node: a callback panicked: {}",
                panic_text(&*payload)
            );
        }
    }

    fn flush<W: Write>(&mut self, output: &mut W) -> io::Result<()> {
        output.write_all(&self.state.out)?;
        output.flush()?;
        self.state.out.clear();
        Ok(())
    }

    /// An error for a line whose addressing could not be read.
    fn error_unaddressed(&mut self, e: &Error) {
        let src = self.state.own_id().to_owned();
        let dest = self.state.default_dest().to_owned();
        self.state.write_error(&src, &dest, None, e);
    }

    /// An error (12) for a line the parser refused, addressed with what a
    /// tolerant scan could read of it: from its `dest` (else the node) to
    /// its `src` (else the last `src` seen, else `"client"`), in reply to
    /// its `msg_id` when one was read. A refused line does not change where
    /// later bare bodies are answered.
    fn error_refused(&mut self, r: codec::Refused) {
        let src = r.dest.unwrap_or_else(|| self.state.own_id().to_owned());
        let dest = r
            .src
            .unwrap_or_else(|| self.state.default_dest().to_owned());
        self.state
            .write_error(&src, &dest, r.msg_id, &Error::malformed(r.text));
    }

    /// Handles one line. Never panics on client input; a handler's panic is
    /// caught and answered with error 13.
    pub fn handle_line(&mut self, line: &[u8]) {
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(e) => return self.error_refused(codec::refuse_utf8(line, e.valid_up_to())),
        };
        if text.trim().is_empty() {
            return; // blank lines separate nothing and ask nothing
        }
        // The one parse of the line: envelope, body members, raw values.
        let msg = match codec::parse_line(text) {
            Ok(m) => m,
            Err(refused) => return self.error_refused(refused),
        };
        let body = match &msg.body {
            Ok(b) => b,
            Err(why) => {
                let (src, dest) = self.reply_ends(&msg);
                return self
                    .state
                    .write_error(&src, &dest, None, &Error::malformed(why.clone()));
            }
        };
        let head = Head::of(body);
        let a = match self.address(&msg, &head) {
            Ok(a) => a,
            Err((src, dest, msg_id, e)) => return self.state.write_error(&src, &dest, msg_id, &e),
        };
        match self.route(&msg, body, &a) {
            Route::Done => {}
            Route::Handler(h) => self.dispatch(h, &msg, body, &head, &a),
        }
    }

    /// Who answers (the request's `dest`, else the node) and to whom (the
    /// request's `src`, else the last `src` seen, else `"client"`).
    fn reply_ends<'l>(&mut self, msg: &Incoming<'l>) -> (Cow<'l, str>, Cow<'l, str>) {
        let src = match &msg.dest {
            Some(d) => d.0.clone(),
            None => Cow::Owned(self.state.own_id().to_owned()),
        };
        let dest = match &msg.src {
            Some(s) => {
                if self.state.last_src.as_deref() != Some(&*s.0) {
                    self.state.last_src = Some(s.0.to_string());
                }
                s.0.clone()
            }
            None => Cow::Owned(self.state.default_dest().to_owned()),
        };
        (src, dest)
    }

    /// Addressing: the reply's ends, `msg_id`, `type`, `in_reply_to`.
    #[allow(clippy::type_complexity)]
    fn address<'l>(
        &mut self,
        msg: &Incoming<'l>,
        head: &Head<'l>,
    ) -> Result<Addressed<'l>, (Cow<'l, str>, Cow<'l, str>, Option<u64>, Error)> {
        let (reply_src, reply_dest) = self.reply_ends(msg);
        let msg_id = match head.msg_id.map(codec::decode_member::<u64>) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                let e = Error::bad_field("msg_id", "must be a non-negative integer");
                return Err((reply_src, reply_dest, None, e));
            }
        };
        let msg_type = match head.msg_type.map(codec::decode_str) {
            Some(Ok(t)) => t,
            None => {
                let e = Error::malformed("missing field `type`");
                return Err((reply_src, reply_dest, msg_id, e));
            }
            Some(Err(_)) => {
                let e = Error::bad_field("type", "must be a string");
                return Err((reply_src, reply_dest, msg_id, e));
            }
        };
        let in_reply_to = head
            .in_reply_to
            .and_then(|r| codec::decode_member::<u64>(r).ok());
        Ok(Addressed {
            reply_src,
            reply_dest,
            msg_id,
            msg_type,
            in_reply_to,
        })
    }

    /// Routing: `init` (the runtime's own), a reply to an RPC of ours (its
    /// callback), a peer's duplicate (dropped), else a handler.
    fn route(&mut self, msg: &Incoming<'_>, body: &Body<'_>, a: &Addressed<'_>) -> Route {
        if a.msg_type == "init" {
            self.init(body, a);
            return Route::Done;
        }
        // A reply counts only from the node the request went to: another
        // node answering our msg_id is not trusted with that RPC (it stays
        // pending for the real answer).
        let src = msg.src.as_ref().map(|s| &*s.0);
        if let Some(id) = a.in_reply_to {
            match self.calls.rpcs.get(&id) {
                Some(p) if Some(&*p.dest) != src => {
                    self.state
                        .count_drop("runtime.replies_from_another_node", 1);
                    return Route::Done;
                }
                Some(_) => {
                    let p = self.calls.rpcs.remove(&id).expect("just found");
                    self.calls.timers.cancel(p.timer);
                    let mut span = p.span;
                    if a.msg_type == "error" {
                        span.set_status(Status::Error(Cow::Borrowed(
                            "the peer answered with an error",
                        )));
                    }
                    let client = span.context().clone();
                    drop(span);
                    self.rpc_done(p.callback, client, src, Ok(body));
                    return Route::Done;
                }
                None => {}
            }
        }
        // A peer's request is handled once, however often it arrives.
        if let (Some(id), Some(src)) = (a.msg_id, msg.src.as_ref()) {
            if self.state.is_peer(&src.0) {
                let key = (src.0.to_string(), id);
                if self.state.seen.contains_key(&key) {
                    self.state.count_drop("runtime.peer_duplicates", 1);
                    return Route::Done;
                }
                self.state.seen.insert(key, ());
            }
        }
        match self.registry.get(&a.msg_type) {
            Some(h) => Route::Handler(h),
            None if a.in_reply_to.is_some() || a.msg_type == "error" => {
                // Never answer a reply: two nodes would bounce errors forever.
                eprintln!("tracer-node: dropped an unexpected {:?} reply", a.msg_type);
                self.state.count_drop("runtime.unexpected_replies", 1);
                Route::Done
            }
            None => {
                let e = Error::not_supported(format!("unsupported message type {:?}", a.msg_type));
                self.state
                    .write_error(&a.reply_src, &a.reply_dest, a.msg_id, &e);
                Route::Done
            }
        }
    }

    /// Dispatch: the sidecar's SERVER span, the handler, its errors.
    fn dispatch(
        &mut self,
        handler: &'static Handler,
        msg: &Incoming<'_>,
        body: &Body<'_>,
        head: &Head<'_>,
        a: &Addressed<'_>,
    ) {
        let incoming = sidecar::incoming_context(head).ok();
        let span = (!handler.own_span).then(|| {
            let rate = msg
                .extra
                .iter()
                .find(|(k, _)| k.0 == "sampling_rate")
                .map(|(_, v)| *v);
            sidecar::server_span(
                &self.state.tracer,
                Server {
                    name: handler.msg_type,
                    service: &a.reply_src,
                    parent: incoming.clone(),
                    own_root: true,
                    // A bad rate is the handler's to report; the span
                    // just goes without it.
                    rate: sidecar::sampling_rate(rate).ok().flatten(),
                    telemetry_exported: self.state.pipeline.spans.is_some(),
                },
            )
        });
        let _current = span.as_ref().map(|s| attach(s.context().clone()));
        let mut ctx = Ctx {
            state: &mut self.state,
            calls: &mut self.calls,
            req: Request {
                msg_type: handler.msg_type,
                msg_id: a.msg_id,
                src: msg.src.as_ref().map(|s| &*s.0),
                dest: msg.dest.as_ref().map(|s| &*s.0),
                reply_src: &a.reply_src,
                reply_dest: &a.reply_dest,
                extra: &msg.extra,
                always_reply: handler.always_reply,
            },
            span,
            incoming,
            replied: false,
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (handler.call)(&mut ctx, body)));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(payload) => Some(Error::new(
                ErrorCode::Crash,
                format!(
                    "handler {} panicked: {}",
                    handler.name,
                    panic_text(&*payload)
                ),
            )),
        };
        if let Some(e) = error {
            if let Some(span) = ctx.span.as_mut() {
                span.set_status(Status::Error(Cow::Owned(e.text.clone())));
            }
            if a.in_reply_to.is_some() {
                // Never answer a reply, not even with an error.
                eprintln!("tracer-node: a {:?} reply failed: {}", a.msg_type, e.text);
            } else if !ctx.replied {
                ctx.replied = true;
                ctx.state
                    .write_error(&a.reply_src, &a.reply_dest, a.msg_id, &e);
            }
        }
    }

    fn init(&mut self, body: &Body<'_>, a: &Addressed<'_>) {
        match body.decode::<Init>() {
            Ok(init) => {
                self.state.node_id = Some(init.node_id);
                self.state.node_ids = init.node_ids;
                if a.msg_id.is_some() {
                    self.state
                        .write_reply(&a.reply_src, &a.reply_dest, &InitOk {}, a.msg_id);
                }
            }
            Err(e) => self
                .state
                .write_error(&a.reply_src, &a.reply_dest, a.msg_id, &e),
        }
    }
}
