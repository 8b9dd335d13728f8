//! Export to a real OpenTelemetry collector: `rotel` (from PyPI), its OTLP/HTTP
//! receiver on a loopback port, logging what it receives in detail while it
//! exports to its blackhole exporter. Every assertion reads the collector's
//! own output. `.ci/run` installs rotel (`python3 -m pip install rotel`).

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tests::collector::{free_port, Collector, RLog, RSpan, TempDir};
use tests::Node;

fn hex(trace_id: &str) -> String {
    trace_id.replace('-', "")
}

fn chain_request(node: &mut Node) -> (String, Value) {
    let r = node.call(json!({"type": "instrument_service", "services": ["web", "api", "db"]}));
    assert_eq!(r["type"], "instrument_service_ok");
    let done = node.call(json!({"type": "http_request", "path": "/api/users/123"}));
    assert_eq!(done["type"], "trace_complete", "{done}");
    let tid = done["trace_id"].as_str().unwrap().to_owned();
    let trace = node.call(json!({"type": "get_trace", "trace_id": tid}));
    (tid, trace)
}

/// Every span and log of a request reaches the collector, with its ids,
/// parents, kinds and services, in each encoding the node speaks.
fn every_span_and_log_reaches_the_collector_with(wire: &[(&str, &str)]) {
    let port = free_port();
    let collector = Collector::start(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test"),
    ];
    env.extend_from_slice(wire);
    let mut node = Node::spawn_with_env(&env);
    let (tid, trace) = chain_request(&mut node);
    let r = node.call(json!({"type": "log", "message": "charged card", "trace_id": tid, "service": "payments", "level": "INFO"}));
    assert_eq!(r["type"], "log_ok");
    let f = node.finish_full();
    assert!(f.status.success(), "{}", f.stderr);

    let got = collector.received(3, 4);
    let stored: HashMap<String, Value> = trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["span_id"].as_str().unwrap().to_owned(), s.clone()))
        .collect();
    let ours: Vec<&RSpan> = got
        .spans
        .iter()
        .filter(|s| s.trace_id == hex(&tid))
        .collect();
    assert_eq!(ours.len(), 3, "the chain's spans: {:#?}", got.spans);
    for s in &ours {
        let want = stored
            .get(&s.id)
            .unwrap_or_else(|| panic!("span {} not stored", s.id));
        assert_eq!(s.name, "GET /api/users/123");
        assert_eq!(s.kind, "SPAN_KIND_SERVER");
        assert_eq!(Some(s.service.as_str()), want["service"].as_str());
        assert_eq!(s.parent_id, want["parent_span_id"].as_str().unwrap_or(""));
    }
    let services: Vec<&str> = ours.iter().map(|s| s.service.as_str()).collect();
    for svc in ["web", "api", "db"] {
        assert!(services.contains(&svc), "{services:?}");
    }
    // The sidecar's own spans (one per message) arrive too, as SERVER spans.
    assert!(got.spans.iter().any(|s| s.name == "instrument_service"));

    let logs: Vec<&RLog> = got
        .logs
        .iter()
        .filter(|l| l.trace_id == hex(&tid))
        .collect();
    assert_eq!(
        logs.len(),
        4,
        "3 hop logs and 1 client log: {:#?}",
        got.logs
    );
    for l in &logs[..] {
        if l.service == "payments" {
            assert_eq!(l.body, "charged card");
        } else {
            assert_eq!(l.body, "GET /api/users/123");
            let span = ours.iter().find(|s| s.service == l.service).unwrap();
            assert_eq!(l.span_id, span.id, "a hop's log carries its span id");
        }
    }
    assert!(collector.output().contains("deployment.environment"));
}

#[test]
fn every_span_and_log_reaches_the_collector() {
    // http/protobuf, the default.
    every_span_and_log_reaches_the_collector_with(&[]);
}

#[test]
fn every_span_and_log_reaches_the_collector_in_each_encoding() {
    for wire in [
        &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")][..],
        &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")][..],
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ][..],
        // Per-signal variables win over the general ones.
        &[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip"),
        ][..],
    ] {
        every_span_and_log_reaches_the_collector_with(wire);
    }
}

#[test]
fn spans_arrive_after_retries_when_the_collector_comes_up_late() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("TRACER_FLUSH_TIMEOUT_MS", "10000"),
    ]);
    let (tid, _) = chain_request(&mut node);
    std::thread::sleep(Duration::from_millis(700));
    let before = node.call(json!({"type": "stats"}));
    assert!(
        before["export"]["spans"]["retries"].as_u64().unwrap() > 0,
        "the node kept trying: {before}"
    );
    let collector = Collector::start(port);
    let got = collector.received(3, 3);
    assert_eq!(
        got.spans.iter().filter(|s| s.trace_id == hex(&tid)).count(),
        3,
        "{:#?}",
        got.spans
    );
    let after = node.call(json!({"type": "stats"}));
    assert_eq!(after["export"]["spans"]["dropped"], 0, "{after}");
    let f = node.finish_full();
    assert!(f.status.success());
    assert!(f.stderr.contains("0 dropped"), "{}", f.stderr);
}

#[test]
fn a_collector_that_never_comes_up_costs_bounded_memory_and_a_bounded_wait() {
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "50"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "10"),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("TRACER_FLUSH_TIMEOUT_MS", "1000"),
    ]);
    for i in 0..300 {
        let r = node.call(json!({"type": "http_request", "path": format!("/{i}")}));
        assert_eq!(r["type"], "http_response", "the node keeps answering: {r}");
    }
    let s = node.call(json!({"type": "stats"}));
    let spans = &s["export"]["spans"];
    assert!(
        spans["queued"].as_u64().unwrap() <= 50,
        "bounded queue: {s}"
    );
    assert!(
        spans["dropped"].as_u64().unwrap() > 0,
        "drops are counted: {s}"
    );
    assert_eq!(spans["exported"], 0);
    let start = Instant::now();
    let f = node.finish_full();
    assert!(f.status.success());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "exited {:?} after stdin closed",
        start.elapsed()
    );
    assert!(
        f.stderr.contains("export of spans: 0 exported"),
        "{}",
        f.stderr
    );
}

#[test]
fn the_file_exporter_writes_one_otlp_request_per_line() {
    let dir = TempDir::new("file");
    let path = dir.0.join("export.jsonl");
    let mut node = Node::spawn_with_env(&[
        ("TRACER_EXPORT_FILE", path.to_str().unwrap()),
        ("OTEL_SERVICE_NAME", "offline"),
    ]);
    let (tid, _) = chain_request(&mut node);
    assert!(node.finish_full().status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let reqs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans: Vec<&Value> = reqs
        .iter()
        .filter_map(|r| r["resourceSpans"].as_array())
        .flatten()
        .flat_map(|rs| rs["scopeSpans"][0]["spans"].as_array().unwrap())
        .filter(|s| s["traceId"] == hex(&tid).as_str())
        .collect();
    assert_eq!(spans.len(), 3);
    assert!(spans.iter().all(|s| s["kind"] == 2));
    let logs = reqs
        .iter()
        .filter_map(|r| r["resourceLogs"].as_array())
        .flatten()
        .flat_map(|rl| rl["scopeLogs"][0]["logRecords"].as_array().unwrap())
        .filter(|l| l["traceId"] == hex(&tid).as_str())
        .count();
    assert_eq!(logs, 3);
}

#[test]
fn bad_export_settings_stop_start_up_naming_the_variable() {
    for (k, v) in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/xml"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
    ] {
        let mut node = Node::spawn_with_env(&[(k, v)]);
        node.close_stdin();
        let f = node.finish_full();
        assert!(!f.status.success(), "{k}={v} accepted");
        assert!(f.stderr.contains(k), "{k}: {}", f.stderr);
    }
}

#[test]
fn collected_spans_and_client_named_roots_are_exported_as_they_are() {
    let dir = TempDir::new("collected");
    let path = dir.0.join("export.jsonl");
    let mut node = Node::spawn_with_env(&[("TRACER_EXPORT_FILE", path.to_str().unwrap())]);
    let r = node.call(
        json!({"type": "span", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7", "service": "db", "name": "SELECT users",
        "start_us": 1_700_000_000_000_000u64, "duration_us": 5000}),
    );
    assert_eq!(r["type"], "span_accepted", "{r}");
    let created =
        node.call(json!({"type": "create_span", "name": "checkout", "trace_id": "abc123"}));
    let sid = created["span_id"].as_str().unwrap().to_owned();
    let done = node.call(json!({"type": "span_end", "span_id": sid}));
    assert_eq!(done["type"], "span_complete", "{done}");
    assert!(node.finish_full().status.success());
    let text = std::fs::read_to_string(&path).unwrap();
    let spans: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|r| r["resourceSpans"].as_array().cloned())
        .flatten()
        .flat_map(|rs| rs["scopeSpans"][0]["spans"].as_array().unwrap().clone())
        .collect();
    let collected = spans
        .iter()
        .find(|s| s["name"] == "SELECT users")
        .expect("the collected span is exported");
    assert_eq!(collected["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(collected["spanId"], "00f067aa0ba902b7");
    let root = spans
        .iter()
        .find(|s| s["spanId"] == sid.as_str())
        .expect("the client's span is exported");
    assert!(
        root.get("parentSpanId").is_none(),
        "a root in a client-named trace has no parent: {root}"
    );
}

/// A scripted OTLP endpoint on loopback: answers each request with the next
/// status of its script (the last one repeats) and records when each came.
struct Scripted {
    port: u16,
    times: std::sync::Arc<std::sync::Mutex<Vec<(Instant, u16)>>>,
}

impl Scripted {
    fn start(script: &'static [(u16, Option<&'static str>)]) -> Scripted {
        use std::io::{BufRead, BufReader, Write};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let times = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = times.clone();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; len];
                let _ = std::io::Read::read_exact(&mut reader, &mut body);
                let (status, retry_after) = script[n.min(script.len() - 1)];
                seen.lock().unwrap().push((Instant::now(), status));
                let extra = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Scripted { port, times }
    }
}

#[test]
fn a_429_is_retried_after_the_servers_retry_after() {
    let server = Scripted::start(&[(429, Some("1")), (200, None)]);
    let url = format!("http://127.0.0.1:{}/v1/traces", server.port);
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ]);
    let r = node.call(json!({"type": "http_request", "path": "/x"}));
    assert_eq!(r["type"], "http_response");
    let f = node.finish_full();
    assert!(f.status.success());
    let times = server.times.lock().unwrap().clone();
    assert!(times.len() >= 2, "retried: {times:?}");
    assert_eq!((times[0].1, times[1].1), (429, 200));
    let waited = times[1].0 - times[0].0;
    assert!(
        waited >= Duration::from_millis(900),
        "Retry-After: 1 was honoured, waited {waited:?}"
    );
    assert!(f.stderr.contains("0 dropped"), "{}", f.stderr);
}

#[test]
fn a_refused_batch_is_dropped_and_counted_not_retried() {
    let server = Scripted::start(&[(400, None)]);
    let url = format!("http://127.0.0.1:{}/v1/traces", server.port);
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
    ]);
    node.call(json!({"type": "http_request", "path": "/x"}));
    let f = node.finish_full();
    assert!(f.status.success());
    assert_eq!(
        server.times.lock().unwrap().len(),
        1,
        "a 400 is not retried"
    );
    assert!(
        f.stderr.contains("export refused (HTTP 400)"),
        "{}",
        f.stderr
    );
    assert!(
        !f.stderr.contains(" 0 dropped"),
        "the drop is counted: {}",
        f.stderr
    );
}

/// 200,000 `log` messages (each also a SERVER span of the node's own) with
/// the default export settings: a healthy local collector receives every
/// span and every log. The node holds its input back while an export queue
/// is nearly full rather than drop.
#[test]
fn a_healthy_collector_receives_everything_of_200000_logs() {
    let port = free_port();
    let _collector = Collector::start_quiet(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut node = Node::spawn_with_env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())]);
    const N: usize = 200_000;
    let mut input = String::with_capacity(N * 120);
    for i in 0..N {
        input.push_str(&format!(
            "{{\"src\":\"c1\",\"dest\":\"n1\",\"body\":{{\"type\":\"log\",\"message\":\"request {i}\",\"trace_id\":\"trace-{}\",\"service\":\"svc-{}\"}}}}\n",
            i % 5_000,
            i % 7
        ));
    }
    node.send_bytes(input.as_bytes());
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["logs"]["stored"], N as u64, "{s}");
    let f = node.finish_full();
    assert!(f.status.success(), "{}", f.stderr);
    // One SERVER span per message (stats included) and one record per log.
    assert!(
        f.stderr
            .contains(&format!("export of spans: {} exported, 0 dropped", N + 1)),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr
            .contains(&format!("export of logs: {N} exported, 0 dropped")),
        "{}",
        f.stderr
    );
}

/// A collector that accepts connections and never answers: the flush
/// deadline bounds the node's exit, the request in flight included, and
/// what it carried is counted as dropped.
#[test]
fn the_flush_deadline_bounds_the_exit_with_a_request_in_flight() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            keep.lock().unwrap().push(conn); // read nothing, answer nothing
        }
    });
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ("OTEL_BSP_EXPORT_TIMEOUT", "30000"),
        ("TRACER_FLUSH_TIMEOUT_MS", "1000"),
    ]);
    let (_tid, _) = chain_request(&mut node);
    // Let the export thread start its request (which will never return).
    std::thread::sleep(Duration::from_millis(200));
    assert!(!held.lock().unwrap().is_empty(), "the node connected");
    let start = Instant::now();
    let f = node.finish_full();
    let took = start.elapsed();
    assert!(f.status.success(), "{}", f.stderr);
    assert!(
        took < Duration::from_millis(2_500),
        "exit took {took:?} with a 1 s flush deadline"
    );
    assert!(
        f.stderr.contains("export of spans: 0 exported"),
        "{}",
        f.stderr
    );
    assert!(
        !f.stderr.contains("export of spans: 0 exported, 0 dropped"),
        "what was in flight is counted: {}",
        f.stderr
    );
}

/// Records a plugin writes through the `log` crate, inside the span of the
/// message it handles, reach the collector with that span's ids (and the
/// log store, where `search_logs` finds them by trace).
#[test]
fn log_crate_records_reach_the_collector_in_their_span() {
    let port = free_port();
    let collector = Collector::start(port);
    let endpoint = format!("http://127.0.0.1:{port}");
    let mut node = Node::spawn_with_env(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ("TRACER_DEBUG_HANDLERS", "1"),
    ]);
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = node.call(
        json!({"type": "debug_log", "message": "cache miss for user 7",
        "level": "warn", "traceparent": format!("00-{trace}-00f067aa0ba902b7-01")}),
    );
    assert_eq!(r["type"], "debug_log_ok", "{r}");
    let found = node.call(json!({"type": "search_logs", "trace_id": trace}));
    let logs = found["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{found}");
    assert_eq!(logs[0]["message"], "cache miss for user 7");
    assert_eq!(logs[0]["level"], "WARN");
    let f = node.finish_full();
    assert!(f.status.success(), "{}", f.stderr);
    let got = collector.received(0, 1);
    let rec = got
        .logs
        .iter()
        .find(|l| l.body == "cache miss for user 7")
        .unwrap_or_else(|| panic!("{:#?}", got.logs));
    assert_eq!(rec.trace_id, trace);
    assert_eq!(rec.service, "tracer-node");
    let server = got
        .spans
        .iter()
        .find(|s| s.name == "debug_log" && s.trace_id == trace)
        .unwrap_or_else(|| panic!("{:#?}", got.spans));
    assert_eq!(rec.span_id, server.id, "written inside the sidecar's span");
    assert_eq!(server.parent_id, "00f067aa0ba902b7");
}
