//! Questions about traces: `query_traces` and `find_traces` over stored
//! traces; `analyze_traces`, `profile_traces`, `analyze_errors` and
//! `service_map` over stored traces or traces given in the request, in the
//! full shape or the course's.

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
    assert!(r["traces"].is_u64(), "a count: {r}");
    assert!(r["avg_duration_ms"].is_f64(), "a number of ms: {r}");
    r
}

/// The ids `find_traces` gives for these filters, checked against the
/// count `query_traces` gives for them.
fn find(node: &mut Node, filters: Value) -> Value {
    let mut body = filters.clone();
    body["type"] = json!("find_traces");
    let r = node.call(body);
    assert_eq!(r["type"], "found_traces", "{r}");
    assert_keys(&r, &["type", "in_reply_to", "trace_ids"]);
    let ids = r["trace_ids"].clone();
    let count = query(node, filters.clone())["traces"].clone();
    assert_eq!(
        count,
        json!(ids.as_array().unwrap().len()),
        "{filters}: query_traces counts what find_traces finds: {ids}"
    );
    ids
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
        // The course's relative ranges end now: spans of 1970 are older.
        (json!({"time_range": "1h"}), json!([])),
        (json!({"time_range": "30s"}), json!([])),
        (json!({"time_range": "30000d"}), json!(["tA", "tB", "tC"])),
    ] {
        let ids = find(&mut node, filters.clone());
        assert_eq!(ids, want, "{filters}");
    }
    let r = query(&mut node, json!({"min_duration_us": 100_000}));
    assert_eq!(r["traces"], 2);
    assert_eq!(r["avg_duration_ms"], 200.0);
    let r = query(&mut node, json!({}));
    assert_eq!(r["traces"], 3);
    let avg = r["avg_duration_ms"].as_f64().unwrap();
    assert!((avg - 136.667).abs() < 1e-9, "{r}");
    let r = query(&mut node, json!({"service": "nobody"}));
    assert_eq!(
        (&r["traces"], &r["avg_duration_ms"]),
        (&json!(0), &json!(0.0))
    );
    node.finish();
}

#[test]
fn relative_time_ranges_end_now() {
    let mut node = Node::spawn();
    three_traces(&mut node);
    let r = node.call(json!({"type": "create_span", "name": "job", "trace_id": "recent", "attributes": {"service.name": "worker"}}));
    node.call(json!({"type": "span_end", "span_id": r["span_id"]}));
    for range in ["1h", "15m", "30s", "1.5h", "2d"] {
        assert_eq!(
            find(&mut node, json!({"time_range": range})),
            json!(["recent"]),
            "{range}"
        );
    }
    let r = query(&mut node, json!({"time_range": "15m", "service": "worker"}));
    assert_eq!(r["traces"], 1);
    assert!(r["avg_duration_ms"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!(find(&mut node, json!({"time_range": "0ms"})), json!([]));
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
        find(&mut node, json!({"service": "worker"})),
        json!(["job-1"])
    );
    assert_eq!(find(&mut node, json!({"service": "api"})), json!([tid]));
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

fn insights(node: &mut Node, body: Value) -> Value {
    let mut body = body;
    body["type"] = json!("analyze_traces");
    let r = node.call(body);
    assert_eq!(r["type"], "insights", "{r}");
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
    r
}

fn profile(node: &mut Node, body: Value) -> Value {
    let mut body = body;
    body["type"] = json!("profile_traces");
    let r = node.call(body);
    assert_eq!(r["type"], "trace_profile", "{r}");
    assert_keys(
        &r,
        &[
            "type",
            "in_reply_to",
            "bottlenecks",
            "critical_path",
            "trace_id",
        ],
    );
    r
}

const DB_TIP: &str = "Add caching for database queries";

#[test]
fn analyze_traces_finds_the_bottleneck_by_self_time_and_the_critical_path() {
    let mut node = Node::spawn();
    let r = insights(&mut node, json!({"traces": [shop("t1")]}));
    // Self time: web 95-70-10, api 70-50-5 plus 5, db 50, cache 10 (of
    // 95): only db has a fifth of all and half of the largest.
    assert_eq!(r["bottlenecks"], json!(["db"]));
    assert_eq!(r["critical_path"], "web->api->db");
    assert_eq!(r["optimization_suggestion"], DB_TIP);

    let p = profile(&mut node, json!({"traces": [shop("t1")]}));
    assert_eq!(
        p["bottlenecks"],
        json!([
            {"service": "db", "self_time_us": 50, "share": "52.6%"},
            {"service": "api", "self_time_us": 20, "share": "21.1%"},
            {"service": "web", "self_time_us": 15, "share": "15.8%"},
            {"service": "cache", "self_time_us": 10, "share": "10.5%"}
        ])
    );
    assert_eq!(p["critical_path"], json!(["web:GET /", "api", "db:SELECT"]));
    assert_eq!(p["trace_id"], "t1");

    // The same spans, collected and stored, give the same answers: the
    // node's own message spans take no part.
    store_shop(&mut node, "t1");
    let stored = insights(&mut node, json!({}));
    for key in ["bottlenecks", "critical_path", "optimization_suggestion"] {
        assert_eq!(stored[key], r[key], "{key}");
    }
    let stored = profile(&mut node, json!({}));
    for key in ["bottlenecks", "critical_path", "trace_id"] {
        assert_eq!(stored[key], p[key], "{key}");
    }
    node.finish();
}

#[test]
fn the_course_shape_is_a_call_chain_in_milliseconds() {
    let mut node = Node::spawn();
    let course = json!({"trace_id": "t1", "duration_ms": 5000, "spans": [
        {"service": "web", "duration": 100},
        {"service": "api", "duration": 200},
        {"service": "db", "duration": 4700}
    ]});
    // The course's own case: `time_range` does not filter traces without
    // timestamps.
    let r = insights(
        &mut node,
        json!({"time_range": "1h", "traces": [course.clone()]}),
    );
    assert_eq!(r["bottlenecks"], json!(["db"]));
    assert_eq!(r["critical_path"], "web->api->db");
    assert_eq!(r["optimization_suggestion"], DB_TIP);
    let p = profile(&mut node, json!({"traces": [course.clone()]}));
    assert_eq!(
        p["bottlenecks"],
        json!([
            {"service": "db", "self_time_us": 4_700_000, "share": "94.0%"},
            {"service": "api", "self_time_us": 200_000, "share": "4.0%"},
            {"service": "web", "self_time_us": 100_000, "share": "2.0%"}
        ])
    );
    assert_eq!(p["critical_path"], json!(["web", "api", "db"]));
    assert_eq!(p["trace_id"], "t1");

    // Two heavy services, a repeat in a row, a cache at the top.
    let two = json!({"trace_id": "t2", "spans": [
        {"service": "web", "duration": 10},
        {"service": "session-cache", "duration": 400},
        {"service": "session-cache", "duration": 100},
        {"service": "orders-db", "duration": 300}
    ]});
    let r = insights(&mut node, json!({"traces": [two]}));
    assert_eq!(r["bottlenecks"], json!(["session-cache", "orders-db"]));
    assert_eq!(r["critical_path"], "web->session-cache->orders-db");
    assert_eq!(
        r["optimization_suggestion"],
        "Batch cache lookups and tune keys and expiry times to raise the hit rate"
    );
    // The service map reads the chain too.
    let m = node.call(json!({"type": "service_map", "traces": [course]}));
    assert_eq!(
        m["edges"],
        json!([
            {"from": "api", "to": "db", "calls": 1, "errors": 0},
            {"from": "web", "to": "api", "calls": 1, "errors": 0}
        ])
    );
    node.finish();
}

#[test]
fn the_suggestion_follows_the_top_bottleneck() {
    let mut node = Node::spawn();
    let one = |service: &str, extra: Value| {
        let mut s = json!({"span_id": "s", "service": service, "duration_us": 10});
        for (k, v) in extra.as_object().unwrap() {
            s[k] = v.clone();
        }
        json!({"traces": [{"spans": [s]}]})
    };
    for (req, want) in [
        (one("postgres", json!({})), DB_TIP),
        (
            one("users", json!({"kind": "client", "attributes": {"db.system": "mysql"}})),
            DB_TIP,
        ),
        (
            one("users", json!({"kind": "client", "attributes": {"db.system": "redis"}})),
            "Batch cache lookups and tune keys and expiry times to raise the hit rate",
        ),
        (
            one("kafka-consumer", json!({})),
            "Add consumers or partitions and batch messages to cut the time spent waiting on the queue",
        ),
        (
            one("users", json!({"kind": "producer"})),
            "Add consumers or partitions and batch messages to cut the time spent waiting on the queue",
        ),
        (
            one("payments", json!({"kind": "client"})),
            "Make remote calls concurrently, with timeouts, and cache or batch their responses",
        ),
        (
            one("api-gateway", json!({})),
            "Make remote calls concurrently, with timeouts, and cache or batch their responses",
        ),
        (
            one("api", json!({"kind": "server"})),
            "Profile the service's own code and optimize its hot paths",
        ),
    ] {
        let r = insights(&mut node, req.clone());
        assert_eq!(r["optimization_suggestion"], want, "{req}");
    }
    // Stored spans: their attributes count.
    let s = node.call(json!({"type": "create_span", "name": "GET session", "kind": "client", "attributes": {"service.name": "users", "db.system": "redis"}}));
    node.call(json!({"type": "span_end", "span_id": s["span_id"]}));
    let r = insights(&mut node, json!({}));
    assert_eq!(r["bottlenecks"], json!(["users"]));
    assert_eq!(
        r["optimization_suggestion"],
        "Batch cache lookups and tune keys and expiry times to raise the hit rate"
    );
    node.finish();
}

#[test]
fn time_range_filters_stored_and_timed_traces() {
    let mut node = Node::spawn();
    three_traces(&mut node);
    // Spans of 1970: none in the last hour.
    let r = insights(&mut node, json!({"time_range": "1h"}));
    assert_eq!(r["bottlenecks"], json!([]));
    assert_eq!(r["optimization_suggestion"], "No spans to analyze");
    let r = insights(
        &mut node,
        json!({"time_range": {"start_us": 2_500_000, "end_us": 3_000_000}}),
    );
    assert_eq!(r["bottlenecks"], json!(["db"]));
    assert_eq!(r["critical_path"], "db");
    let p = profile(
        &mut node,
        json!({"time_range": {"start_us": 0, "end_us": 2_000_000}}),
    );
    assert_eq!(p["critical_path"], json!(["web", "api"]));
    assert_eq!(p["trace_id"], "tA");
    // Given traces win over the stored ones; those with timestamps are
    // filtered, those without kept.
    let timed = json!({"trace_id": "old", "spans": [{"span_id": "x", "service": "old", "duration_us": 900, "start_us": 5}]});
    let untimed =
        json!({"trace_id": "any", "spans": [{"span_id": "x", "service": "any", "duration_us": 1}]});
    let r = insights(
        &mut node,
        json!({"time_range": "1h", "traces": [timed.clone(), untimed.clone()]}),
    );
    assert_eq!(r["bottlenecks"], json!(["any"]));
    let r = insights(
        &mut node,
        json!({"time_range": {"start_us": 0, "end_us": 10}, "traces": [timed, untimed]}),
    );
    assert_eq!(r["bottlenecks"], json!(["old"]));
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
    let req = json!({"traces": [short, long]});
    let r = insights(&mut node, req.clone());
    assert_eq!(r["critical_path"], "b->c", "5 + 6 us beats 10 us: {r}");
    let p = profile(&mut node, req);
    assert_eq!(p["critical_path"], json!(["b", "c"]));
    assert_eq!(p["trace_id"], "long");
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
    let req = json!({"traces": [{"spans": spans}]});
    let p = profile(&mut node, req.clone());
    assert_eq!(
        p["critical_path"].as_array().unwrap().len(),
        20_000,
        "{}",
        p["type"]
    );
    let r = insights(&mut node, req);
    assert_eq!(
        r["critical_path"], "svc",
        "one service in a row is named once"
    );
    let chain: Vec<Value> = (0..20_000)
        .map(|i| json!({"service": format!("s{}", i % 2), "duration": 1}))
        .collect();
    let r = insights(&mut node, json!({"traces": [{"spans": chain}]}));
    let path = r["critical_path"].as_str().unwrap();
    assert_eq!(path.split("->").count(), 20_000, "{}", &path[..40]);
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
fn analyze_errors_reads_the_course_error_flags() {
    let mut node = Node::spawn();
    let r = node.call(json!({"type": "analyze_errors", "traces": [
        {"trace_id": "t1", "has_error": true, "service": "payment-service"},
        {"trace_id": "t2", "has_error": false},
        {"trace_id": "t3", "has_error": true, "service": "payment-service"}
    ]}));
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
        json!({"payment-service": "66.7%"})
    );
    assert_eq!(r["total_errors"], 2);
    // Every service named, against all the traces; a failed trace without
    // a service is "unknown"'s.
    let r = node.call(json!({"type": "analyze_errors", "traces": [
        {"trace_id": "a", "has_error": true, "service": "cart"},
        {"trace_id": "b", "has_error": false, "service": "search"},
        {"trace_id": "c", "has_error": true},
        {"trace_id": "d", "has_error": false, "service": "cart"}
    ]}));
    assert_eq!(
        r["error_rate_by_service"],
        json!({"cart": "25.0%", "search": "0.0%", "unknown": "25.0%"})
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
    let r = insights(&mut node, json!({}));
    assert_eq!(r["bottlenecks"], json!([]));
    assert_eq!(r["critical_path"], "");
    assert_eq!(r["optimization_suggestion"], "No spans to analyze");
    let r = insights(
        &mut node,
        json!({"traces": [{"trace_id": "e", "spans": []}]}),
    );
    assert_eq!(r["optimization_suggestion"], "No spans to analyze");
    let p = profile(&mut node, json!({}));
    assert_eq!(
        (&p["bottlenecks"], &p["critical_path"], &p["trace_id"]),
        (&json!([]), &json!([]), &Value::Null)
    );
    let r = node.call(json!({"type": "analyze_errors", "traces": []}));
    assert_eq!(
        (&r["error_rate_by_service"], &r["total_errors"]),
        (&json!({}), &json!(0))
    );
    let r = node.call(json!({"type": "service_map"}));
    assert_eq!(r["edges"], json!([]));
    let r = query(&mut node, json!({}));
    assert_eq!(
        (&r["traces"], &r["avg_duration_ms"]),
        (&json!(0), &json!(0.0))
    );
    assert_eq!(find(&mut node, json!({})), json!([]));
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
    let chain = |s: Value| json!([{"trace_id": "c", "spans": [s]}]);
    let full = json!({"spans": [span]});
    let course = json!({"spans": [{"service": "a", "duration": 1}]});
    let course_cases = [
        (chain(json!({"duration": 1})), "traces[0].spans[0].service"),
        (
            chain(json!({"service": "a", "duration": "x"})),
            "traces[0].spans[0].duration",
        ),
        (
            chain(json!({"service": "a", "duration": -1})),
            "traces[0].spans[0].duration",
        ),
        (
            chain(json!({"service": 7, "duration": 1})),
            "traces[0].spans[0].service",
        ),
        (
            json!([{"duration_ms": "x", "spans": [{"service": "a", "duration": 1}]}]),
            "traces[0].duration_ms",
        ),
        (
            json!([{"duration_ms": -1, "spans": [{"service": "a", "duration": 1}]}]),
            "traces[0].duration_ms",
        ),
        // One shape per trace and per request.
        (
            json!([{"spans": [{"service": "a", "duration": 1}, span]}]),
            "traces[0].spans[1]",
        ),
        (json!([full, full, course]), "traces[2]"),
        (json!([course, {"spans": []}, full]), "traces[2]"),
    ];
    for ty in [
        "analyze_traces",
        "profile_traces",
        "analyze_errors",
        "service_map",
    ] {
        for (traces, field) in traces_cases.iter().chain(&course_cases) {
            let r = node.call(json!({"type": ty, "traces": traces}));
            assert_error(&r, 12, &[field]);
        }
    }
    // The course's error flags: only for analyze_errors, in one shape.
    let flag = json!({"trace_id": "f", "has_error": true});
    for (traces, field) in [
        (json!([flag, full]), "traces[1]"),
        (json!([course, flag]), "traces[1]"),
        (
            json!([{"trace_id": "f", "has_error": "yes"}]),
            "traces[0].has_error",
        ),
        (
            json!([{"has_error": true, "service": 3}]),
            "traces[0].service",
        ),
    ] {
        let r = node.call(json!({"type": "analyze_errors", "traces": traces}));
        assert_error(&r, 12, &[field]);
    }
    for ty in ["analyze_traces", "profile_traces", "service_map"] {
        let r = node.call(json!({"type": ty, "traces": [flag]}));
        assert_error(&r, 12, &["traces[0].spans"]);
    }
    let ranges = [
        (json!("today"), "today"),
        (json!("1"), "time_range"),
        (json!("1 hour"), "time_range"),
        (json!("-1h"), "time_range"),
        (json!(3600), "time_range"),
        (json!({"start_us": 5}), "end_us"),
        (json!({"start_us": 5, "end_us": 4}), "time_range"),
        (json!({"start_us": "x", "end_us": 4}), "start_us"),
    ];
    for ty in ["analyze_traces", "profile_traces"] {
        for (range, field) in &ranges {
            let r = node.call(json!({"type": ty, "time_range": range}));
            assert_error(&r, 12, &["time_range", field]);
        }
    }
    for ty in ["query_traces", "find_traces"] {
        for (filters, field) in [
            (json!({"service": 5}), "service"),
            (json!({"min_duration_us": "x"}), "min_duration_us"),
            (json!({"status": "maybe"}), "status"),
        ]
        .into_iter()
        .chain(
            ranges
                .iter()
                .map(|(range, _)| (json!({"time_range": range}), "time_range")),
        ) {
            let mut body = filters;
            body["type"] = json!(ty);
            let r = node.call(body);
            assert_error(&r, 12, &[field]);
        }
        let r = node.call(json!({"type": ty, "time_range": {"start_us": 5}}));
        assert_error(&r, 12, &["time_range", "end_us"]);
    }
    node.finish();
}
