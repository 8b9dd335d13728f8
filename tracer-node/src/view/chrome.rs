//! The Chrome Trace Event format (`{"traceEvents": [...]}`), which Perfetto
//! UI, chrome://tracing and speedscope open: one process per service, one
//! thread per trace, a complete (`X`) event per span, and a flow arrow
//! from parent to child where a call crosses services.

use super::layout::{rows, Orphan};
use super::model::Trace;
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeSet, HashMap};

/// The trace-event document. Times are microseconds since the earliest
/// span start of all `traces`, which `otherData.epoch_unix_nano` gives.
pub fn document(traces: &[&Trace]) -> Json {
    let base = traces
        .iter()
        .flat_map(|t| t.spans.iter().map(|s| s.start))
        .min()
        .unwrap_or(0);
    let us = |ns: u64| ns.saturating_sub(base) as f64 / 1000.0;
    let services: BTreeSet<&str> = traces
        .iter()
        .flat_map(|t| t.spans.iter().map(|s| s.service.as_str()))
        .collect();
    let pid: HashMap<&str, usize> = services
        .iter()
        .enumerate()
        .map(|(i, s)| (*s, i + 1))
        .collect();

    let mut events: Vec<Json> = services
        .iter()
        .map(|s| json!({"ph": "M", "name": "process_name", "pid": pid[s], "args": {"name": s}}))
        .collect();
    let mut flow_id = 0u64;
    for (n, trace) in traces.iter().enumerate() {
        let tid = n + 1;
        let rows = rows(&trace.spans);
        let root = rows
            .first()
            .map_or("", |r| trace.spans[r.span].name.as_str());
        let short: String = trace.id.chars().take(8).collect();
        for service in trace.services() {
            events.push(
                json!({"ph": "M", "name": "thread_name", "pid": pid[service], "tid": tid,
                "args": {"name": format!("trace {short} {root}")}}),
            );
        }
        let by_id: HashMap<&str, usize> = trace
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.as_str(), i))
            .collect();
        for row in &rows {
            let s = &trace.spans[row.span];
            let attributes: Map<String, Json> = s.attributes.iter().cloned().collect();
            let mut args = json!({
                "trace_id": s.trace_id,
                "span_id": s.span_id,
                "kind": s.kind,
                "status": s.status.code,
                "start_unix_nano": s.start.to_string(),
                "attributes": attributes,
            });
            if let Some(parent) = &s.parent_id {
                args["parent_span_id"] = json!(parent);
            }
            if !s.status.message.is_empty() {
                args["status_message"] = json!(s.status.message);
            }
            match row.orphan {
                Some(Orphan::MissingParent) => args["parent_missing"] = json!(true),
                Some(Orphan::Cycle) => args["parent_cycle"] = json!(true),
                None => {}
            }
            events.push(json!({
                "name": s.name, "cat": s.kind, "ph": "X",
                "ts": us(s.start), "dur": s.duration() as f64 / 1000.0,
                "pid": pid[s.service.as_str()], "tid": tid, "args": args,
            }));
            let parent = s
                .parent_id
                .as_deref()
                .and_then(|p| by_id.get(p))
                .map(|&i| &trace.spans[i]);
            if let Some(parent) = parent.filter(|p| p.service != s.service && row.orphan.is_none())
            {
                flow_id += 1;
                // The arrow leaves the parent's slice (clamped into it when
                // the clocks disagree) and enters the child's.
                let from = s.start.clamp(parent.start, parent.end);
                events.push(
                    json!({"ph": "s", "id": flow_id, "name": "call", "cat": "flow",
                    "pid": pid[parent.service.as_str()], "tid": tid, "ts": us(from)}),
                );
                events.push(
                    json!({"ph": "f", "bp": "e", "id": flow_id, "name": "call", "cat": "flow",
                    "pid": pid[s.service.as_str()], "tid": tid, "ts": us(s.start)}),
                );
            }
        }
    }
    json!({
        "traceEvents": events,
        "otherData": {"source": "tracer-node view", "epoch_unix_nano": base.to_string()},
    })
}

#[cfg(test)]
mod tests {
    use super::super::model::Span;
    use super::*;

    #[test]
    fn spans_become_complete_events_with_flows_across_services() {
        let span = |id: &str, parent: Option<&str>, service: &str, start, end| Span {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            name: id.into(),
            service: service.into(),
            start,
            end,
            ..Span::default()
        };
        let trace = Trace {
            id: "t".into(),
            spans: vec![
                span("web", None, "web", 1_000_000, 1_010_500),
                span("db", Some("web"), "db", 1_002_000, 1_003_000),
                span("inner", Some("web"), "web", 1_004_000, 1_005_000),
            ],
            logs: vec![],
        };
        let doc = document(&[&trace]);
        let events = doc["traceEvents"].as_array().unwrap();
        let x: Vec<&Json> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(x.len(), 3);
        assert_eq!(
            (x[0]["ts"].as_f64(), x[0]["dur"].as_f64()),
            (Some(0.0), Some(10.5))
        );
        assert_eq!(x[1]["name"], "db");
        assert_eq!(x[1]["ts"], 2.0);
        assert_ne!(x[0]["pid"], x[1]["pid"], "a process per service");
        assert_eq!(x[0]["tid"], x[1]["tid"], "a thread per trace");
        let flows: Vec<&Json> = events
            .iter()
            .filter(|e| e["ph"] == "s" || e["ph"] == "f")
            .collect();
        assert_eq!(flows.len(), 2, "only web -> db crosses services");
        assert_eq!(
            (flows[0]["pid"].clone(), flows[1]["pid"].clone()),
            (x[0]["pid"].clone(), x[1]["pid"].clone())
        );
        let names = events
            .iter()
            .filter(|e| e["name"] == "process_name")
            .count();
        assert_eq!(names, 2);
        assert_eq!(doc["otherData"]["epoch_unix_nano"], "1000000");
    }
}
