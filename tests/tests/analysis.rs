//! Questions about traces: `query_traces` over stored traces;
//! `analyze_traces`, `analyze_errors` and `service_map` over stored traces
//! or traces given in the request.

use serde_json::{json, Value};
use tests::{assert_error, assert_keys, Node};

fn collect(node: &mut Node, spans: Value) {
    for s in spans.as_array().unwrap() {
        let mut body = s.clone();
        body["type"] = json!("span");
        let r = node.call(body);
        assert_eq!(r["type"], "span_accepted", "{r}");
    }
}

/// tA: web 100 ms -> api 50 ms (ERROR), starting at 1 s.
/// tB: web 10 ms at 2 s. tC: db 300 ms at 3 s.
fn three_traces(node: &mut Node) {
    collect(
        node,
        json!([
            {"trace_id": "tA", "span_id": "w", "service": "web", "start_us": 1_000_000, "duration_us": 100_000},
            {"trace_id": "tA", "span_id": "a", "parent_span_id": "w", "service": "api", "start_us": 1_010_000, "duration_us": 50_000, "status": "ERROR"},
            {"trace_id": "tB", "span_id": "w", "service": "web", "start_us": 2_000_000, "duration_us": 10_000, "status": "OK"},
            {"trace_id": "tC", "span_id": "d", "service": "db", "start_us": 3_000_000, "duration_us": 300_000}
        ]),
    );
}

fn query(node: &mut Node, filters: Value) -> Value {
    let mut body = filters;
    body["type"] = json!("query_traces");
    let r = node.call(body);
    assert_eq!(r["type"], "query_results", "{r}");
    assert_keys(&r, &["type", "in_reply_to", "traces", "avg_duration_ms"]);
    r
}

#[test]
fn query_traces_combines_filters() {
    let mut node = Node::spawn();
    three_traces(&mut node);
    for (filters, want) in [
        // The node's own message spans are no traces of the system.
        (json!({}), json!(["tA", "tB", "tC"])),
        (json!({"service": "api"}), json!(["tA"])),
        (json!({"service": "web"}), json!(["tA", "tB"])),
        (json!({"service": "nobody"}), json!([])),
        (
            json!({"time_range": {"start_us": 1_500_000, "end_us": 3_000_000}}),
            json!(["tB", "tC"]),
        ),
        (
            json!({"time_range": {"start_us": 0, "end_us": 1_000_000}}),
            json!(["tA"]),
        ),
        (json!({"min_duration_us": 100_000}), json!(["tA", "tC"])),
        (json!({"status": "error"}), json!(["tA"])),
        (json!({"status": "OK"}), json!(["tB", "tC"])),
        (json!({"service": "web", "status": "ok"}), json!(["tB"])),
    ] {
        let r = query(&mut node, filters.clone());
        assert_eq!(r["traces"], want, "{filters}: {r}");
    }
    let r = query(&mut node, json!({"min_duration_us": 100_000}));
    assert_eq!(r["avg_duration_ms"], 200.0);
    let r = query(&mut node, json!({}));
    let avg = r["avg_duration_ms"].as_f64().unwrap();
    assert!((avg - 136.667).abs() < 1e-9, "{r}");
    let r = query(&mut node, json!({"service": "nobody"}));
    assert_eq!(r["avg_duration_ms"], Value::Null);
    node.finish();
}

#[test]
fn query_traces_finds_remote_driven_and_auto_instrumented_traces() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "create_span", "name": "job", "trace_id": "job-1", "attributes": {"service.name": "worker"}}));
    node.call(json!({"type": "span_end", "span_id": r["span_id"]}));
    node.call(json!({"type": "instrument_service", "services": ["web", "api"]}));
    let t = node.call(json!({"type": "http_request", "path": "/x"}));
    let tid = t["trace_id"].as_str().unwrap();
    assert_eq!(
        query(&mut node, json!({"service": "worker"}))["traces"],
        json!(["job-1"])
    );
    assert_eq!(
        query(&mut node, json!({"service": "api"}))["traces"],
        json!([tid])
    );
    node.finish();
}

/// web(95) -> api(70, ERROR) -> db(50); web -> cache(10); api -> api(5).
fn shop(trace_id: &str) -> Value {
    json!({"trace_id": trace_id, "spans": [
        {"span_id": "w", "service": "web", "name": "GET /", "duration_us": 95},
        {"span_id": "a", "parent_span_id": "w", "service": "api", "duration_us": 70, "status": "error"},
        {"span_id": "d", "parent_span_id": "a", "service": "db", "name": "SELECT", "duration_us": 50},
        {"span_id": "c", "parent_span_id": "w", "service": "cache", "duration_us": 10, "status": "OK"},
        {"span_id": "i", "parent_span_id": "a", "service": "api", "name": "validate", "duration_us": 5}
    ]})
}

fn store_shop(node: &mut Node, trace_id: &str) {
    for mut s in shop(trace_id)["spans"].as_array().unwrap().clone() {
        s["trace_id"] = json!(trace_id);
        collect(node, json!([s]));
    }
}

#[test]
fn analyze_traces_finds_the_bottleneck_by_self_time_and_the_critical_path() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "analyze_traces", "traces": [shop("t1")]}));
    assert_keys(
        &r,
        &[
            "type",
            "in_reply_to",
            "bottlenecks",
            "critical_path",
            "optimization_suggestion",
        ],
    );
    assert_eq!(r["type"], "insights");
    // Self time: web 95-70-10, api 70-50-5 plus 5, db 50, cache 10 (of 95).
    assert_eq!(
        r["bottlenecks"],
        json!([
            {"service": "db", "self_time_us": 50, "share": "52.6%"},
            {"service": "api", "self_time_us": 20, "share": "21.1%"},
            {"service": "web", "self_time_us": 15, "share": "15.8%"},
            {"service": "cache", "self_time_us": 10, "share": "10.5%"}
        ])
    );
    assert_eq!(r["critical_path"], json!(["web:GET /", "api", "db:SELECT"]));
    let tip = r["optimization_suggestion"].as_str().unwrap();
    assert!(tip.contains("db") && tip.contains("52.6%"), "{tip}");

    // The same spans, collected and stored, give the same answer: the
    // node's own message spans take no part.
    store_shop(&mut node, "t1");
    let stored = node.call(json!({"type": "analyze_traces"}));
    assert_eq!(stored["bottlenecks"], r["bottlenecks"]);
    assert_eq!(stored["critical_path"], r["critical_path"]);
    node.finish();
}

#[test]
fn the_critical_path_spans_traces() {
    let mut node = Node::spawn();
    let short = json!({"trace_id": "short", "spans": [{"span_id": "x", "service": "a", "duration_us": 10}]});
    let long = json!({"trace_id": "long", "spans": [
        {"span_id": "x", "service": "b", "duration_us": 5},
        {"span_id": "y", "parent_span_id": "x", "service": "c", "duration_us": 6},
        {"span_id": "z", "parent_span_id": "x", "service": "d", "duration_us": 3}
    ]});
    let r = node.call(json!({"type": "analyze_traces", "traces": [short, long]}));
    assert_eq!(
        r["critical_path"],
        json!(["b", "c"]),
        "5 + 6 us beats 10 us: {r}"
    );
    node.finish();
}

#[test]
fn deep_traces_are_analyzed_without_recursion() {
    let mut node = Node::spawn();
    let spans: Vec<Value> = (0..20_000)
        .map(|i| {
            let mut s = json!({"span_id": format!("s{i}"), "service": "svc", "duration_us": 1});
            if i > 0 {
                s["parent_span_id"] = json!(format!("s{}", i - 1));
            }
            s
        })
        .collect();
    let r = node.call(json!({"type": "analyze_traces", "traces": [{"spans": spans}]}));
    assert_eq!(
        r["critical_path"].as_array().unwrap().len(),
        20_000,
        "{}",
        r["type"]
    );
    node.finish();
}

#[test]
fn analyze_errors_gives_rates_by_service() {
    let mut node = Node::spawn();
    let mut t = shop("t1");
    t["spans"]
        .as_array_mut()
        .unwrap()
        .push(json!({"span_id": "a2", "service": "api", "duration_us": 1, "status": "ERROR"}));
    let r = node.call(json!({"type": "analyze_errors", "traces": [t]}));
    assert_keys(
        &r,
        &[
            "type",
            "in_reply_to",
            "error_rate_by_service",
            "total_errors",
        ],
    );
    assert_eq!(r["type"], "error_analysis");
    assert_eq!(
        r["error_rate_by_service"],
        json!({"api": "66.7%", "web": "0.0%", "db": "0.0%", "cache": "0.0%"})
    );
    assert_eq!(r["total_errors"], 2);

    // Stored: collected spans and remote-driven spans alike.
    store_shop(&mut node, "t1");
    let s = node.call(
        json!({"type": "create_span", "name": "pay", "attributes": {"service.name": "billing"}}),
    );
    node.call(json!({"type": "span_error", "span_id": s["span_id"], "error": "declined"}));
    let r = node.call(json!({"type": "analyze_errors"}));
    assert_eq!(
        r["error_rate_by_service"],
        json!({"api": "50.0%", "web": "0.0%", "db": "0.0%", "cache": "0.0%", "billing": "100.0%"})
    );
    assert_eq!(r["total_errors"], 2);
    node.finish();
}

#[test]
fn service_map_edges_go_from_parent_to_child_service() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "service_map", "traces": [shop("t1"), shop("t2")]}));
    assert_keys(&r, &["type", "in_reply_to", "edges"]);
    assert_eq!(r["type"], "service_map");
    assert_eq!(
        r["edges"],
        json!([
            {"from": "api", "to": "db", "calls": 2, "errors": 0},
            {"from": "web", "to": "api", "calls": 2, "errors": 2},
            {"from": "web", "to": "cache", "calls": 2, "errors": 0}
        ])
    );
    // Auto-instrumented traces are stored traces too.
    node.call(json!({"type": "instrument_service", "services": ["web", "api", "db"]}));
    node.call(json!({"type": "http_request", "path": "/u"}));
    let r = node.call(json!({"type": "service_map"}));
    assert_eq!(
        r["edges"],
        json!([
            {"from": "api", "to": "db", "calls": 1, "errors": 0},
            {"from": "web", "to": "api", "calls": 1, "errors": 0}
        ])
    );
    node.finish();
}

#[test]
fn nothing_to_analyze_is_an_empty_answer() {
    let mut node = Node::spawn();
    node.call(json!({"type": "log", "message": "only the node's own spans are stored"}));
    let r = node.call(json!({"type": "analyze_traces"}));
    assert_eq!(r["bottlenecks"], json!([]));
    assert_eq!(r["critical_path"], json!([]));
    assert_eq!(r["optimization_suggestion"], "No spans to analyze.");
    let r = node.call(json!({"type": "analyze_errors", "traces": []}));
    assert_eq!(
        (&r["error_rate_by_service"], &r["total_errors"]),
        (&json!({}), &json!(0))
    );
    let r = node.call(json!({"type": "service_map"}));
    assert_eq!(r["edges"], json!([]));
    let r = query(&mut node, json!({}));
    assert_eq!(r["traces"], json!([]));
    node.finish();
}

#[test]
fn bad_input_is_error_12_naming_the_field() {
    let mut node = Node::spawn();
    let span = json!({"span_id": "s", "service": "a", "duration_us": 1});
    let with = |k: &str, v: Value| {
        let mut s = span.clone();
        s[k] = v;
        json!([{"spans": [s]}])
    };
    let without = |k: &str| {
        let mut s = span.clone();
        s.as_object_mut().unwrap().remove(k);
        json!([{"spans": [s]}])
    };
    let traces_cases = [
        (json!("x"), "traces"),
        (json!([{}]), "spans"),
        (json!([{"spans": {}}]), "spans"),
        (json!([{"trace_id": 1, "spans": []}]), "trace_id"),
        (without("span_id"), "span_id"),
        (without("service"), "service"),
        (without("duration_us"), "duration_us"),
        (with("duration_us", json!(-5)), "duration_us"),
        (with("start_us", json!("x")), "start_us"),
        (with("status", json!("meh")), "status"),
        (with("parent_span_id", json!(3)), "parent_span_id"),
        (with("name", json!(false)), "name"),
    ];
    for ty in ["analyze_traces", "analyze_errors", "service_map"] {
        for (traces, field) in &traces_cases {
            let r = node.call(json!({"type": ty, "traces": traces}));
            assert_error(&r, 12, &[field]);
        }
    }
    for (filters, field) in [
        (json!({"service": 5}), "service"),
        (json!({"time_range": "today"}), "time_range"),
        (json!({"time_range": {"start_us": 5}}), "end_us"),
        (
            json!({"time_range": {"start_us": 5, "end_us": 4}}),
            "time_range",
        ),
        (json!({"min_duration_us": "x"}), "min_duration_us"),
        (json!({"status": "maybe"}), "status"),
    ] {
        let mut body = filters;
        body["type"] = json!("query_traces");
        let r = node.call(body);
        assert_error(&r, 12, &[field]);
    }
    node.finish();
}
