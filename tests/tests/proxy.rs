//! The sidecar: `proxy_request` by the W3C Trace Context processing model,
//! and the SERVER span the runtime opens for every message.

use serde_json::{json, Value};
use tests::{assert_error, assert_keys, is_span_id, Node};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn proxy(node: &mut Node, headers: Value) -> Value {
    let reply = node.call(json!({"type": "proxy_request", "headers": headers}));
    assert_eq!(reply["type"], "proxy_forward", "{reply}");
    assert_keys(
        &reply,
        &["type", "in_reply_to", "headers", "span", "outbound"],
    );
    assert_eq!(
        reply["outbound"],
        json!([reply["headers"].clone()]),
        "one call: its headers are the forwarded ones"
    );
    reply
}

fn assert_restarted(reply: &Value) {
    let span = &reply["span"];
    assert_ne!(span["trace_id"], TRACE, "{reply}");
    assert_eq!(span["parent_span_id"], Value::Null, "{reply}");
    assert!(
        reply["headers"].get("tracestate").is_none(),
        "tracestate dropped: {reply}"
    );
    let tp = reply["headers"]["traceparent"].as_str().unwrap();
    assert!(tp.contains(span["trace_id"].as_str().unwrap()), "{reply}");
}

#[test]
fn continues_a_valid_parent_and_keeps_tracestate() {
    let mut node = Node::spawn();
    let r = proxy(
        &mut node,
        json!({"traceparent": TP, "tracestate": "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"}),
    );
    let span = &r["span"];
    assert_keys(span, &["trace_id", "span_id", "parent_span_id", "sampled"]);
    assert_eq!(span["trace_id"], TRACE);
    assert_eq!(span["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(span["sampled"], true);
    let sid = span["span_id"].as_str().unwrap();
    assert!(is_span_id(sid) && sid != "00f067aa0ba902b7");
    // Forwarded from the downstream call's CLIENT span, child of the
    // SERVER span.
    let tp = r["headers"]["traceparent"].as_str().unwrap();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{tp}");
    let client = parts[2];
    assert!(is_span_id(client) && client != sid, "{tp}");
    let t = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    let c = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["span_id"] == client)
        .unwrap_or_else(|| panic!("client span {client} stored: {t}"));
    assert_eq!(c["kind"], "CLIENT");
    assert_eq!(c["parent_span_id"], sid);
    assert_eq!(
        r["headers"]["tracestate"],
        "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    );
    node.finish();
}

#[test]
fn unsampled_parent_stays_unsampled() {
    let mut node = Node::spawn();
    let r = proxy(&mut node, json!({"traceparent": TP.replace("-01", "-00")}));
    assert_eq!(r["span"]["sampled"], false);
    assert!(r["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .ends_with("-00"));
    node.finish();
}

#[test]
fn invalid_or_duplicated_traceparent_restarts_the_trace() {
    let mut node = Node::spawn();
    for headers in [
        json!({"traceparent": TP.to_uppercase(), "tracestate": "a=1"}),
        json!({"traceparent": "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "a=1"}),
        json!({"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "tracestate": "a=1"}),
        json!({"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "tracestate": "a=1"}),
        json!([
            ["traceparent", TP],
            ["TraceParent", TP],
            ["tracestate", "a=1"]
        ]),
        json!({"tracestate": "a=1"}),
    ] {
        let r = proxy(&mut node, headers.clone());
        assert_restarted(&r);
    }
    node.finish();
}

#[test]
fn future_versions_are_accepted() {
    let mut node = Node::spawn();
    let r = proxy(
        &mut node,
        json!({"traceparent": format!("cc-{TRACE}-00f067aa0ba902b7-01-extra")}),
    );
    assert_eq!(r["span"]["trace_id"], TRACE);
    assert!(r["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .starts_with("00-"));
    node.finish();
}

#[test]
fn bad_tracestate_is_dropped_but_parent_kept() {
    let mut node = Node::spawn();
    let thirty_three: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
    for ts in ["UPPER=1", thirty_three.join(",").as_str()] {
        let r = proxy(&mut node, json!({"traceparent": TP, "tracestate": ts}));
        assert_eq!(r["span"]["trace_id"], TRACE, "{r}");
        assert!(r["headers"].get("tracestate").is_none(), "{ts}: {r}");
    }
    // Duplicated keys: the header is inherited, the first entry winning
    // (the W3C suite at its head, test_tracestate_duplicated_keys).
    let r = proxy(
        &mut node,
        json!({"traceparent": TP, "tracestate": "a=1,a=2"}),
    );
    assert_eq!(r["headers"]["tracestate"], "a=1", "{r}");
    node.finish();
}

#[test]
fn proxy_span_is_stored() {
    let mut node = Node::spawn();
    let r = proxy(&mut node, json!({"traceparent": TP}));
    let trace = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    assert_eq!(trace["type"], "trace", "{trace}");
    let spans = trace["spans"].as_array().unwrap();
    assert!(spans
        .iter()
        .any(|s| s["span_id"] == r["span"]["span_id"] && s["kind"] == "SERVER"));
    node.finish();
}

#[test]
fn a_request_without_context_starts_a_users_trace_which_is_stored() {
    // The HTTP request a proxy_request carries is a user's: without a
    // traceparent it starts a user trace (not the node's own telemetry),
    // which get_trace finds.
    let mut node = Node::spawn();
    let r = proxy(&mut node, json!({}));
    assert_restarted(&r);
    let trace_id = r["span"]["trace_id"].as_str().unwrap();
    let trace = node.call(json!({"type": "get_trace", "trace_id": trace_id}));
    assert_eq!(trace["type"], "trace", "{trace}");
    let spans = trace["spans"].as_array().unwrap();
    assert!(
        spans
            .iter()
            .any(|s| s["span_id"] == r["span"]["span_id"] && s["kind"] == "SERVER"),
        "{trace}"
    );
    node.finish();
}

#[test]
fn bad_headers_are_rejected() {
    let mut node = Node::spawn();
    for body in [
        json!({"type": "proxy_request"}),
        json!({"type": "proxy_request", "headers": "traceparent"}),
        json!({"type": "proxy_request", "headers": [["traceparent"]]}),
    ] {
        let r = node.call(body);
        assert_error(&r, 12, &["headers"]);
    }
    node.finish();
}

#[test]
fn every_message_runs_in_a_server_span_child_of_its_context() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "log", "message": "m", "traceparent": TP}));
    assert_eq!(r["type"], "log_ok");
    // The log took the sidecar span's ids.
    let found = node.call(json!({"type": "search_logs", "trace_id": TRACE}));
    let entry = &found["logs"][0];
    assert_eq!(entry["trace_id"], TRACE, "{found}");
    let sid = entry["span_id"].as_str().unwrap().to_owned();
    let trace = node.call(json!({"type": "get_trace", "trace_id": TRACE}));
    let span = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["span_id"] == sid.as_str())
        .unwrap_or_else(|| panic!("sidecar span {sid} in {trace}"))
        .clone();
    assert_eq!(span["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(span["kind"], "SERVER");
    assert_eq!(span["name"], "log");
    node.finish();
}

#[test]
fn stats_counts_and_caps() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_LOGS", "3")]);
    for i in 0..5 {
        node.call(json!({"type": "log", "message": format!("m{i}")}));
    }
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["type"], "stats_ok", "{s}");
    assert_eq!(s["logs"]["entries"], 3);
    assert_eq!(s["logs"]["max_entries"], 3);
    assert_eq!(s["logs"]["stored"], 5);
    assert_eq!(s["logs"]["dropped"], 2);
    assert_eq!(s["traces"]["max_traces"], 10_000);
    // Logs without trace context are the node's own telemetry: no span of
    // theirs enters the store of user traces.
    assert_eq!(s["traces"]["spans_stored"], 0, "{s}");
    assert_eq!(s["traces"]["traces"], 0, "{s}");
    node.finish();
}

#[test]
fn trace_store_evicts_oldest_and_counts() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_TRACES", "2")]);
    let first = node.call(json!({"type": "http_request", "path": "/1"}));
    let tid = first["span"]["trace_id"].as_str().unwrap().to_owned();
    for i in 2..5 {
        node.call(json!({"type": "http_request", "path": format!("/{i}")}));
    }
    let gone = node.call(json!({"type": "get_trace", "trace_id": tid}));
    assert_error(&gone, 20, &[]);
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["traces"]["traces"], 2);
    // Only the four requests' traces count: get_trace and stats add none.
    assert_eq!(s["traces"]["traces_evicted"], 2, "{s}");
    node.finish();
}

#[test]
fn bad_config_stops_start_up_naming_the_variable() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_LOGS", "lots")]);
    node.close_stdin();
    let f = node.finish_full();
    assert!(!f.status.success());
    assert!(f.stderr.contains("TRACER_MAX_LOGS"), "{}", f.stderr);
}

/// One incoming request, three downstream calls: one trace, each call with
/// a parent id of its own (a CLIENT span each, child of the SERVER span).
#[test]
fn each_downstream_call_gets_its_own_client_span() {
    let mut node = Node::spawn();
    for headers in [
        json!({"traceparent": TP}),
        json!({}),
        json!({"traceparent": "garbage"}),
    ] {
        let r = node.call(json!({"type": "proxy_request", "headers": headers, "outbound": 3}));
        assert_eq!(r["type"], "proxy_forward", "{r}");
        let calls = r["outbound"].as_array().unwrap();
        assert_eq!(calls.len(), 3, "{r}");
        assert_eq!(calls[0], r["headers"]);
        let trace = r["span"]["trace_id"].as_str().unwrap();
        let mut parents = std::collections::HashSet::new();
        for c in calls {
            let tp = c["traceparent"].as_str().unwrap();
            let parts: Vec<&str> = tp.split('-').collect();
            assert_eq!(parts[1], trace, "one trace: {r}");
            assert_ne!(parts[2], r["span"]["span_id"].as_str().unwrap());
            parents.insert(parts[2].to_owned());
        }
        assert_eq!(parents.len(), 3, "a parent id per call: {r}");
    }
    for bad in [json!(0), json!(-1), json!(65), json!(1.5), json!("3")] {
        let r = node.call(json!({"type": "proxy_request", "headers": {}, "outbound": bad}));
        assert_error(&r, 12, &["outbound"]);
    }
    node.finish();
}
