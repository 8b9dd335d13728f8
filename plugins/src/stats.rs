//! `stats`: the node's caps and what its stores have kept and let go.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tracer_core::otlp::ExportStats;
use tracer_node::{handler, Ctx, Error, RuntimeStats};

/// `stats {}`.
#[derive(Deserialize)]
pub struct Stats {}

/// The trace store's numbers.
#[derive(Serialize)]
pub struct TraceStats {
    traces: usize,
    max_traces: usize,
    max_spans_per_trace: usize,
    spans_stored: u64,
    spans_dropped: u64,
    traces_evicted: u64,
    spans_evicted: u64,
    node_spans_displaced: u64,
    bytes: usize,
    max_bytes: usize,
    traces_evicted_for_bytes: u64,
    spans_refused_for_bytes: u64,
}

/// The log store's numbers.
#[derive(Serialize)]
pub struct LogStats {
    entries: usize,
    max_entries: usize,
    bytes: usize,
    max_bytes: usize,
    stored: u64,
    dropped: u64,
    dropped_for_bytes: u64,
    refused_too_large: u64,
}

/// The exporters' numbers, when export is on.
#[derive(Serialize)]
pub struct Export {
    #[serde(skip_serializing_if = "Option::is_none")]
    spans: Option<ExportStats>,
    #[serde(skip_serializing_if = "Option::is_none")]
    logs: Option<ExportStats>,
}

/// `stats_ok {traces, logs, runtime, drops, export?}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "stats_ok")]
pub struct StatsOk {
    traces: TraceStats,
    logs: LogStats,
    runtime: RuntimeStats,
    /// What was dropped or refused elsewhere, by place and reason.
    drops: BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    export: Option<Export>,
}

/// Caps and counters of the node's stores.
#[handler("stats")]
pub fn stats(ctx: &mut Ctx<'_>, _req: Stats) -> Result<StatsOk, Error> {
    let traces = {
        let t = ctx.traces();
        let (limits, st) = (t.limits(), t.stats());
        TraceStats {
            traces: t.len(),
            max_traces: limits.max_traces,
            max_spans_per_trace: limits.max_spans_per_trace,
            spans_stored: st.spans_stored,
            spans_dropped: st.spans_dropped,
            traces_evicted: st.traces_evicted,
            spans_evicted: st.spans_evicted,
            node_spans_displaced: st.node_spans_displaced,
            bytes: t.bytes(),
            max_bytes: limits.max_bytes,
            traces_evicted_for_bytes: st.traces_evicted_for_bytes,
            spans_refused_for_bytes: st.spans_refused_for_bytes,
        }
    };
    let logs = {
        let l = ctx.logs();
        let st = l.stats();
        LogStats {
            entries: l.len(),
            max_entries: l.cap(),
            bytes: l.bytes(),
            max_bytes: l.max_bytes(),
            stored: st.stored,
            dropped: st.dropped,
            dropped_for_bytes: st.dropped_for_bytes,
            refused_too_large: st.refused_too_large,
        }
    };
    let export = match ctx.export_stats() {
        (None, None) => None,
        (spans, logs) => Some(Export { spans, logs }),
    };
    Ok(StatsOk {
        traces,
        logs,
        runtime: ctx.runtime_stats(),
        drops: ctx.drops().clone(),
        export,
    })
}
