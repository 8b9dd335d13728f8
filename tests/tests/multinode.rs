//! Multi-node suites: the call chain n1 -> n2 -> n3 travels as real
//! `hop` / `hop_ok` messages over the test network (`tests::net`), with
//! faults: duplicates, a partition, a killed node, delays under load.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tests::net::{Net, Routed};
use tests::{assert_keys, is_span_id, trace_id_bits, uuid_v4_re};

const CHAIN: [&str; 3] = ["n1", "n2", "n3"];
/// How late past `timeout_ms` a degraded reply may come.
const MARGIN: Duration = Duration::from_millis(1500);

/// Panics with the message and the network's report.
macro_rules! check {
    ($net:expr, $cond:expr, $($arg:tt)+) => {
        if !$cond {
            panic!("{}\n{}", format!($($arg)+), $net.report());
        }
    };
}

/// Unwraps a checker's result, failing with the network's report.
#[track_caller]
fn ok<T>(net: &Net, r: Result<T, String>) -> T {
    r.unwrap_or_else(|e| panic!("{e}\n{}", net.report()))
}

/// Three nodes, the chain n1 -> n2 -> n3 set on the entry node n1.
fn chain_net() -> Net {
    let net = Net::start(3);
    let reply = net.request(
        "admin",
        "n1",
        json!({"type": "instrument_service", "services": CHAIN}),
    );
    check!(
        net,
        reply["type"] == "instrument_service_ok",
        "instrument_service on n1 answered {reply}"
    );
    net
}

fn http(path: &str, timeout_ms: Option<u64>) -> Value {
    let mut body = json!({"type": "http_request", "path": path, "method": "GET"});
    if let Some(t) = timeout_ms {
        body["timeout_ms"] = json!(t);
    }
    body
}

fn bits(net: &Net, id: &str) -> String {
    trace_id_bits(id).unwrap_or_else(|| panic!("{id:?} is not a trace id\n{}", net.report()))
}

/// A complete trace_complete for the whole chain; returns the trace id.
fn check_complete(body: &Value) -> Result<String, String> {
    if body["type"] != "trace_complete" {
        return Err(format!("expected trace_complete, got {body}"));
    }
    let keys: HashSet<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let want: HashSet<&str> = ["type", "trace_id", "services", "span_count", "in_reply_to"].into();
    if keys != want {
        return Err(format!(
            "trace_complete keys {keys:?}, expected {want:?}: {body}"
        ));
    }
    if body["services"] != json!(CHAIN) {
        return Err(format!(
            "services: expected {:?}, got {} in {body}",
            CHAIN, body["services"]
        ));
    }
    if body["span_count"] != 3 {
        return Err(format!(
            "span_count: expected 3, got {} in {body}",
            body["span_count"]
        ));
    }
    let tid = body["trace_id"].as_str().unwrap_or_default();
    if !uuid_v4_re().is_match(tid) {
        return Err(format!("trace_id {tid:?} is not a UUID v4: {body}"));
    }
    Ok(tid.to_string())
}

fn get_trace(net: &Net, node: &str, tid: &str) -> Value {
    net.request(
        "c-query",
        node,
        json!({"type": "get_trace", "trace_id": tid}),
    )
}

fn spans_of(trace: &Value) -> Result<&Vec<Value>, String> {
    if trace["type"] != "trace" {
        return Err(format!("expected a trace, got {trace}"));
    }
    trace["spans"]
        .as_array()
        .ok_or_else(|| format!("trace without a spans array: {trace}"))
}

fn summary(spans: &[Value]) -> String {
    spans
        .iter()
        .map(|s| {
            format!(
                "{}:{}<-{} {}",
                s["service"].as_str().unwrap_or("?"),
                s["span_id"].as_str().unwrap_or("?"),
                s["parent_span_id"].as_str().unwrap_or("null"),
                s["status"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The trace on the entry node: the SERVER span of each of n1, n2, n3 and,
/// between two of them, the CLIENT span of the hop message (the sidecar
/// records every message a node sends): n1 the root, then for k = 1, 2 a
/// CLIENT span child of CHAIN[k-1]'s span and CHAIN[k]'s span child of that
/// CLIENT span. 5 spans, all of trace `tid`; the SERVER spans named
/// `GET path`. With `missing = Some(k)`, the span of CHAIN[k] must be the
/// ERROR span for the hop that did not answer. Returns the SERVER span ids
/// in chain order and each one's parent (the CLIENT span for k > 0).
fn check_chain(
    trace: &Value,
    tid: &str,
    path: &str,
    missing: Option<usize>,
) -> Result<(Vec<String>, Vec<Option<String>>), String> {
    let spans = spans_of(trace)?;
    let ctx = || format!("trace {tid} ({path}): [{}]", summary(spans));
    if trace_id_bits(trace["trace_id"].as_str().unwrap_or_default()) != trace_id_bits(tid) {
        return Err(format!(
            "get_trace answered for trace {} instead of {tid}",
            trace["trace_id"]
        ));
    }
    if spans.len() != 5 {
        return Err(format!(
            "expected exactly 5 spans (3 SERVER, 2 CLIENT), got {}: {}",
            spans.len(),
            ctx()
        ));
    }
    let mut seen = HashSet::new();
    for s in spans {
        let id = s["span_id"].as_str().unwrap_or_default();
        if !is_span_id(id) {
            return Err(format!("bad span id {id:?}: {}", ctx()));
        }
        if !seen.insert(id) {
            return Err(format!("span id {id} appears twice: {}", ctx()));
        }
    }
    let child_of = |parent: &Value, kind: &str| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| s["parent_span_id"] == *parent && s["kind"] == kind)
            .collect()
    };
    let mut ids: Vec<String> = Vec::new();
    let mut parents: Vec<Option<String>> = Vec::new();
    for (k, service) in CHAIN.iter().enumerate() {
        let parent = if k == 0 {
            Value::Null
        } else {
            let clients = child_of(&json!(ids[k - 1]), "CLIENT");
            if clients.len() != 1 {
                return Err(format!(
                    "expected one CLIENT span (the hop to {service}) under {}'s span, found {}: {}",
                    CHAIN[k - 1],
                    clients.len(),
                    ctx()
                ));
            }
            clients[0]["span_id"].clone()
        };
        let children = child_of(&parent, "SERVER");
        if children.len() != 1 {
            return Err(format!(
                "expected exactly one SERVER span with parent {parent} (the span of {service}), found {}: {}",
                children.len(),
                ctx()
            ));
        }
        let s = children[0];
        if s["service"] != *service {
            return Err(format!(
                "the span with parent {parent} should be {service}'s, it is {}'s: {}",
                s["service"],
                ctx()
            ));
        }
        if missing == Some(k) {
            if s["status"] != "ERROR" {
                return Err(format!(
                    "{service} did not answer: its span must have status ERROR: {}",
                    ctx()
                ));
            }
            if s["status_message"].as_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "the ERROR span for {service} has no status_message: {s}"
                ));
            }
        } else {
            if s["status"] == "ERROR" {
                return Err(format!("{service}'s span is an ERROR span: {s}"));
            }
            let name = format!("GET {path}");
            if s["name"] != name.as_str() {
                return Err(format!(
                    "{service}'s span is named {}, expected {name:?}: {}",
                    s["name"],
                    ctx()
                ));
            }
        }
        ids.push(s["span_id"].as_str().unwrap_or_default().to_string());
        parents.push(parent.as_str().map(str::to_owned));
    }
    Ok((ids, parents))
}

/// `search_logs {trace_id}` on n1: exactly one log per hop.
fn check_logs(net: &Net, tid: &str, path: &str) -> Result<(), String> {
    let found = net.request(
        "c-query",
        "n1",
        json!({"type": "search_logs", "trace_id": tid}),
    );
    if found["type"] != "search_results" {
        return Err(format!("search_logs answered {found}"));
    }
    let logs = found["logs"].as_array().cloned().unwrap_or_default();
    let mut services: Vec<&str> = logs
        .iter()
        .map(|l| l["service"].as_str().unwrap_or("?"))
        .collect();
    services.sort_unstable();
    if services != CHAIN {
        return Err(format!(
            "search_logs on n1 for {tid}: expected one log each for n1, n2, n3, got services {services:?}: {found}"
        ));
    }
    for l in &logs {
        if trace_id_bits(l["trace_id"].as_str().unwrap_or_default()) != trace_id_bits(tid) {
            return Err(format!("log of another trace: {l} (expected {tid})"));
        }
        if l["message"] != format!("GET {path}").as_str() {
            return Err(format!(
                "log message {}, expected \"GET {path}\": {l}",
                l["message"]
            ));
        }
    }
    Ok(())
}

/// The node's own `get_trace` has its span, once, with the same parent.
fn check_own_part(
    net: &Net,
    node: &str,
    tid: &str,
    span_id: &str,
    parent: Option<&str>,
) -> Result<(), String> {
    let parent = json!(parent);
    let trace = get_trace(net, node, tid);
    let spans = spans_of(&trace).map_err(|e| format!("get_trace on {node}: {e}"))?;
    let mine: Vec<&Value> = spans.iter().filter(|s| s["span_id"] == span_id).collect();
    if mine.len() != 1 {
        return Err(format!(
            "get_trace on {node} should list its span {span_id} once, found {}: [{}]",
            mine.len(),
            summary(spans)
        ));
    }
    if mine[0]["parent_span_id"] != parent || mine[0]["service"] != node {
        return Err(format!(
            "on {node} its span differs: {} (expected parent {parent}, service {node})",
            mine[0]
        ));
    }
    let path = mine[0]["name"].clone();
    let handled: Vec<&Value> = spans
        .iter()
        .filter(|s| s["service"] == node && s["name"] == path)
        .collect();
    if handled.len() != 1 {
        return Err(format!(
            "{node} made {} spans named {path} for this trace (one request, one span): [{}]",
            handled.len(),
            summary(spans)
        ));
    }
    let mut ids = HashSet::new();
    if let Some(dup) = spans
        .iter()
        .map(|s| s["span_id"].to_string())
        .find(|id| !ids.insert(id.clone()))
    {
        return Err(format!(
            "get_trace on {node} lists span {dup} twice: [{}]",
            summary(spans)
        ));
    }
    Ok(())
}

fn between<'a>(msgs: &'a [Routed], from: &str, to: &str) -> Vec<&'a Routed> {
    msgs.iter()
        .filter(|r| r.from == from && r.to == to)
        .collect()
}

/// `00-<trace>-<parent>-<flags>` -> (trace bits, parent span id).
fn traceparent(r: &Routed) -> Option<(String, String)> {
    let tp = r.msg["body"]["traceparent"].as_str()?;
    let parts: Vec<&str> = tp.split('-').collect();
    (parts.len() == 4 && parts[1].len() == 32 && parts[2].len() == 16)
        .then(|| (parts[1].to_ascii_lowercase(), parts[2].to_string()))
}

/// No node answered another node with an error.
fn check_no_node_errors(net: &Net) {
    let errors = net.node_messages("error");
    check!(
        net,
        errors.is_empty(),
        "nodes sent each other {} error(s), first: {} -> {}: {}",
        errors.len(),
        errors[0].from,
        errors[0].to,
        errors[0].msg
    );
}

#[test]
fn chain_over_three_nodes() {
    let net = chain_net();
    let path = "/api/users/123";
    let reply = net.request("c1", "n1", http(path, None));
    let tid = ok(&net, check_complete(&reply));

    let trace = get_trace(&net, "n1", &tid);
    let (ids, parents) = ok(&net, check_chain(&trace, &tid, path, None));
    ok(&net, check_logs(&net, &tid, path));

    // The chain travelled as messages, each hop carrying the context.
    let hops = net.node_messages("hop");
    let acks = net.node_messages("hop_ok");
    for (k, (from, to)) in [("n1", "n2"), ("n2", "n3")].into_iter().enumerate() {
        let sent = between(&hops, from, to);
        check!(
            net,
            sent.len() == 1,
            "expected one hop {from} -> {to}, saw {}",
            sent.len()
        );
        let hop = sent[0];
        let tp = traceparent(hop);
        check!(
            net,
            tp.is_some(),
            "hop {from} -> {to} has no valid traceparent: {}",
            hop.msg
        );
        let (tp_trace, tp_parent) = tp.unwrap();
        check!(
            net,
            tp_trace == bits(&net, &tid),
            "hop {from} -> {to} carries trace {tp_trace}, the trace is {tid}"
        );
        check!(
            net,
            Some(&tp_parent) == parents[k + 1].as_ref(),
            "{to}'s span must be the child of the incoming traceparent's span {tp_parent}, \
             the CLIENT span of the hop under {from}'s span {} (spans n1..n3: {ids:?}, parents {parents:?})",
            ids[k]
        );
        let back = between(&acks, to, from);
        check!(
            net,
            back.len() == 1,
            "expected one hop_ok {to} -> {from}, saw {}",
            back.len()
        );
        check!(
            net,
            back[0].msg["body"]["in_reply_to"] == hop.msg["body"]["msg_id"]
                && back[0].msg["body"]["spans"].is_array(),
            "hop_ok {to} -> {from} must answer msg_id {} with a spans list: {}",
            hop.msg["body"]["msg_id"],
            back[0].msg
        );
    }

    // Each node knows its own part of the same trace.
    ok(&net, check_own_part(&net, "n1", &tid, &ids[0], None));
    ok(
        &net,
        check_own_part(&net, "n2", &tid, &ids[1], parents[1].as_deref()),
    );
    ok(
        &net,
        check_own_part(&net, "n3", &tid, &ids[2], parents[2].as_deref()),
    );
    for node in ["n2", "n3"] {
        let t = get_trace(&net, node, &tid);
        check!(
            net,
            trace_id_bits(t["trace_id"].as_str().unwrap_or_default()) == Some(bits(&net, &tid)),
            "get_trace on {node} names trace {}, expected {tid}",
            t["trace_id"]
        );
    }
    check_no_node_errors(&net);
    let extra = net.take_inbox("c1");
    check!(
        net,
        extra.is_empty(),
        "c1 got more than one reply: {extra:?}"
    );
    net.shutdown().assert_clean();
}

#[test]
fn duplicated_messages_make_no_duplicate_spans() {
    let net = chain_net();
    net.duplicate(1.0);
    let mut all_ids = HashSet::new();
    for i in 0..3 {
        let path = format!("/dup/{i}");
        let reply = net.request("c1", "n1", http(&path, None));
        let tid = ok(&net, check_complete(&reply));
        let trace = get_trace(&net, "n1", &tid);
        let (ids, parents) = ok(&net, check_chain(&trace, &tid, &path, None));
        ok(&net, check_logs(&net, &tid, &path));
        ok(
            &net,
            check_own_part(&net, "n2", &tid, &ids[1], parents[1].as_deref()),
        );
        ok(
            &net,
            check_own_part(&net, "n3", &tid, &ids[2], parents[2].as_deref()),
        );
        for id in ids {
            check!(
                net,
                all_ids.insert(id.clone()),
                "span id {id} reused across traces"
            );
        }
    }
    // Let late duplicates arrive, then: one reply per request, no errors.
    std::thread::sleep(Duration::from_millis(200));
    // Each node handled each hop once, so it sent one hop downstream.
    let hops = net.node_messages("hop");
    let (a, b) = (
        between(&hops, "n1", "n2").len(),
        between(&hops, "n2", "n3").len(),
    );
    check!(
        net,
        a == 3 && b == 3,
        "3 requests should make 3 hops n1->n2 and 3 hops n2->n3 (each then duplicated by \
         the network), the nodes sent {a} and {b}: a duplicate was handled twice"
    );
    let extra = net.take_inbox("c1");
    check!(
        net,
        extra.is_empty(),
        "duplicates produced extra client replies: {extra:?}"
    );
    check_no_node_errors(&net);
    let stats = net.stats();
    check!(
        net,
        stats.duplicated >= 12,
        "expected every hop and hop_ok (3 requests x 4) to be duplicated, stats {stats:?}"
    );
    net.shutdown().assert_clean();
}

/// A degraded trace_complete: n1 and n2 answered, n3 did not.
fn check_degraded(net: &Net, reply: &Value, path: &str) -> String {
    check!(
        net,
        reply["type"] == "trace_complete",
        "expected trace_complete, got {reply}"
    );
    check!(
        net,
        reply["span_count"] == 3,
        "span_count must count n1, n2 and the ERROR span for n3: {reply}"
    );
    let services: Vec<&str> = reply["services"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    check!(
        net,
        services.starts_with(&["n1", "n2"])
            && services.len() <= 3
            && services[2..].iter().all(|s| *s == "n3"),
        "services should be n1, n2 (and n3 for its ERROR span): {reply}"
    );
    let tid = reply["trace_id"].as_str().unwrap_or_default().to_string();
    check!(
        net,
        uuid_v4_re().is_match(&tid),
        "trace_id is not a UUID v4: {reply}"
    );
    let trace = get_trace(net, "n1", &tid);
    ok(net, check_chain(&trace, &tid, path, Some(2)));
    tid
}

#[test]
fn partition_mid_chain_then_heal() {
    let net = chain_net();
    net.partition(&["n1", "n2"], &["n3"]);
    let timeout_ms = 500;
    let t0 = Instant::now();
    let reply = net.request_timeout(
        "c1",
        "n1",
        http("/part", Some(timeout_ms)),
        Duration::from_millis(timeout_ms) + MARGIN + Duration::from_secs(3),
    );
    let took = t0.elapsed();
    check!(
        net,
        took <= Duration::from_millis(timeout_ms) + MARGIN,
        "the reply took {took:?}, more than timeout_ms {timeout_ms} ms + {MARGIN:?}: {reply}"
    );
    check_degraded(&net, &reply, "/part");
    let stats = net.stats();
    check!(
        net,
        stats.dropped_partition >= 1,
        "the partition dropped nothing: {stats:?}"
    );

    net.heal();
    for i in 0..2 {
        let path = format!("/healed/{i}");
        let reply = net.request("c1", "n1", http(&path, None));
        let tid = ok(&net, check_complete(&reply));
        let trace = get_trace(&net, "n1", &tid);
        ok(&net, check_chain(&trace, &tid, &path, None));
        ok(&net, check_logs(&net, &tid, &path));
    }
    net.shutdown().assert_clean();
}

#[test]
fn killed_node_gives_error_span_and_the_rest_keeps_serving() {
    let net = chain_net();
    net.kill("n3");
    let timeout_ms = 500;
    for i in 0..2 {
        let path = format!("/dead/{i}");
        let t0 = Instant::now();
        let reply = net.request_timeout(
            "c1",
            "n1",
            http(&path, Some(timeout_ms)),
            Duration::from_millis(timeout_ms) + MARGIN + Duration::from_secs(3),
        );
        let took = t0.elapsed();
        check!(
            net,
            took <= Duration::from_millis(timeout_ms) + MARGIN,
            "the reply took {took:?}, more than timeout_ms {timeout_ms} ms + {MARGIN:?}: {reply}"
        );
        let tid = check_degraded(&net, &reply, &path);
        // n2 keeps serving: its own part of the trace.
        let t = get_trace(&net, "n2", &tid);
        let spans = ok(&net, spans_of(&t).cloned());
        check!(
            net,
            spans.iter().any(|s| s["service"] == "n2"),
            "get_trace on n2 does not show n2's span: {t}"
        );
    }
    let found = net.request("c1", "n2", json!({"type": "search_logs", "limit": 1}));
    check!(
        net,
        found["type"] == "search_results",
        "n2 stopped serving: {found}"
    );
    let stats = net.stats();
    check!(
        net,
        stats.dropped_dead >= 1,
        "nothing was sent to the dead n3: {stats:?}"
    );
    check!(
        net,
        net.is_alive("n1") && net.is_alive("n2"),
        "n1 or n2 died"
    );
    let end = net.shutdown();
    end.assert_clean();
    assert!(end.nodes.iter().any(|n| n.id == "n3" && n.killed));
}

#[test]
fn hundred_concurrent_requests_with_delays() {
    let net = chain_net();
    net.delay(Duration::ZERO, Duration::from_millis(5));
    let clients = ["c1", "c2", "c3", "c4", "c5"];
    let mut pending = Vec::new();
    for i in 0..100 {
        let client = clients[i % clients.len()];
        let path = format!("/load/{i}");
        let id = net.send_async(client, "n1", http(&path, Some(5000)));
        pending.push((client, id, path));
    }
    let mut failures = Vec::new();
    let mut done = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(25);
    for (client, id, path) in pending {
        let left = deadline.saturating_duration_since(Instant::now());
        match net.try_wait_reply(client, id, left.max(Duration::from_millis(1))) {
            Err(_) => failures.push(format!("{client} {path}: no reply")),
            Ok(body) => match check_complete(&body) {
                Ok(tid) => done.push((tid, path)),
                Err(e) => failures.push(format!("{client} {path}: {e}")),
            },
        }
    }
    check!(
        net,
        failures.is_empty(),
        "{} of 100 requests failed, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let distinct: HashSet<&str> = done.iter().map(|(t, _)| t.as_str()).collect();
    check!(
        net,
        distinct.len() == 100,
        "only {} distinct trace ids in 100 replies",
        distinct.len()
    );

    // Every trace: exactly 3 spans, right parents, services and paths.
    let queries: Vec<(u64, &String, &String)> = done
        .iter()
        .map(|(tid, path)| {
            (
                net.send_async(
                    "c-query",
                    "n1",
                    json!({"type": "get_trace", "trace_id": tid}),
                ),
                tid,
                path,
            )
        })
        .collect();
    let mut span_ids: HashMap<String, String> = HashMap::new();
    for (id, tid, path) in queries {
        let trace = net.wait_reply("c-query", id, Duration::from_secs(10));
        match check_chain(&trace, tid, path, None) {
            Ok((ids, _)) => {
                for s in ids {
                    if let Some(other) = span_ids.insert(s.clone(), tid.clone()) {
                        failures.push(format!("span {s} is in trace {tid} and in trace {other}"));
                    }
                }
            }
            Err(e) => failures.push(e),
        }
    }
    check!(
        net,
        failures.is_empty(),
        "{} problems over the 100 traces, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let hops = net.node_messages("hop");
    let (a, b) = (
        between(&hops, "n1", "n2").len(),
        between(&hops, "n2", "n3").len(),
    );
    check!(
        net,
        a >= 100 && b >= 100,
        "expected 100 hops n1->n2 and n2->n3, saw {a} and {b}"
    );
    check_no_node_errors(&net);
    for c in clients {
        let extra = net.take_inbox(c);
        check!(net, extra.is_empty(), "{c} got extra replies: {extra:?}");
    }
    let stats = net.stats();
    check!(
        net,
        stats.delayed >= 400,
        "the delay queue was not used: {stats:?}"
    );
    net.shutdown().assert_clean();
}

#[test]
fn the_network_routes_and_counts() {
    // The harness itself, on plain messages: client requests reach the
    // right node, replies come back to the right client, and a partition
    // only cuts node-to-node traffic.
    let net = Net::start(2);
    net.partition(&["n1"], &["n2"]);
    for (client, node) in [("c1", "n1"), ("c2", "n2"), ("c1", "n2")] {
        let msg = format!("hello {node} from {client}");
        let r = net.request(client, node, json!({"type": "log", "message": msg}));
        assert_keys(&r, &["type", "in_reply_to"]);
        check!(net, r["type"] == "log_ok", "{client} -> {node}: {r}");
    }
    let found = net.request("c2", "n2", json!({"type": "search_logs"}));
    let n = found["logs"].as_array().map_or(0, Vec::len);
    check!(net, n == 2, "n2 should hold 2 logs, has {n}: {found}");
    let stats = net.stats();
    check!(
        net,
        stats.from_clients == 6 && stats.to_clients == 6 && stats.node_to_node == 0,
        "{stats:?}"
    );
    net.shutdown().assert_clean();
}
