//! The example service against a real collector (rotel): what one
//! dependency and one call deliver, read from the collector's own log.

use std::collections::HashMap;
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tests::collector::{free_port, Collector, RSpan};

fn run(orders: u32, env: &[(&str, String)]) -> (Output, Duration) {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_example-service"))
        .arg(orders.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run the example service");
    (out, start.elapsed())
}

/// What the example must have made for `orders` orders: ids with
/// `id % 7 == 6` fail to parse, `id % 5 == 4` are declined.
fn expected(orders: u32) -> (usize, usize, usize) {
    let bad = (0..orders).filter(|i| i % 7 == 6).count();
    let declined = (0..orders).filter(|i| i % 7 != 6 && i % 5 == 4).count();
    let ok = orders as usize - bad - declined;
    // handle_order + parse_order each; price + charge when parsed; the
    // report and its `price` per order.
    let spans = 2 * orders as usize + 2 * (orders as usize - bad) + 1 + orders as usize;
    // an info per charged order, a warning per declined one, the summary.
    let logs = ok + declined + 1;
    (spans, logs, bad + declined)
}

#[test]
fn spans_and_logs_reach_the_collector_with_parents_kinds_statuses_and_service() {
    let port = free_port();
    let collector = Collector::start(port);
    let orders = 30;
    let (out, _) = run(
        orders,
        &[
            ("OTEL_SERVICE_NAME", "shop".into()),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (spans, logs, failures) = expected(orders);
    let got = collector.received(spans, logs);
    assert_eq!(got.spans.len(), spans, "every span, once");
    assert_eq!(got.logs.len(), logs, "every log record, once");
    assert!(got.spans.iter().all(|s| s.service == "shop"));
    assert!(got.logs.iter().all(|l| l.service == "shop"));

    let by_id: HashMap<&str, &RSpan> = got.spans.iter().map(|s| (s.id.as_str(), s)).collect();
    let parent = |s: &RSpan| -> Option<&RSpan> {
        let p = by_id.get(s.parent_id.as_str()).copied();
        if let Some(p) = p {
            assert_eq!(p.trace_id, s.trace_id, "a parent is in its child's trace");
        }
        p
    };
    let spans_of = &got.spans;
    let named = |n: &'static str| spans_of.iter().filter(move |s| s.name == n);

    assert_eq!(named("handle_order").count(), orders as usize);
    for h in named("handle_order") {
        assert_eq!(h.kind, "SPAN_KIND_SERVER");
        assert!(h.parent_id.is_empty(), "each order is a trace of its own");
    }
    for p in named("parse_order") {
        assert_eq!(parent(p).map(|p| p.name.as_str()), Some("handle_order"));
        assert_eq!(p.kind, "SPAN_KIND_INTERNAL");
    }
    for c in named("charge") {
        // crossed an .await on a multi-threaded runtime, parent kept
        assert_eq!(parent(c).map(|p| p.name.as_str()), Some("handle_order"));
        assert_eq!(c.kind, "SPAN_KIND_CLIENT");
    }
    let report = named("nightly_report").next().expect("the report's span");
    assert!(report.parent_id.is_empty());
    for p in named("price") {
        let up = parent(p).map(|p| p.name.as_str());
        assert!(
            matches!(up, Some("parse_order" | "nightly_report")),
            "price under {up:?}"
        );
    }
    assert_eq!(
        named("price")
            .filter(|p| p.trace_id == report.trace_id)
            .count(),
        orders as usize,
        "the report thread's spans stay in its trace"
    );

    // A failure marks its own span and the order's.
    let errors: Vec<&RSpan> = got
        .spans
        .iter()
        .filter(|s| s.status == "STATUS_CODE_ERROR")
        .collect();
    assert_eq!(
        errors.iter().filter(|s| s.name == "handle_order").count(),
        failures
    );
    assert_eq!(
        errors
            .iter()
            .filter(|s| s.name == "parse_order" || s.name == "charge")
            .count(),
        failures
    );

    // Logs carry the span they were written in.
    for l in &got.logs {
        if l.body.starts_with("card declined") {
            let s = by_id
                .get(l.span_id.as_str())
                .expect("a declined log's span");
            assert_eq!(s.name, "charge");
            assert_eq!(s.trace_id, l.trace_id);
        } else if l.body.contains("charged") {
            let s = by_id.get(l.span_id.as_str()).expect("a charged log's span");
            assert_eq!(s.name, "handle_order");
        } else {
            assert!(l.body.contains("orders,"), "{l:?}");
            assert!(l.span_id.is_empty(), "the summary is outside any span");
        }
    }
}

#[test]
fn the_guard_bounds_the_exit_when_the_collector_is_down() {
    let nobody = free_port();
    let (out, took) = run(
        50,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{nobody}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            ("TRACER_FLUSH_TIMEOUT_MS", "1000".into()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(took < Duration::from_secs(4), "exit took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dropped"), "drops are said: {stderr}");
}

#[test]
fn a_bad_variable_stops_the_service_naming_it() {
    let (out, _) = run(1, &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots".into())]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OTEL_BSP_MAX_QUEUE_SIZE"), "{stderr}");
}
