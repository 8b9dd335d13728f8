//! The collector role: `span` intake, sampling by trace id, `trace_complete`
//! after a quiet period (fired by the runtime's timers, no traffic needed),
//! and late spans.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tests::{assert_error, assert_keys, Node};

/// Longer than the collector's quiet period (100 ms).
const QUIET: Duration = Duration::from_millis(150);

/// Reads output for `wait`, so that notices fired by timers are seen.
fn listen(node: &mut Node, wait: Duration) {
    let end = Instant::now() + wait;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if node.recv_timeout(left).is_none() {
            break;
        }
    }
}

/// Waits up to a second for the notice of `trace`, stdin still open.
fn wait_completion(node: &mut Node, trace: &str) -> Vec<Value> {
    let end = Instant::now() + Duration::from_secs(1);
    while completions(node, trace).is_empty() {
        let Some(left) = end.checked_duration_since(Instant::now()) else {
            break;
        };
        node.recv_timeout(left);
    }
    completions(node, trace)
}

fn span(node: &mut Node, from: &str, body: Value) -> Value {
    let mut body = body;
    body["type"] = json!("span");
    let reply = node.request_to(from, "collector", body);
    let b = reply["body"].clone();
    assert_eq!(b["type"], "span_accepted", "{b}");
    b
}

/// The `trace_complete` notices printed so far, as whole lines.
fn completions(node: &Node, trace: &str) -> Vec<Value> {
    node.history()
        .iter()
        .filter(|l| l["body"]["type"] == "trace_complete" && l["body"]["trace_id"] == trace)
        .cloned()
        .collect()
}

/// A three-span trace `t`, children first as real services report them.
fn shop(node: &mut Node, t: &str) {
    span(
        node,
        "db",
        json!({"trace_id": t, "span_id": "db1", "parent_span_id": "api1", "service": "db", "name": "SELECT", "duration_us": 50}),
    );
    span(
        node,
        "api",
        json!({"trace_id": t, "span_id": "api1", "parent_span_id": "web1", "service": "api", "duration_us": 70}),
    );
    span(
        node,
        "web",
        json!({"trace_id": t, "span_id": "web1", "service": "web", "name": "GET /", "duration_us": 100}),
    );
}

#[test]
fn a_span_is_accepted_and_stored_with_the_ids_as_sent() {
    let mut node = Node::spawn();
    let r = span(
        &mut node,
        "api",
        json!({"trace_id": "t1", "span_id": "api1", "parent_span_id": "web1", "service": "api",
               "name": "GET /users", "start_us": 1_700_000_000_000_000u64, "duration_us": 1234, "status": "error",
               "kind": "server"}),
    );
    assert_keys(&r, &["type", "in_reply_to", "sampled"]);
    assert_eq!(r["sampled"], true);
    let t = node.call(json!({"type": "get_trace", "trace_id": "t1"}));
    let s = &t["spans"][0];
    assert_eq!(s["span_id"], "api1", "{t}");
    assert_eq!(s["parent_span_id"], "web1");
    assert_eq!(s["service"], "api");
    assert_eq!(s["name"], "GET /users");
    assert_eq!(s["kind"], "SERVER");
    assert_eq!(s["start_us"], 1_700_000_000_000_000u64);
    assert_eq!(s["duration_us"], 1234);
    assert_eq!(s["status"], "ERROR");
    let g = node.call(json!({"type": "get_span", "span_id": "api1"}));
    assert_eq!(
        (&g["trace_id"], &g["span_id"]),
        (&json!("t1"), &json!("api1")),
        "{g}"
    );
    // Defaults: the name is the service's, the status UNSET.
    span(
        &mut node,
        "db",
        json!({"trace_id": "t2", "span_id": "d", "service": "db"}),
    );
    let t = node.call(json!({"type": "get_trace", "trace_id": "t2"}));
    assert_eq!(
        (&t["spans"][0]["name"], &t["spans"][0]["status"]),
        (&json!("db"), &json!("UNSET"))
    );
    node.finish();
}

#[test]
fn trace_complete_goes_to_the_roots_sender_after_a_quiet_period() {
    let mut node = Node::spawn();
    let start = Instant::now();
    shop(&mut node, "t1");
    if start.elapsed() < Duration::from_millis(50) {
        assert!(
            completions(&node, "t1").is_empty(),
            "not quiet yet: {:?}",
            node.history()
        );
    }
    // No further traffic: the timer fires while the node waits for input.
    let done = wait_completion(&mut node, "t1");
    assert_eq!(done.len(), 1, "{:?}", node.history());
    assert_eq!(done[0]["dest"], "web", "the root came from web");
    let body = &done[0]["body"];
    assert_eq!(body["span_count"], 3);
    assert_keys(body, &["type", "trace_id", "span_count"]);
    listen(&mut node, QUIET);
    assert_eq!(completions(&node, "t1").len(), 1, "reported once");
    node.finish();
}

#[test]
fn a_missing_parent_holds_the_trace_back() {
    let mut node = Node::spawn();
    span(
        &mut node,
        "web",
        json!({"trace_id": "t", "span_id": "root", "service": "web"}),
    );
    span(
        &mut node,
        "db",
        json!({"trace_id": "t", "span_id": "leaf", "parent_span_id": "mid", "service": "db"}),
    );
    listen(&mut node, 2 * QUIET);
    assert!(completions(&node, "t").is_empty(), "mid is missing");
    span(
        &mut node,
        "api",
        json!({"trace_id": "t", "span_id": "mid", "parent_span_id": "root", "service": "api"}),
    );
    let done = wait_completion(&mut node, "t");
    assert_eq!(done.len(), 1, "{:?}", node.history());
    assert_eq!(done[0]["body"]["span_count"], 3);
    node.finish();
}

#[test]
fn a_late_span_updates_the_reported_trace() {
    let mut node = Node::spawn();
    shop(&mut node, "t1");
    assert_eq!(wait_completion(&mut node, "t1").len(), 1);
    let r = span(
        &mut node,
        "cache",
        json!({"trace_id": "t1", "span_id": "c1", "parent_span_id": "web1", "service": "cache", "duration_us": 5}),
    );
    assert_keys(&r, &["type", "in_reply_to", "sampled", "action"]);
    assert_eq!(r["action"], "update_trace");
    // A fuller report of a span already stored replaces it.
    let r = span(
        &mut node,
        "db",
        json!({"trace_id": "t1", "span_id": "db1", "parent_span_id": "api1", "service": "db", "name": "SELECT", "duration_us": 80}),
    );
    assert_eq!(r["action"], "update_trace");
    let t = node.call(json!({"type": "get_trace", "trace_id": "t1"}));
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 4, "{t}");
    let db = spans.iter().find(|s| s["span_id"] == "db1").unwrap();
    assert_eq!(db["duration_us"], 80);
    assert!(spans
        .iter()
        .any(|s| s["span_id"] == "c1" && s["parent_span_id"] == "web1"));
    listen(&mut node, 2 * QUIET);
    assert_eq!(completions(&node, "t1").len(), 1, "no second notice");
    node.finish();
}

#[test]
fn sampling_follows_the_trace_id() {
    let mut node = Node::spawn();
    // The rightmost 56 bits of this id are 0.80695... of 2^56.
    let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
    let uuid = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    let r = span(
        &mut node,
        "a",
        json!({"trace_id": hex, "span_id": "00f067aa0ba902b7", "service": "a", "sampling_rate": 0.81}),
    );
    assert_eq!(r["sampled"], true, "{r}");
    let r = span(
        &mut node,
        "a",
        json!({"trace_id": uuid, "span_id": "00f067aa0ba902b8", "service": "a", "sampling_rate": 0.80}),
    );
    assert_keys(&r, &["type", "in_reply_to", "sampled", "reason"]);
    assert_eq!(r["sampled"], false, "{r}");
    assert_eq!(r["reason"], "Trace not sampled (80% rate)", "{r}");
    let t = node.call(json!({"type": "get_trace", "trace_id": hex}));
    assert_eq!(
        t["spans"].as_array().unwrap().len(),
        1,
        "the dropped span is not stored: {t}"
    );

    // Opaque ids: every span of a trace gets the same decision.
    let mut kept = 0;
    for i in 0..200 {
        let t = format!("trace-{i}");
        let a = span(
            &mut node,
            "a",
            json!({"trace_id": t, "span_id": "a", "service": "a", "sampling_rate": 0.5}),
        );
        let b = span(
            &mut node,
            "b",
            json!({"trace_id": t, "span_id": "b", "parent_span_id": "a", "service": "b", "sampling_rate": 0.5}),
        );
        assert_eq!(a["sampled"], b["sampled"], "{t}");
        let stored = node.call(json!({"type": "get_trace", "trace_id": t}));
        if a["sampled"] == true {
            kept += 1;
            assert_eq!(stored["spans"].as_array().unwrap().len(), 2, "{stored}");
        } else {
            assert_error(&stored, 20, &[]);
        }
    }
    assert!((60..140).contains(&kept), "kept {kept} of 200 at 0.5");
    node.finish();
}

#[test]
fn a_dropped_span_is_answered_without_msg_id_and_a_kept_one_is_not() {
    let mut node = Node::spawn();
    node.send(
        &json!({"src": "svc", "dest": "collector", "sampling_rate": 0.0,
        "body": {"type": "span", "trace_id": "t9", "span_id": "s", "service": "fast"}}),
    );
    let r = node.recv();
    assert_eq!(r["dest"], "svc");
    assert_eq!(
        r["body"],
        json!({"type": "span_accepted", "sampled": false, "reason": "Trace not sampled (0% rate)"})
    );
    node.send(&json!({"src": "svc", "dest": "collector",
        "body": {"type": "span", "trace_id": "t9", "span_id": "s", "service": "fast"}}));
    // The kept root span makes a notice, and nothing else.
    let next = node.recv();
    assert_eq!(next["body"]["type"], "trace_complete", "{next}");
    node.finish();
}

#[test]
fn the_envelope_sampling_rate_applies_unless_the_body_has_one() {
    let mut node = Node::spawn();
    let send = |node: &mut Node, body: Value, rate: Value| {
        let id = body["msg_id"].clone();
        node.send(&json!({"src": "a", "dest": "collector", "sampling_rate": rate, "body": body}));
        node.wait_reply(&id)["body"].clone()
    };
    let r = send(
        &mut node,
        json!({"type": "span", "msg_id": 1, "trace_id": "t", "span_id": "s", "service": "a"}),
        json!(0.0),
    );
    assert_eq!(r["sampled"], false, "{r}");
    let r = send(
        &mut node,
        json!({"type": "span", "msg_id": 2, "trace_id": "t", "span_id": "s", "service": "a", "sampling_rate": 1.0}),
        json!(0.0),
    );
    assert_eq!(r["sampled"], true, "{r}");
    let r = send(
        &mut node,
        json!({"type": "span", "msg_id": 3, "trace_id": "t", "span_id": "s", "service": "a"}),
        json!("x"),
    );
    assert_error(&r, 12, &["sampling_rate"]);
    node.finish();
}

#[test]
fn a_full_trace_says_so() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_SPANS_PER_TRACE", "2")]);
    for id in ["a", "b"] {
        assert_eq!(
            span(
                &mut node,
                "x",
                json!({"trace_id": "t", "span_id": id, "service": "x"})
            )["sampled"],
            true
        );
    }
    let r = span(
        &mut node,
        "x",
        json!({"trace_id": "t", "span_id": "c", "service": "x"}),
    );
    assert_eq!(r["sampled"], false, "{r}");
    assert!(r["reason"].as_str().unwrap().contains("full"), "{r}");
    node.finish();
}

#[test]
fn bad_spans_are_error_12_naming_the_field() {
    let mut node = Node::spawn();
    let ok = json!({"type": "span", "trace_id": "t", "span_id": "s", "service": "a"});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = ok.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };
    let cases = [
        (without("trace_id"), "trace_id"),
        (without("span_id"), "span_id"),
        (without("service"), "service"),
        (with("trace_id", json!(5)), "trace_id"),
        (with("trace_id", json!("")), "trace_id"),
        (
            with("trace_id", json!("00000000-0000-0000-0000-000000000000")),
            "trace_id",
        ),
        (with("span_id", json!("")), "span_id"),
        (with("service", json!("")), "service"),
        (with("service", json!(["a"])), "service"),
        (with("parent_span_id", json!("")), "parent_span_id"),
        (with("parent_span_id", json!(7)), "parent_span_id"),
        (with("name", json!(7)), "name"),
        (with("duration_us", json!(-1)), "duration_us"),
        (with("duration_us", json!("10")), "duration_us"),
        // Out of range once in nanoseconds: refused, never clamped.
        (with("duration_us", json!(u64::MAX)), "duration_us"),
        (with("start_us", json!(u64::MAX)), "start_us"),
        (
            {
                let mut b = with("start_us", json!(10_000_000_000_000_000u64));
                b["duration_us"] = json!(10_000_000_000_000_000u64);
                b
            },
            "duration_us",
        ),
        (with("start_us", json!(1.5)), "start_us"),
        (with("status", json!("weird")), "status"),
        (with("kind", json!("weird")), "kind"),
        (with("sampling_rate", json!(2)), "sampling_rate"),
        (with("sampling_rate", json!(-0.1)), "sampling_rate"),
        (with("sampling_rate", json!("half")), "sampling_rate"),
    ];
    for (body, field) in cases {
        let r = node.call(body.clone());
        assert_error(&r, 12, &[field]);
    }
    let r = node.call(json!({"type": "get_trace", "trace_id": "t"}));
    assert_error(&r, 20, &[]);
    node.finish();
}
