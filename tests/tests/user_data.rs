//! User data is sacred: what users send or ask the node to make (traces,
//! collected spans, their own spans) is never evicted or crowded out by the
//! node's own telemetry: the SERVER span of a message without trace context
//! is exported when export is on, never stored.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tests::{assert_error, Node};

/// Three kinds of user data in one node: a request through the chain, a
/// collected span, and a span a client opened and ended. Returns the ids
/// to look them up by.
fn user_data(node: &mut Node) -> (String, String) {
    let r = node.call(json!({"type": "instrument_service", "services": ["web", "api", "db"]}));
    assert_eq!(r["type"], "instrument_service_ok", "{r}");
    let done = node.call(json!({"type": "http_request", "path": "/api/users/123"}));
    assert_eq!(done["type"], "trace_complete", "{done}");
    let chain = done["trace_id"].as_str().unwrap().to_owned();
    let r = node.call(
        json!({"type": "span", "trace_id": "collected-1", "span_id": "s1", "service": "billing"}),
    );
    assert_eq!(r["type"], "span_accepted", "{r}");
    let created =
        node.call(json!({"type": "create_span", "name": "checkout", "trace_id": "opened-1"}));
    let sid = created["span_id"].as_str().unwrap().to_owned();
    let ended = node.call(json!({"type": "span_end", "span_id": sid}));
    assert_eq!(ended["type"], "span_complete", "{ended}");
    (chain, sid)
}

fn assert_user_data_kept(node: &mut Node, chain: &str, sid: &str) {
    let t = node.call(json!({"type": "get_trace", "trace_id": chain}));
    assert_eq!(t["spans"].as_array().map(Vec::len), Some(3), "{t}");
    let t = node.call(json!({"type": "get_trace", "trace_id": "collected-1"}));
    assert_eq!(t["spans"].as_array().map(Vec::len), Some(1), "{t}");
    let s = node.call(json!({"type": "get_span", "span_id": sid}));
    assert_eq!(s["trace_id"], "opened-1", "{s}");
}

/// A flood of every ordinary message type, none carrying trace context,
/// against a store of 5 traces: the user's 3 traces stay, nothing is
/// evicted, and the store holds nothing but them.
#[test]
fn a_flood_of_every_message_type_evicts_no_user_trace() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_TRACES", "5")]);
    let (chain, sid) = user_data(&mut node);
    let flood: Vec<Value> = vec![
        json!({"type": "log", "message": "m", "service": "svc", "trace_id": "abc"}),
        json!({"type": "search_logs", "service": "svc", "limit": 1}),
        json!({"type": "stats"}),
        json!({"type": "get_trace", "trace_id": chain}),
        json!({"type": "get_span", "span_id": sid}),
        json!({"type": "query_traces"}),
        json!({"type": "analyze_traces"}),
        json!({"type": "analyze_errors"}),
        json!({"type": "service_map"}),
        json!({"type": "parse_traceparent", "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}),
        json!({"type": "manual_instrument", "code": "const s = tracer.startSpan('x'); s.end();"}),
        json!({"type": "instrument_service", "services": ["web"]}),
        json!({"type": "no_such_type"}),
    ];
    let mut input = String::new();
    for round in 0..300 {
        for msg in &flood {
            input.push_str(&msg.to_string());
            input.push('\n');
        }
        // Logs dominate ordinary traffic.
        for i in 0..10 {
            input.push_str(&format!(
                "{{\"type\":\"log\",\"message\":\"line {round}.{i}\"}}\n"
            ));
        }
    }
    node.send_bytes(input.as_bytes());
    assert_user_data_kept(&mut node, &chain, &sid);
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["traces"]["traces"], 3, "only user traces are stored: {s}");
    assert_eq!(s["traces"]["traces_evicted"], 0, "{s}");
    assert_eq!(s["traces"]["spans_stored"], 5, "3 + 1 + 1: {s}");
    node.finish();
}

/// A message that arrives with trace context is user data: its SERVER span
/// joins the caller's trace, stored and counted.
#[test]
fn a_message_with_trace_context_joins_the_callers_trace() {
    let mut node = Node::spawn();
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = node.call(json!({"type": "log", "message": "in a trace",
        "traceparent": format!("00-{trace}-00f067aa0ba902b7-01")}));
    assert_eq!(r["type"], "log_ok");
    let t = node.call(json!({"type": "get_trace", "trace_id": trace}));
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "{t}");
    assert_eq!(spans[0]["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(spans[0]["kind"], "SERVER");
    node.finish();
}

/// With export on, the node's own telemetry leaves the node (one SERVER span
/// per message) while the store keeps none of it.
#[test]
fn the_nodes_own_telemetry_is_exported_not_stored() {
    let dir = std::env::temp_dir().join(format!("tracer-own-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("export.jsonl");
    let mut node = Node::spawn_with_env(&[("TRACER_EXPORT_FILE", path.to_str().unwrap())]);
    for i in 0..20 {
        node.send(&json!({"type": "log", "message": format!("m{i}")}));
    }
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["traces"]["traces"], 0, "{s}");
    assert!(node.finish_full().status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let names: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r["resourceSpans"].as_array().cloned())
        .flatten()
        .flat_map(|rs| rs["scopeSpans"][0]["spans"].as_array().unwrap().clone())
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == "log").count(),
        20,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "stats"));
}

/// At end of input no reply can come: an RPC still waiting (here a hop with
/// a 60 s budget to a peer that never answers) fails at once, its callback
/// answers the client, and the node exits without waiting for the budget.
#[test]
fn at_end_of_input_pending_rpcs_fail_at_once() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"instrument_service","msg_id":2,"services":["n1","n2"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"http_request","msg_id":3,"path":"/x","timeout_ms":60000}}"#);
    // The hop is out before stdin closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node.history().iter().any(|l| l["body"]["type"] == "hop") {
        assert!(Instant::now() < deadline, "no hop sent");
        node.recv_timeout(Duration::from_millis(100));
    }
    let start = Instant::now();
    let f = node.finish_full();
    assert!(f.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "exited {:?} after stdin closed, with a 60 s RPC pending",
        start.elapsed()
    );
    let done = f
        .all_lines
        .iter()
        .find(|l| l["body"]["type"] == "trace_complete")
        .expect("the request is answered");
    assert_eq!(done["body"]["in_reply_to"], 3);
    assert_eq!(done["body"]["services"], json!(["n1", "n2"]));
}

/// Unknown ids stay unknown: the flood above is not what keeps them out.
#[test]
fn lookups_of_what_was_never_stored_are_error_20() {
    let mut node = Node::spawn();
    node.send(&json!({"type": "log", "message": "m"}));
    let r = node.call(json!({"type": "get_trace", "trace_id": "nope"}));
    assert_error(&r, 20, &["nope"]);
    node.finish();
}
