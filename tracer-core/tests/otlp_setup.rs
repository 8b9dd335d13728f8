//! The one-call setup, through its public interface: `#[traced]` spans,
//! `log` records and `tracing` spans and events all reach the export (here
//! the export file, read back), and the guard delivers them when dropped.
//! One test: the setup installs process-wide state, once per process.

use serde_json::Value;
use std::time::Duration;
use tracer_core::otlp::{Builder, Protocol};

#[tracer_core::traced(kind = server)]
fn handle(id: u32) -> u32 {
    log::info!("handling {id}");
    lookup(id)
}

#[tracer_core::traced]
fn lookup(id: u32) -> u32 {
    let _db = tracing::info_span!("SELECT orders", db.system = "postgresql").entered();
    tracing::warn!(id, "slow query");
    id * 2
}

fn hex(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

#[test]
fn traced_log_and_tracing_reach_the_export_and_the_guard_flushes() {
    let path = std::env::temp_dir().join(format!("tracer-setup-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let guard = Builder::new()
        .service_name("orders")
        .resource_attribute("deployment.environment", "test")
        .protocol(Protocol::Json)
        .export_file(&path)
        .flush_timeout(Duration::from_secs(5))
        .install()
        .expect("first setup");
    assert!(
        Builder::new().export_file(&path).install().is_err(),
        "a second setup is refused, not silently ignored"
    );
    assert_eq!(handle(21), 42);
    let stats = guard.shutdown();
    assert!(stats.iter().all(|(_, s)| s.dropped == 0), "{stats:?}");

    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let mut spans = Vec::new();
    let mut logs = Vec::new();
    for line in text.lines() {
        let req: Value = serde_json::from_str(line).unwrap();
        for rs in req["resourceSpans"].as_array().into_iter().flatten() {
            let attrs = rs["resource"]["attributes"].to_string();
            assert!(attrs.contains("orders") && attrs.contains("deployment.environment"));
            for ss in rs["scopeSpans"].as_array().unwrap() {
                spans.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
        for rl in req["resourceLogs"].as_array().into_iter().flatten() {
            for sl in rl["scopeLogs"].as_array().unwrap() {
                logs.extend(sl["logRecords"].as_array().unwrap().iter().cloned());
            }
        }
    }
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
    };
    let (h, l, q) = (span("handle"), span("lookup"), span("SELECT orders"));
    assert_eq!(spans.len(), 3);
    assert_eq!(h["kind"], 2, "SERVER");
    assert_eq!(l["parentSpanId"], h["spanId"]);
    assert_eq!(q["parentSpanId"], l["spanId"], "tracing nests in #[traced]");
    assert!(spans.iter().all(|s| s["traceId"] == h["traceId"]));

    let log = |body: &str| {
        logs.iter()
            .find(|r| r["body"]["stringValue"] == body)
            .unwrap_or_else(|| panic!("no log {body:?} in {logs:?}"))
    };
    let info = log("handling 21");
    assert_eq!(hex(&info["spanId"]), hex(&h["spanId"]), "log's span");
    let warn = log("slow query");
    assert_eq!(
        hex(&warn["spanId"]),
        hex(&q["spanId"]),
        "tracing event's span"
    );
    assert_eq!(hex(&warn["traceId"]), hex(&h["traceId"]));
}
