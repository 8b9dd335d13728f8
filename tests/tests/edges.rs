//! Honest at the edges (issue 11): a full trace makes room for what users
//! send, cycles do not hide spans, peers are trusted only with what they
//! were asked, and every drop is counted in `stats`.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tests::{assert_error, Node};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn traceparent(span: &str) -> String {
    format!("00-{TRACE}-{span}-01")
}

/// 1,000 `log` messages carrying one `traceparent` fill that trace with the
/// node's SERVER spans; a span a user then sends for the trace still goes
/// in, in the place of one of them.
#[test]
fn a_full_trace_makes_room_for_a_users_span() {
    let mut node = Node::spawn();
    let mut input = String::new();
    for i in 0..1_000 {
        input.push_str(
            &json!({"type": "log", "message": format!("m{i}"), "traceparent": traceparent("00f067aa0ba902b7")})
                .to_string(),
        );
        input.push('\n');
    }
    node.send_bytes(input.as_bytes());
    let t = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    assert_eq!(
        t["spans"].as_array().unwrap().len(),
        1_000,
        "the trace is full"
    );
    let r = node.call(
        json!({"type": "span", "trace_id": TRACE, "span_id": "aaaaaaaaaaaaaaaa",
        "parent_span_id": "00f067aa0ba902b7", "service": "checkout"}),
    );
    assert_eq!(r["sampled"], true, "{r}");
    let t = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1_000);
    assert!(
        spans.iter().any(|s| s["span_id"] == "aaaaaaaaaaaaaaaa"),
        "{t}"
    );
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["traces"]["node_spans_displaced"], 1, "{s}");
    // The node's own span for one more message does not push the user's out.
    node.call(
        json!({"type": "log", "message": "more", "traceparent": traceparent("00f067aa0ba902b7")}),
    );
    let t = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    assert!(t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["span_id"] == "aaaaaaaaaaaaaaaa"));
    node.finish();
}

/// Collected spans `a` (parent `b`) and `b` (parent `a`): `get_trace` lists
/// both (the cycle broken at the earliest, listed as a root), and the
/// analysis of the stored trace agrees with itself.
#[test]
fn a_parent_cycle_hides_no_span_and_the_analysis_agrees() {
    let mut node = Node::spawn();
    for (id, parent, start) in [("a", "b", 2_000), ("b", "a", 1_000)] {
        let r = node.call(json!({"type": "span", "trace_id": "cyc", "span_id": id,
            "parent_span_id": parent, "service": format!("svc-{id}"),
            "start_us": 1_700_000_000_000_000u64 + start, "duration_us": 500}));
        assert_eq!(r["type"], "span_accepted", "{r}");
    }
    let t = node.call(json!({"type": "get_trace", "trace_id": "cyc"}));
    let ids: Vec<&str> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["b", "a"],
        "b started first, so the cycle breaks there: {t}"
    );
    let i = node.call(json!({"type": "analyze_traces"}));
    let bottlenecks = i["bottlenecks"].as_array().unwrap();
    assert!(!bottlenecks.is_empty(), "{i}");
    assert_ne!(i["optimization_suggestion"], "No spans to analyze", "{i}");
    assert_eq!(i["critical_path"], "svc-b->svc-a", "{i}");
    node.finish();
}

fn hop_ok_span(trace: &str, span: &str) -> Value {
    json!({"trace_id": trace, "span_id": span, "parent_span_id": null, "name": "GET /x",
        "kind": "SERVER", "start_unix_nano": 1_700_000_000_000_000_000u64,
        "end_unix_nano": 1_700_000_000_001_000_000u64, "status": "UNSET",
        "attributes": {"service.name": "n2"}})
}

/// A hop to `n2` is answered only by `n2`, and only for the hop's trace: a
/// reply from another node is not taken for it, and spans of another trace
/// in the reply are refused; both are counted.
#[test]
fn peers_are_trusted_only_with_what_they_were_asked() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2","n3"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"instrument_service","msg_id":2,"services":["n1","n2"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"http_request","msg_id":3,"path":"/x","timeout_ms":60000}}"#);
    let deadline = Instant::now() + Duration::from_secs(5);
    let hop = loop {
        if let Some(h) = node.history().iter().find(|l| l["body"]["type"] == "hop") {
            break h.clone();
        }
        assert!(Instant::now() < deadline, "no hop sent");
        node.recv_timeout(Duration::from_millis(100));
    };
    assert_eq!(hop["dest"], "n2");
    let hop_id = hop["body"]["msg_id"].clone();
    let tp = hop["body"]["traceparent"].as_str().unwrap();
    let trace = tp.split('-').nth(1).unwrap().to_owned();
    let other = "0af7651916cd43dd8448eb211c80319c";

    // n3 answers n2's hop: not taken; the request stays waiting for n2.
    node.send(
        &json!({"src": "n3", "dest": "n1", "body": {"type": "hop_ok", "in_reply_to": hop_id,
        "services": ["n3"], "spans": [hop_ok_span(other, "1111111111111111")]}}),
    );
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["drops"]["runtime.replies_from_another_node"], 1, "{s}");
    assert_eq!(s["runtime"]["rpcs_pending"], 1, "{s}");

    // n2 answers with its span and one of an unrelated trace.
    node.send(&json!({"src": "n2", "dest": "n1", "body": {"type": "hop_ok", "in_reply_to": hop_id,
        "services": ["n2"], "spans": [hop_ok_span(&trace, "2222222222222222"), hop_ok_span(other, "3333333333333333")]}}));
    let done = node.wait_reply(&json!(3));
    assert_eq!(done["body"]["type"], "trace_complete", "{done}");
    assert_eq!(done["body"]["services"], json!(["n1", "n2"]));
    let unrelated = node.call(json!({"type": "get_trace", "trace_id": other}));
    assert_error(&unrelated, 20, &[]);
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["drops"]["cluster.spans_of_another_trace"], 1, "{s}");

    // A late hop_ok from a node no hop went to is refused too.
    node.send(
        &json!({"src": "n3", "dest": "n1", "body": {"type": "hop_ok", "msg_id": 9,
        "services": ["n3"], "spans": [hop_ok_span(&trace, "4444444444444444")]}}),
    );
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["drops"]["cluster.late_replies_refused"], 1, "{s}");
    let t = node.call(json!({"type": "get_trace", "trace_id": trace}));
    assert!(!t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["span_id"] == "4444444444444444"));
    node.finish();
}

/// A request path of a megabyte through 256 services would make 256 spans
/// holding it twice each: it is refused, as an HTTP server answers 414.
#[test]
fn an_oversized_request_path_is_refused_not_multiplied() {
    let mut node = Node::spawn();
    let services: Vec<String> = (0..256).map(|i| format!("svc-{i}")).collect();
    let r = node.call(json!({"type": "instrument_service", "services": services}));
    assert_eq!(r["type"], "instrument_service_ok", "{r}");
    let r = node.call(json!({"type": "http_request", "path": format!("/{}", "p".repeat(1 << 20))}));
    assert_error(&r, 12, &["path", "8192"]);
    let r = node.call(json!({"type": "http_request", "path": "/ok"}));
    assert_eq!(r["type"], "trace_complete", "{r}");
    assert_eq!(r["span_count"], 256);
    let peak = node.peak_rss().unwrap();
    assert!(peak < 100 << 20, "peak {} MiB", peak >> 20);
    node.finish();
}

/// `reconstruct_trace` measures the tree a client lists, and refuses a
/// cycle or a missing parent naming the span.
#[test]
fn reconstruct_trace_measures_the_tree_and_refuses_cycles() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "reconstruct_trace", "spans": [
        {"trace_id": "t", "span_id": "a", "parent": null},
        {"trace_id": "t", "span_id": "b", "parent": "a"},
        {"trace_id": "t", "span_id": "c", "parent": "b"}
    ]}));
    tests::assert_keys(
        &r,
        &["type", "in_reply_to", "trace_id", "span_count", "depth"],
    );
    assert_eq!(
        (&r["trace_id"], &r["span_count"], &r["depth"]),
        (&json!("t"), &json!(3), &json!(3))
    );
    let r = node.call(json!({"type": "reconstruct_trace", "spans": [
        {"trace_id": "t", "span_id": "a", "parent": "b"},
        {"trace_id": "t", "span_id": "b", "parent": "a"}
    ]}));
    assert_error(&r, 12, &["spans[", "cycle"]);
    let r = node.call(json!({"type": "reconstruct_trace", "spans": [
        {"trace_id": "t", "span_id": "a", "parent": "gone"}
    ]}));
    assert_error(&r, 12, &["spans[0]", "gone"]);
    node.finish();
}
