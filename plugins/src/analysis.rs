//! Questions about traces: `query_traces` finds stored traces;
//! `analyze_traces`, `analyze_errors` and `service_map` work over the
//! stored traces or over traces given in the request.
//!
//! Stored traces are seen without the node's own message spans: the SERVER
//! span the runtime opens for every message (attribute `rpc.system:
//! "maelstrom"`) and the spans under it (its CLIENT `send` spans). They
//! describe the node serving the protocol, not the traced system.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use tracer_core::{SpanData, SpanId, Status};
use tracer_node::stores::{StoredTrace, TraceStore};
use tracer_node::{handler, Ctx, Error};

/// A span's outcome, from `"OK"`, `"ERROR"` or `"UNSET"` in any case.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Failed(bool);

impl<'de> Deserialize<'de> for Failed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_uppercase().as_str() {
            "ERROR" => Ok(Failed(true)),
            "OK" | "UNSET" => Ok(Failed(false)),
            _ => Err(de::Error::custom(format!(
                "{s:?} is not one of OK, ERROR, UNSET"
            ))),
        }
    }
}

/// One span, as the analysis sees it.
#[derive(Clone, Debug, Deserialize)]
pub struct SpanIn {
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    service: String,
    #[serde(default)]
    name: Option<String>,
    duration_us: u64,
    #[serde(default, rename = "status")]
    failed: Failed,
    #[serde(default)]
    start_us: Option<u64>,
}

impl SpanIn {
    /// `service:name`, or the service alone for a span without a name of
    /// its own (a collected span without `name` is named after its service).
    fn label(&self) -> String {
        match &self.name {
            Some(n) if *n != self.service => format!("{}:{n}", self.service),
            _ => self.service.clone(),
        }
    }
}

/// One trace, as the analysis sees it.
#[derive(Clone, Debug, Deserialize)]
pub struct TraceIn {
    #[serde(default)]
    trace_id: Option<String>,
    spans: Vec<SpanIn>,
}

/// Whether a stored span is the node's own message span.
fn is_message_span(s: &SpanData) -> bool {
    s.attribute("rpc.system").and_then(|v| v.as_str()) == Some("maelstrom")
}

/// A stored trace without the node's own message spans and what they
/// started; `None` when nothing else is left.
fn from_stored(name: String, trace: &StoredTrace) -> Option<TraceIn> {
    let mut skipped: HashSet<SpanId> = HashSet::new();
    let mut spans = Vec::new();
    for s in trace.tree_order() {
        if is_message_span(s) || s.parent_span_id.is_some_and(|p| skipped.contains(&p)) {
            skipped.insert(s.context.span_id());
            continue;
        }
        spans.push(SpanIn {
            span_id: trace.spell_span(s.context.span_id()),
            parent_span_id: s.parent_span_id.map(|p| trace.spell_span(p)),
            service: s
                .attribute("service.name")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
                .to_owned(),
            name: Some(s.name.to_string()),
            duration_us: s.duration_nanos() / 1_000,
            failed: Failed(matches!(s.status, Status::Error(_))),
            start_us: Some(s.start_unix_nanos / 1_000),
        });
    }
    (!spans.is_empty()).then_some(TraceIn {
        trace_id: Some(name),
        spans,
    })
}

/// Every stored trace, oldest first, as the analysis sees it.
fn stored(store: &TraceStore) -> Vec<TraceIn> {
    store
        .iter()
        .filter_map(|(id, t)| from_stored(store.spell(id), t))
        .collect()
}

/// `part` of `whole` as a percentage with one decimal, halves rounded up:
/// `"66.7%"`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0.0%".to_owned();
    }
    let x = (part as f64 * 1000.0 / whole as f64).round() / 10.0;
    format!("{x:.1}%")
}

/// The tree of one trace: parent and children by index. A parent id not in
/// the trace (or the span itself) makes a root; a repeated span id counts
/// once as a parent (its first occurrence).
struct Tree<'a> {
    spans: &'a [SpanIn],
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [SpanIn]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            index.entry(s.span_id.as_str()).or_insert(i);
        }
        let parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_span_id
                    .as_deref()
                    .and_then(|p| index.get(p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        let mut children = vec![Vec::new(); spans.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        Tree {
            spans,
            parent,
            children,
        }
    }

    /// Duration minus the children's durations (zero when concurrent
    /// children add up to more than the parent).
    fn self_time_us(&self, i: usize) -> u64 {
        let kids: u64 = self.children[i]
            .iter()
            .map(|&c| self.spans[c].duration_us)
            .sum();
        self.spans[i].duration_us.saturating_sub(kids)
    }

    /// The root-to-leaf chain with the largest total duration, and that
    /// total. Spans caught in a parent cycle are reachable from no root and
    /// take no part.
    fn critical_path(&self) -> (Vec<usize>, u64) {
        let roots: Vec<usize> = (0..self.spans.len())
            .filter(|&i| self.parent[i].is_none())
            .collect();
        // Pre-order without recursion: traces can be deep.
        let mut order = Vec::with_capacity(self.spans.len());
        let mut stack: Vec<usize> = roots.iter().rev().copied().collect();
        let mut seen = vec![false; self.spans.len()];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            order.push(i);
            stack.extend(self.children[i].iter().rev());
        }
        let mut best = vec![0u64; self.spans.len()];
        let mut next: Vec<Option<usize>> = vec![None; self.spans.len()];
        for &i in order.iter().rev() {
            let mut top: Option<usize> = None;
            for &c in &self.children[i] {
                if top.is_none_or(|t| best[c] > best[t]) {
                    top = Some(c);
                }
            }
            next[i] = top;
            best[i] = self.spans[i]
                .duration_us
                .saturating_add(top.map_or(0, |t| best[t]));
        }
        let Some(start) = roots
            .into_iter()
            .reduce(|a, b| if best[b] > best[a] { b } else { a })
        else {
            return (Vec::new(), 0);
        };
        let mut path = vec![start];
        while let Some(n) = next[*path.last().expect("path starts non-empty")] {
            path.push(n);
        }
        (path, best[start])
    }
}

/// A service's share of the self time of every span analyzed.
#[derive(Debug, PartialEq, Serialize)]
pub struct Bottleneck {
    service: String,
    self_time_us: u64,
    share: String,
}

/// `insights {bottlenecks, critical_path, optimization_suggestion}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "insights")]
pub struct Insights {
    bottlenecks: Vec<Bottleneck>,
    critical_path: Vec<String>,
    optimization_suggestion: String,
}

/// Services by self time, largest first (ties by name); the critical path
/// of the trace with the longest one.
pub fn insights(traces: &[TraceIn]) -> Insights {
    let mut self_time: BTreeMap<&str, u64> = BTreeMap::new();
    let mut critical: Option<(&TraceIn, Vec<usize>, u64)> = None;
    for t in traces {
        let tree = Tree::new(&t.spans);
        for (i, s) in t.spans.iter().enumerate() {
            *self_time.entry(s.service.as_str()).or_default() += tree.self_time_us(i);
        }
        let (path, total) = tree.critical_path();
        if !path.is_empty() && critical.as_ref().is_none_or(|(_, _, best)| total > *best) {
            critical = Some((t, path, total));
        }
    }
    let total: u64 = self_time.values().sum();
    let mut bottlenecks: Vec<Bottleneck> = self_time
        .into_iter()
        .map(|(service, us)| Bottleneck {
            service: service.to_owned(),
            self_time_us: us,
            share: percent(us, total),
        })
        .collect();
    bottlenecks.sort_by_key(|b| std::cmp::Reverse(b.self_time_us));
    let critical_path: Vec<String> = critical
        .as_ref()
        .map(|(t, path, _)| path.iter().map(|&i| t.spans[i].label()).collect())
        .unwrap_or_default();
    let optimization_suggestion = match (bottlenecks.first(), &critical) {
        (Some(b), Some((t, _, us))) => format!(
            "Optimize {}: it spends {} of all self time ({} us) in its own work. \
             The slowest chain{} takes {us} us: {}.",
            b.service,
            b.share,
            b.self_time_us,
            t.trace_id
                .as_deref()
                .map(|id| format!(" (trace {id})"))
                .unwrap_or_default(),
            critical_path.join(" -> "),
        ),
        _ => "No spans to analyze.".to_owned(),
    };
    Insights {
        bottlenecks,
        critical_path,
        optimization_suggestion,
    }
}

/// `error_analysis {error_rate_by_service, total_errors}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "error_analysis")]
pub struct ErrorAnalysis {
    error_rate_by_service: BTreeMap<String, String>,
    total_errors: u64,
}

/// The share of each service's spans with status ERROR.
pub fn error_analysis(traces: &[TraceIn]) -> ErrorAnalysis {
    let mut counts: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for s in traces.iter().flat_map(|t| &t.spans) {
        let c = counts.entry(s.service.as_str()).or_default();
        c.0 += u64::from(s.failed.0);
        c.1 += 1;
    }
    ErrorAnalysis {
        total_errors: counts.values().map(|c| c.0).sum(),
        error_rate_by_service: counts
            .into_iter()
            .map(|(svc, (errors, all))| (svc.to_owned(), percent(errors, all)))
            .collect(),
    }
}

/// One edge of the service map: spans of `from` with children in `to`.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    from: String,
    to: String,
    calls: u64,
    errors: u64,
}

/// `service_map {edges}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "service_map")]
pub struct ServiceMap {
    edges: Vec<Edge>,
}

/// Parent service -> child service, for every span whose parent is in its
/// trace and belongs to another service; `errors` counts children with
/// status ERROR. Sorted by `from`, then `to`.
pub fn service_map(traces: &[TraceIn]) -> ServiceMap {
    let mut edges: BTreeMap<(&str, &str), (u64, u64)> = BTreeMap::new();
    for t in traces {
        let tree = Tree::new(&t.spans);
        for (i, s) in t.spans.iter().enumerate() {
            let Some(p) = tree.parent[i] else { continue };
            let from = t.spans[p].service.as_str();
            if from == s.service {
                continue;
            }
            let e = edges.entry((from, s.service.as_str())).or_default();
            e.0 += 1;
            e.1 += u64::from(s.failed.0);
        }
    }
    ServiceMap {
        edges: edges
            .into_iter()
            .map(|((from, to), (calls, errors))| Edge {
                from: from.to_owned(),
                to: to.to_owned(),
                calls,
                errors,
            })
            .collect(),
    }
}

/// `analyze_traces`, `analyze_errors`, `service_map`: `{traces?}`.
#[derive(Deserialize)]
pub struct Analyze {
    #[serde(default)]
    traces: Option<Vec<TraceIn>>,
}

fn traces_of(ctx: &Ctx<'_>, req: Analyze) -> Vec<TraceIn> {
    req.traces.unwrap_or_else(|| stored(&ctx.traces()))
}

/// Bottlenecks by self time and the critical path.
#[handler("analyze_traces")]
pub fn analyze_traces(ctx: &mut Ctx<'_>, req: Analyze) -> Result<Insights, Error> {
    Ok(insights(&traces_of(ctx, req)))
}

/// Error rates by service.
#[handler("analyze_errors")]
pub fn analyze_errors(ctx: &mut Ctx<'_>, req: Analyze) -> Result<ErrorAnalysis, Error> {
    Ok(error_analysis(&traces_of(ctx, req)))
}

/// Which service calls which.
#[handler("service_map")]
pub fn service_map_handler(ctx: &mut Ctx<'_>, req: Analyze) -> Result<ServiceMap, Error> {
    Ok(service_map(&traces_of(ctx, req)))
}

/// `time_range {start_us, end_us}`, inclusive.
#[derive(Deserialize)]
pub struct TimeRange {
    start_us: u64,
    end_us: u64,
}

/// A trace's outcome in a query: `"OK"` (no span failed) or `"ERROR"`.
pub struct WantFailed(bool);

impl<'de> Deserialize<'de> for WantFailed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_uppercase().as_str() {
            "ERROR" => Ok(WantFailed(true)),
            "OK" => Ok(WantFailed(false)),
            _ => Err(de::Error::custom(format!("{s:?} is not one of OK, ERROR"))),
        }
    }
}

/// `query_traces {service?, time_range?, min_duration_us?, status?}`.
#[derive(Deserialize)]
pub struct QueryTraces {
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    time_range: Option<TimeRange>,
    #[serde(default)]
    min_duration_us: Option<u64>,
    #[serde(default)]
    status: Option<WantFailed>,
}

/// `query_results {traces, avg_duration_ms}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "query_results")]
pub struct QueryResults {
    traces: Vec<String>,
    avg_duration_ms: Option<f64>,
}

/// Earliest start to latest end of a trace's spans, in microseconds.
fn extent_us(t: &TraceIn) -> (u64, u64) {
    let start = t.spans.iter().filter_map(|s| s.start_us).min().unwrap_or(0);
    let end = t
        .spans
        .iter()
        .map(|s| s.start_us.unwrap_or(start).saturating_add(s.duration_us))
        .max()
        .unwrap_or(start);
    (start, end)
}

/// Stored traces matching every filter given (oldest first): one of its
/// spans from `service`; its start within `time_range`; lasting at least
/// `min_duration_us`; with (`ERROR`) or without (`OK`) a failed span.
/// `avg_duration_ms` is their mean duration, `null` when none matched.
#[handler("query_traces")]
pub fn query_traces(ctx: &mut Ctx<'_>, req: QueryTraces) -> Result<QueryResults, Error> {
    if let Some(r) = &req.time_range {
        if r.start_us > r.end_us {
            return Err(Error::bad_field(
                "time_range",
                "start_us must not be after end_us",
            ));
        }
    }
    let traces = stored(&ctx.traces());
    let mut ids = Vec::new();
    let mut total_us: u64 = 0;
    for t in &traces {
        let (start, end) = extent_us(t);
        let duration = end - start;
        let keep = req
            .service
            .as_deref()
            .is_none_or(|svc| t.spans.iter().any(|s| s.service == svc))
            && req
                .time_range
                .as_ref()
                .is_none_or(|r| (r.start_us..=r.end_us).contains(&start))
            && req.min_duration_us.is_none_or(|min| duration >= min)
            && req
                .status
                .as_ref()
                .is_none_or(|want| t.spans.iter().any(|s| s.failed.0) == want.0);
        if keep {
            ids.push(t.trace_id.clone().unwrap_or_default());
            total_us = total_us.saturating_add(duration);
        }
    }
    let avg_duration_ms =
        (!ids.is_empty()).then(|| (total_us as f64 / ids.len() as f64).round() / 1_000.0);
    Ok(QueryResults {
        traces: ids,
        avg_duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(v: serde_json::Value) -> TraceIn {
        serde_json::from_value(v).unwrap()
    }

    /// web(100) -> api(70) -> db(50); web -> cache(10). Self: web 20,
    /// api 20, db 50, cache 10.
    fn shop() -> TraceIn {
        trace(json!({"trace_id": "t1", "spans": [
            {"span_id": "w", "service": "web", "name": "GET /", "duration_us": 100},
            {"span_id": "a", "parent_span_id": "w", "service": "api", "duration_us": 70, "status": "error"},
            {"span_id": "d", "parent_span_id": "a", "service": "db", "name": "SELECT", "duration_us": 50},
            {"span_id": "c", "parent_span_id": "w", "service": "cache", "duration_us": 10, "status": "OK"}
        ]}))
    }

    #[test]
    fn self_time_subtracts_direct_children_only() {
        let t = shop();
        let tree = Tree::new(&t.spans);
        let selfs: Vec<u64> = (0..4).map(|i| tree.self_time_us(i)).collect();
        assert_eq!(selfs, vec![20, 20, 50, 10]);
    }

    #[test]
    fn concurrent_children_do_not_make_self_time_negative() {
        let t = trace(json!({"spans": [
            {"span_id": "p", "service": "a", "duration_us": 10},
            {"span_id": "x", "parent_span_id": "p", "service": "b", "duration_us": 8},
            {"span_id": "y", "parent_span_id": "p", "service": "b", "duration_us": 8}
        ]}));
        assert_eq!(Tree::new(&t.spans).self_time_us(0), 0);
    }

    #[test]
    fn critical_path_is_the_heaviest_chain_not_the_greedy_one() {
        // Greedy would take b (40) then stop at 40+...; the heaviest chain
        // goes through a (30) whose child weighs 50.
        let t = trace(json!({"spans": [
            {"span_id": "r", "service": "r", "duration_us": 100},
            {"span_id": "a", "parent_span_id": "r", "service": "a", "duration_us": 30},
            {"span_id": "b", "parent_span_id": "r", "service": "b", "duration_us": 40},
            {"span_id": "c", "parent_span_id": "a", "service": "c", "duration_us": 50}
        ]}));
        let (path, total) = Tree::new(&t.spans).critical_path();
        assert_eq!(path, vec![0, 1, 3]);
        assert_eq!(total, 180);
    }

    #[test]
    fn cycles_and_self_parents_do_not_hang() {
        let t = trace(json!({"spans": [
            {"span_id": "x", "parent_span_id": "y", "service": "a", "duration_us": 1},
            {"span_id": "y", "parent_span_id": "x", "service": "a", "duration_us": 1},
            {"span_id": "z", "parent_span_id": "z", "service": "b", "duration_us": 5}
        ]}));
        let (path, total) = Tree::new(&t.spans).critical_path();
        assert_eq!((path, total), (vec![2], 5));
    }

    #[test]
    fn insights_name_the_bottleneck_and_the_path() {
        let i = insights(&[shop()]);
        assert_eq!(i.bottlenecks[0].service, "db");
        assert_eq!(i.bottlenecks[0].self_time_us, 50);
        assert_eq!(i.bottlenecks[0].share, "50.0%");
        assert_eq!(i.bottlenecks.len(), 4);
        assert_eq!(i.critical_path, vec!["web:GET /", "api", "db:SELECT"]);
        let mut named_as_service = shop();
        named_as_service.spans[1].name = Some("api".into());
        assert_eq!(insights(&[named_as_service]).critical_path[1], "api");
        assert!(
            i.optimization_suggestion.starts_with("Optimize db"),
            "{}",
            i.optimization_suggestion
        );
        assert!(i.optimization_suggestion.contains("trace t1"));
        let empty = insights(&[]);
        assert!(empty.bottlenecks.is_empty() && empty.critical_path.is_empty());
    }

    #[test]
    fn percentages_have_one_decimal_rounded_half_up() {
        assert_eq!(percent(2, 3), "66.7%");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(1, 16), "6.3%");
        assert_eq!(percent(0, 5), "0.0%");
        assert_eq!(percent(5, 5), "100.0%");
        assert_eq!(percent(0, 0), "0.0%");
    }

    #[test]
    fn error_rates_by_service() {
        let mut t = shop();
        t.spans.push(
            trace(json!({"spans": [
                {"span_id": "a2", "service": "api", "duration_us": 1, "status": "ERROR"}
            ]}))
            .spans
            .remove(0),
        );
        t.spans.push(
            trace(json!({"spans": [
                {"span_id": "a3", "service": "api", "duration_us": 1}
            ]}))
            .spans
            .remove(0),
        );
        let e = error_analysis(&[t]);
        assert_eq!(e.total_errors, 2);
        assert_eq!(e.error_rate_by_service["api"], "66.7%");
        assert_eq!(e.error_rate_by_service["web"], "0.0%");
    }

    #[test]
    fn service_map_counts_calls_and_errors_across_services() {
        let m = service_map(&[shop(), shop()]);
        let edge = |from: &str, to: &str, calls, errors| Edge {
            from: from.into(),
            to: to.into(),
            calls,
            errors,
        };
        assert_eq!(
            m.edges,
            vec![
                edge("api", "db", 2, 0),
                edge("web", "api", 2, 2),
                edge("web", "cache", 2, 0)
            ]
        );
    }

    #[test]
    fn bad_status_is_rejected_naming_the_value() {
        let e = serde_json::from_value::<TraceIn>(json!({"spans": [
            {"span_id": "x", "service": "a", "duration_us": 1, "status": "meh"}
        ]}))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("\"meh\" is not one of OK, ERROR, UNSET"),
            "{e}"
        );
    }
}
