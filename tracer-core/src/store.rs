//! A bounded in-memory store that assembles finished spans into traces.

use crate::ids::{SpanId, TraceId};
use crate::processor::SpanProcessor;
use crate::span::SpanData;
use foldhash::HashMap;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// Caps of a [`TraceStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Traces kept; the oldest trace goes first.
    pub max_traces: usize,
    /// Spans kept per trace; later spans of a full trace are dropped.
    pub max_spans_per_trace: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_traces: 10_000,
            max_spans_per_trace: 1_000,
        }
    }
}

/// What a [`TraceStore`] has taken in and let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Spans stored since start.
    pub spans_stored: u64,
    /// Spans refused because their trace was full.
    pub spans_dropped: u64,
    /// Traces evicted to make room, oldest first.
    pub traces_evicted: u64,
    /// Spans that left with evicted traces.
    pub spans_evicted: u64,
}

/// The spans of one trace, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct StoredTrace {
    spans: Vec<SpanData>,
}

impl StoredTrace {
    /// The spans, in arrival order.
    pub fn spans(&self) -> &[SpanData] {
        &self.spans
    }

    /// A span by id.
    pub fn span(&self, id: SpanId) -> Option<&SpanData> {
        self.spans.iter().find(|s| s.context.span_id() == id)
    }

    /// Earliest start to latest end, in nanoseconds.
    pub fn duration_nanos(&self) -> u64 {
        let start = self.spans.iter().map(|s| s.start_unix_nanos).min();
        let end = self.spans.iter().map(|s| s.end_unix_nanos).max();
        match (start, end) {
            (Some(s), Some(e)) => e.saturating_sub(s),
            _ => 0,
        }
    }

    /// The spans in tree order: each root (a span whose parent is not in the
    /// trace), then its children depth first, siblings by start time.
    pub fn tree_order(&self) -> Vec<&SpanData> {
        let ids: HashSet<SpanId> = self.spans.iter().map(|s| s.context.span_id()).collect();
        let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::default();
        let mut roots = Vec::new();
        for s in &self.spans {
            match s.parent_span_id.filter(|p| ids.contains(p)) {
                Some(p) => children.entry(p).or_default().push(s),
                None => roots.push(s),
            }
        }
        let by_start = |a: &&SpanData, b: &&SpanData| a.start_unix_nanos.cmp(&b.start_unix_nanos);
        roots.sort_by(by_start);
        for list in children.values_mut() {
            list.sort_by(by_start);
        }
        let mut out = Vec::with_capacity(self.spans.len());
        // An explicit stack: a trace may be a chain thousands of spans deep.
        let mut stack: Vec<&SpanData> = roots.into_iter().rev().collect();
        let mut visited = HashSet::new();
        while let Some(s) = stack.pop() {
            if !visited.insert(s.context.span_id()) {
                continue; // a duplicated span id; show it once
            }
            out.push(s);
            if let Some(kids) = children.get(&s.context.span_id()) {
                stack.extend(kids.iter().rev());
            }
        }
        out
    }
}

/// Finished spans grouped by trace, bounded in traces and in spans per trace.
#[derive(Debug)]
pub struct TraceStore {
    traces: HashMap<TraceId, StoredTrace>,
    order: VecDeque<TraceId>,
    limits: StoreLimits,
    stats: StoreStats,
}

impl Default for TraceStore {
    fn default() -> Self {
        TraceStore::new(StoreLimits::default())
    }
}

impl TraceStore {
    /// An empty store.
    pub fn new(limits: StoreLimits) -> Self {
        TraceStore {
            traces: HashMap::default(),
            order: VecDeque::new(),
            limits: StoreLimits {
                max_traces: limits.max_traces.max(1),
                max_spans_per_trace: limits.max_spans_per_trace.max(1),
            },
            stats: StoreStats::default(),
        }
    }

    /// Adds a finished span to its trace.
    pub fn insert(&mut self, span: SpanData) {
        let id = span.context.trace_id();
        if let Some(t) = self.traces.get_mut(&id) {
            if t.spans.len() >= self.limits.max_spans_per_trace {
                self.stats.spans_dropped += 1;
            } else {
                t.spans.push(span);
                self.stats.spans_stored += 1;
            }
            return;
        }
        while self.traces.len() >= self.limits.max_traces {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(t) = self.traces.remove(&old) {
                self.stats.traces_evicted += 1;
                self.stats.spans_evicted += t.spans.len() as u64;
            }
        }
        self.order.push_back(id);
        self.traces.insert(id, StoredTrace { spans: vec![span] });
        self.stats.spans_stored += 1;
    }

    /// A trace by id.
    pub fn get(&self, id: TraceId) -> Option<&StoredTrace> {
        self.traces.get(&id)
    }

    /// Trace ids, oldest first.
    pub fn trace_ids(&self) -> impl Iterator<Item = TraceId> + '_ {
        self.order.iter().copied()
    }

    /// Number of traces held.
    pub fn len(&self) -> usize {
        self.traces.len()
    }

    /// Whether no trace is held.
    pub fn is_empty(&self) -> bool {
        self.traces.is_empty()
    }

    /// The caps.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// The counters.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }
}

impl SpanProcessor for Mutex<TraceStore> {
    fn on_end(&self, span: SpanData) {
        self.lock().unwrap_or_else(|e| e.into_inner()).insert(span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryExporter, Sampler, Tracer};
    use std::sync::Arc;

    fn spans(n_traces: usize, per: usize) -> Vec<SpanData> {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        for _ in 0..n_traces {
            let root = tracer.start("root").entered();
            for i in 0..per.saturating_sub(1) {
                tracer.start(format!("child{i}"));
            }
            drop(root);
        }
        mem.take()
    }

    #[test]
    fn assembles_traces_in_tree_order() {
        let mut store = TraceStore::default();
        for s in spans(1, 4) {
            store.insert(s);
        }
        let id = store.trace_ids().next().unwrap();
        let order = store.get(id).unwrap().tree_order();
        assert_eq!(order[0].name, "root");
        assert_eq!(order.len(), 4);
        assert!(order[1..].iter().all(|s| s.parent_span_id == Some(order[0].context.span_id())));
    }

    #[test]
    fn evicts_oldest_trace_and_counts() {
        let mut store = TraceStore::new(StoreLimits { max_traces: 2, max_spans_per_trace: 2 });
        let all = spans(3, 3);
        let first = all[0].context.trace_id();
        for s in all {
            store.insert(s);
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(first).is_none());
        let st = store.stats();
        assert_eq!(st.traces_evicted, 1);
        assert_eq!(st.spans_dropped, 3, "one span over the per-trace cap in each trace");
        assert_eq!(st.spans_evicted, 2);
    }
}
