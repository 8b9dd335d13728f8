//! A bounded in-memory store that assembles finished spans into traces.

use super::ids::trace_id_for;
use super::Processor;
use foldhash::HashMap;
use std::collections::{HashSet, VecDeque};
use tracer_core::{SpanData, SpanId, SpanProcessor, TraceId};

/// Caps of a [`TraceStore`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// Traces kept; the oldest trace goes first.
    pub max_traces: usize,
    /// Spans kept per trace; later spans of a full trace are dropped.
    pub max_spans_per_trace: usize,
    /// Bytes the stored spans may hold (see `span_bytes`); past it the
    /// oldest traces go first.
    pub max_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_traces: 10_000,
            max_spans_per_trace: 1_000,
            max_bytes: 128 << 20,
        }
    }
}

// A `&Cow`, not a `&str`: whether the string is owned is the point.
#[allow(clippy::ptr_arg)]
fn str_bytes(s: &std::borrow::Cow<'static, str>) -> usize {
    match s {
        std::borrow::Cow::Borrowed(_) => 0, // a static string, shared
        std::borrow::Cow::Owned(o) => o.capacity(),
    }
}

fn attr_bytes(kvs: &[tracer_core::KeyValue]) -> usize {
    use tracer_core::{Array, Value};
    kvs.iter()
        .map(|kv| {
            std::mem::size_of::<tracer_core::KeyValue>()
                + str_bytes(&kv.key)
                + match &kv.value {
                    Value::String(v) => str_bytes(v),
                    Value::Array(Array::String(v)) => {
                        v.iter().map(|s| 24 + str_bytes(s)).sum::<usize>()
                    }
                    Value::Array(Array::Bool(v)) => v.len(),
                    Value::Array(Array::I64(v)) => 8 * v.len(),
                    Value::Array(Array::F64(v)) => 8 * v.len(),
                    _ => 0,
                }
        })
        .sum()
}

/// Bytes the store charges for keeping a span: the span itself, every
/// string, attribute, event and link it owns, and its entry in the span
/// index. What the span really holds, give or take allocator rounding.
pub fn span_bytes(s: &SpanData) -> usize {
    const INDEX_ENTRY: usize = 48; // span id -> trace id, with hash table slack
    std::mem::size_of::<SpanData>()
        + INDEX_ENTRY
        + str_bytes(&s.name)
        + attr_bytes(&s.attributes)
        + s.events
            .iter()
            .map(|e| std::mem::size_of_val(e) + str_bytes(&e.name) + attr_bytes(&e.attributes))
            .sum::<usize>()
        + s.links
            .iter()
            .map(|l| std::mem::size_of_val(l) + attr_bytes(&l.attributes))
            .sum::<usize>()
        + match &s.status {
            tracer_core::Status::Error(m) => str_bytes(m),
            _ => 0,
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
    /// Stored spans replaced by a later version of themselves.
    pub spans_replaced: u64,
    /// Spans the node made for messages (their SERVER span, its sends)
    /// that left a full trace to make room for a span a user sent.
    pub node_spans_displaced: u64,
    /// Traces evicted (oldest first) because the byte budget was full.
    pub traces_evicted_for_bytes: u64,
    /// Spans refused: larger than the whole byte budget, or no room left
    /// once every other trace had gone.
    pub spans_refused_for_bytes: u64,
}

/// Whether the node made this span for a message it handled: the sidecar's
/// SERVER span (attribute `rpc.system: "maelstrom"`) of a message that came
/// with trace context. Such spans describe the node serving the protocol:
/// they give way to what users send in a full trace, and analysis leaves
/// them out.
pub fn is_node_span(s: &SpanData) -> bool {
    s.attribute(crate::sidecar::attr::RPC_SYSTEM)
        .and_then(|v| v.as_str())
        == Some("maelstrom")
}

/// The spans of one trace, in arrival order, and how a client spelled its
/// ids.
#[derive(Clone, Debug, Default)]
pub struct StoredTrace {
    spans: Vec<SpanData>,
    /// The client's spelling of the trace id, when a client gave one.
    name: Option<Box<str>>,
    /// Client spellings of span ids that are not 16 hex digits (their
    /// [`SpanId`] is a hash of the spelling). Made on first use: most traces
    /// have none, and a trace in the store stays small.
    span_names: Option<Box<HashMap<SpanId, Box<str>>>>,
    /// What its spans and spellings are charged, in bytes.
    bytes: usize,
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

    /// The trace id as the client spelled it, if a client named the trace.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// A span id of this trace as its client spelled it: the recorded
    /// spelling, else 16 lowercase hex digits.
    pub fn spell_span(&self, id: SpanId) -> String {
        match self.span_names.as_ref().and_then(|m| m.get(&id)) {
            Some(n) => n.to_string(),
            None => id.to_hex(),
        }
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
    /// trace), then its children depth first, siblings by start time. Spans
    /// caught in a parent cycle (`a` child of `b`, `b` child of `a`, or a
    /// span its own parent) reach no root: each cycle is broken at its
    /// earliest-started span, which is listed as a root with what hangs
    /// below it. Every span is listed once.
    pub fn tree_order(&self) -> Vec<&SpanData> {
        let ids: HashSet<SpanId> = self.spans.iter().map(|s| s.context.span_id()).collect();
        let mut children: HashMap<SpanId, Vec<&SpanData>> = HashMap::default();
        let mut roots = Vec::new();
        for s in &self.spans {
            match s
                .parent_span_id
                .filter(|p| ids.contains(p) && *p != s.context.span_id())
            {
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
        let mut visited = HashSet::new();
        // An explicit stack: a trace may be a chain thousands of spans deep.
        let mut stack: Vec<&SpanData> = roots.into_iter().rev().collect();
        let mut rest: Option<std::vec::IntoIter<&SpanData>> = None;
        loop {
            while let Some(s) = stack.pop() {
                if !visited.insert(s.context.span_id()) {
                    continue; // a duplicated span id; show it once
                }
                out.push(s);
                if let Some(kids) = children.get(&s.context.span_id()) {
                    stack.extend(kids.iter().rev());
                }
            }
            if visited.len() == ids.len() {
                break;
            }
            // What is left hangs off cycles: break each at its earliest span.
            let rest = rest.get_or_insert_with(|| {
                let mut r: Vec<&SpanData> = self.spans.iter().collect();
                r.sort_by(by_start);
                r.into_iter()
            });
            match rest.find(|s| !visited.contains(&s.context.span_id())) {
                Some(s) => stack.push(s),
                None => break,
            }
        }
        out
    }
}

/// Finished spans grouped by trace, bounded in traces and in spans per trace.
///
/// Besides the spans it keeps what clients need to find them again: an
/// index from span id to trace, and the spelling a client gave a trace id
/// (and any span id that is not 16 hex digits). Both leave with their trace,
/// so the caps on traces and spans bound them too.
#[derive(Debug)]
pub struct TraceStore {
    traces: HashMap<TraceId, StoredTrace>,
    order: VecDeque<TraceId>,
    /// The trace of every stored span (the latest, for a span id reused
    /// across traces).
    span_index: HashMap<SpanId, TraceId>,
    limits: StoreLimits,
    stats: StoreStats,
    /// What every stored trace is charged, in bytes.
    bytes: usize,
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
            span_index: HashMap::default(),
            limits: StoreLimits {
                max_traces: limits.max_traces.max(1),
                max_spans_per_trace: limits.max_spans_per_trace.max(1),
                max_bytes: limits.max_bytes.max(1),
            },
            stats: StoreStats::default(),
            bytes: 0,
        }
    }

    /// Adds a finished span to its trace. Returns whether it was stored
    /// (`false`: its trace was full; the drop is counted).
    pub fn insert(&mut self, span: SpanData) -> bool {
        let id = span.context.trace_id();
        let span_id = span.context.span_id();
        let cost = span_bytes(&span);
        if cost > self.limits.max_bytes {
            self.stats.spans_refused_for_bytes += 1;
            return false;
        }
        if let Some(t) = self.traces.get_mut(&id) {
            if t.spans.len() >= self.limits.max_spans_per_trace {
                // A full trace: a user's span takes the place of the oldest
                // span the node made for a message; anything else is refused.
                let room = (!is_node_span(&span))
                    .then(|| t.spans.iter().position(is_node_span))
                    .flatten();
                let Some(i) = room else {
                    self.stats.spans_dropped += 1;
                    return false;
                };
                let gone = t.spans.remove(i);
                let freed = span_bytes(&gone);
                t.bytes -= freed;
                self.bytes -= freed;
                if self.span_index.get(&gone.context.span_id()) == Some(&id) {
                    self.span_index.remove(&gone.context.span_id());
                }
                self.stats.node_spans_displaced += 1;
            }
        } else {
            while self.traces.len() >= self.limits.max_traces {
                if !self.evict_oldest(None) {
                    break;
                }
            }
            self.order.push_back(id);
            self.traces.insert(id, StoredTrace::default());
        }
        // The byte budget: the oldest other traces go first.
        while self.bytes + cost > self.limits.max_bytes {
            if !self.evict_oldest(Some(id)) {
                self.stats.spans_refused_for_bytes += 1;
                if self.traces.get(&id).is_some_and(|t| t.spans.is_empty()) {
                    self.traces.remove(&id);
                    self.order.retain(|t| *t != id);
                }
                return false;
            }
            self.stats.traces_evicted_for_bytes += 1;
        }
        let t = self.traces.get_mut(&id).expect("made above");
        t.spans.push(span);
        t.bytes += cost;
        self.bytes += cost;
        self.stats.spans_stored += 1;
        self.span_index.insert(span_id, id);
        true
    }

    /// Evicts the oldest trace other than `keep`; whether one went.
    fn evict_oldest(&mut self, keep: Option<TraceId>) -> bool {
        let pos = self.order.iter().position(|t| Some(*t) != keep);
        let Some(old) = pos.and_then(|i| self.order.remove(i)) else {
            return false;
        };
        if let Some(t) = self.traces.remove(&old) {
            self.bytes -= t.bytes;
            self.stats.traces_evicted += 1;
            self.stats.spans_evicted += t.spans.len() as u64;
            for s in &t.spans {
                let sid = s.context.span_id();
                if self.span_index.get(&sid) == Some(&old) {
                    self.span_index.remove(&sid);
                }
            }
        }
        true
    }

    /// Stores a span, replacing the stored span with the same trace and span
    /// id when there is one (a late, fuller report of the same work).
    /// Returns whether the span is stored.
    pub fn upsert(&mut self, span: SpanData) -> bool {
        let (id, span_id) = (span.context.trace_id(), span.context.span_id());
        if let Some(t) = self.traces.get_mut(&id) {
            if let Some(slot) = t.spans.iter_mut().find(|s| s.context.span_id() == span_id) {
                let (old, new) = (span_bytes(slot), span_bytes(&span));
                *slot = span;
                t.bytes = t.bytes - old + new;
                self.bytes = self.bytes - old + new;
                self.stats.spans_replaced += 1;
                self.span_index.insert(span_id, id);
                return true;
            }
        }
        self.insert(span)
    }

    /// Records how a client spelled a stored trace's id; the first spelling
    /// stays. Returns whether the trace is stored.
    pub fn name_trace(&mut self, id: TraceId, spelled: &str) -> bool {
        match self.traces.get_mut(&id) {
            Some(t) => {
                if t.name.is_none() {
                    t.name = Some(spelled.into());
                    t.bytes += spelled.len();
                    self.bytes += spelled.len();
                }
                true
            }
            None => false,
        }
    }

    /// Records how a client spelled a span id of a stored trace, when the
    /// spelling is not the id's own 16 hex digits. At most two spellings per
    /// span the trace may hold (its id and its parent's).
    pub fn name_span(&mut self, trace: TraceId, id: SpanId, spelled: &str) {
        if spelled == id.to_hex() {
            return;
        }
        let cap = 2 * self.limits.max_spans_per_trace;
        if let Some(t) = self.traces.get_mut(&trace) {
            let names = t.span_names.get_or_insert_with(Box::default);
            if names.len() < cap || names.contains_key(&id) {
                // A spelling is charged its text and its map entry.
                let cost = spelled.len() + 32;
                if names.insert(id, spelled.into()).is_none() {
                    t.bytes += cost;
                    self.bytes += cost;
                }
            }
        }
    }

    /// A trace by id.
    pub fn get(&self, id: TraceId) -> Option<&StoredTrace> {
        self.traces.get(&id)
    }

    /// A trace by a client's spelling of its id: a 32-hex or UUID id matches
    /// the trace of those bits in either spelling (unless a client named that
    /// trace with an opaque string, whose hash the bits are); any other
    /// string matches only the trace a client named with exactly it.
    pub fn find(&self, spelled: &str) -> Option<(TraceId, &StoredTrace)> {
        match TraceId::parse(spelled) {
            Some(id) => {
                let t = self.traces.get(&id)?;
                let opaque = t.name().is_some_and(|n| TraceId::parse(n).is_none());
                (!opaque).then_some((id, t))
            }
            None => {
                let id = trace_id_for(spelled);
                let t = self.traces.get(&id)?;
                (t.name() == Some(spelled)).then_some((id, t))
            }
        }
    }

    /// A stored span by id, with its trace's id.
    pub fn find_span(&self, id: SpanId) -> Option<(TraceId, &StoredTrace, &SpanData)> {
        let trace_id = *self.span_index.get(&id)?;
        let trace = self.traces.get(&trace_id)?;
        let span = trace.span(id)?;
        Some((trace_id, trace, span))
    }

    /// A trace's id as clients see it: the spelling a client gave it, else
    /// the hyphenated UUID (the spelling of ids the node makes).
    pub fn spell(&self, id: TraceId) -> String {
        match self.traces.get(&id).and_then(StoredTrace::name) {
            Some(n) => n.to_owned(),
            None => id.to_uuid_string(),
        }
    }

    /// Every trace, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (TraceId, &StoredTrace)> + '_ {
        self.order
            .iter()
            .filter_map(|id| self.traces.get(id).map(|t| (*id, t)))
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

    /// Bytes the stored traces are charged now (at most
    /// [`StoreLimits::max_bytes`], give or take the spellings of ids).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The trace store as a span processor: user data only. Spans of the
/// node's own telemetry ([`SpanContext::is_self_telemetry`]) never enter
/// it, so no volume of ordinary traffic can evict what users made or sent.
///
/// [`SpanContext::is_self_telemetry`]: tracer_core::SpanContext::is_self_telemetry
impl SpanProcessor for Processor<TraceStore> {
    fn on_end(&self, span: SpanData) {
        if self.accepts(&span) {
            let _stored = self
                .0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(span);
        }
    }
    fn accepts(&self, span: &SpanData) -> bool {
        !span.context.is_self_telemetry()
    }
}

#[cfg(test)]
mod tests {
    use super::super::ids::span_id_for;
    use super::*;
    use std::sync::Arc;
    use tracer_core::{InMemoryExporter, Sampler, Tracer};

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
        assert!(order[1..]
            .iter()
            .all(|s| s.parent_span_id == Some(order[0].context.span_id())));
    }

    #[test]
    fn cycles_are_broken_at_their_earliest_span_and_every_span_is_listed() {
        let mut store = TraceStore::default();
        let t = TraceId::from_u128(9);
        let span = |id: u64, parent: Option<u64>, start: u64| SpanData {
            context: tracer_core::SpanContext::new(
                t,
                SpanId::from_u64(id),
                tracer_core::TraceFlags::SAMPLED,
                true,
                tracer_core::TraceState::EMPTY,
            ),
            parent_span_id: parent.map(SpanId::from_u64),
            name: "s".into(),
            kind: tracer_core::SpanKind::Internal,
            start_unix_nanos: start,
            end_unix_nanos: start,
            attributes: vec![],
            events: vec![],
            links: vec![],
            status: tracer_core::Status::Unset,
        };
        // a <-> b, c under b, d its own parent, e a plain root.
        for s in [
            span(1, Some(2), 20),
            span(2, Some(1), 10),
            span(3, Some(2), 30),
            span(4, Some(4), 5),
            span(5, None, 50),
        ] {
            store.insert(s);
        }
        let ids: Vec<u64> = store
            .get(t)
            .unwrap()
            .tree_order()
            .iter()
            .map(|s| s.context.span_id().to_u64())
            .collect();
        // Roots first (d: its own parent, e), then b (the cycle's earliest)
        // with what hangs below it.
        assert_eq!(ids, vec![4, 5, 2, 1, 3]);
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_traces_and_refuses_what_never_fits() {
        let one = span_bytes(&spans(1, 1)[0]);
        let mut store = TraceStore::new(StoreLimits {
            max_traces: 1_000,
            max_spans_per_trace: 1_000,
            max_bytes: 10 * one + one / 2,
        });
        let all = spans(30, 1);
        let first = all[0].context.trace_id();
        for s in all {
            assert!(store.insert(s));
            assert!(store.bytes() <= 10 * one + one / 2);
        }
        assert_eq!(store.len(), 10, "ten spans fit");
        assert!(store.get(first).is_none(), "the oldest went first");
        let st = store.stats();
        assert_eq!(st.traces_evicted_for_bytes, 20);
        assert_eq!(st.traces_evicted, 20);
        // A span larger than the whole budget is refused, nothing evicted.
        let mut big = spans(1, 1).pop().unwrap();
        big.name = "x".repeat(20 * one).into();
        assert!(!store.insert(big));
        assert_eq!(store.len(), 10);
        assert_eq!(store.stats().spans_refused_for_bytes, 1);
        // What a trace is charged leaves with it.
        while store.evict_oldest(None) {}
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn evicts_oldest_trace_and_counts() {
        let mut store = TraceStore::new(StoreLimits {
            max_traces: 2,
            max_spans_per_trace: 2,
            ..StoreLimits::default()
        });
        let all = spans(3, 3);
        let first = all[0].context.trace_id();
        for s in all {
            store.insert(s);
        }
        assert_eq!(store.len(), 2);
        assert!(store.get(first).is_none());
        let st = store.stats();
        assert_eq!(st.traces_evicted, 1);
        assert_eq!(
            st.spans_dropped, 3,
            "one span over the per-trace cap in each trace"
        );
        assert_eq!(st.spans_evicted, 2);
    }

    fn span_in(trace: TraceId, id: SpanId, parent: Option<SpanId>, name: &'static str) -> SpanData {
        SpanData {
            context: tracer_core::SpanContext::new(
                trace,
                id,
                tracer_core::TraceFlags::SAMPLED,
                true,
                tracer_core::TraceState::EMPTY,
            ),
            parent_span_id: parent,
            name: name.into(),
            kind: tracer_core::SpanKind::Internal,
            start_unix_nanos: 1_000,
            end_unix_nanos: 2_000,
            attributes: vec![],
            events: vec![],
            links: vec![],
            status: tracer_core::Status::Unset,
        }
    }

    #[test]
    fn opaque_ids_hash_stably_and_never_to_zero() {
        // Golden values: nodes (and runs) must agree on these bits.
        let a = trace_id_for("abc123");
        assert_eq!(a, trace_id_for("abc123"));
        assert_eq!(a.to_hex(), "8c4c1b668de9ad5b1a8bd5625706ade5");
        assert_ne!(a, trace_id_for("abc124"));
        assert!(trace_id_for("").is_valid());
        let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(trace_id_for(hex).to_hex(), hex);
        assert_eq!(
            trace_id_for("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736").to_hex(),
            hex
        );
        assert_eq!(span_id_for("00f067aa0ba902b7").to_hex(), "00f067aa0ba902b7");
        let s = span_id_for("span-1");
        assert!(s.is_valid());
        assert_eq!(s, span_id_for("span-1"));
        assert_ne!(s, span_id_for("span-2"));
        assert!(span_id_for("0000000000000000").is_valid());
    }

    #[test]
    fn a_named_trace_is_found_by_its_spelling_only() {
        let mut store = TraceStore::default();
        let opaque = trace_id_for("abc123");
        assert!(store.insert(span_in(opaque, SpanId::from_u64(1), None, "a")));
        assert!(store.name_trace(opaque, "abc123"));
        assert!(store.name_trace(opaque, "other"), "the trace is stored");
        assert_eq!(
            store.get(opaque).unwrap().name(),
            Some("abc123"),
            "first spelling stays"
        );
        assert_eq!(store.find("abc123").map(|(id, _)| id), Some(opaque));
        assert!(store.find("ABC123").is_none());
        assert!(
            store.find(&opaque.to_hex()).is_none(),
            "the hash's hex is not the trace's name"
        );
        assert!(store.find(&opaque.to_uuid_string()).is_none());
        assert_eq!(store.spell(opaque), "abc123");

        let hex = TraceId::parse("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        store.insert(span_in(hex, SpanId::from_u64(2), None, "b"));
        assert!(store.find("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736").is_some());
        assert_eq!(store.spell(hex), "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
        store.name_trace(hex, "4BF92F3577B34DA6A3CE929D0E0E4736");
        assert!(store.find("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
        assert_eq!(store.spell(hex), "4BF92F3577B34DA6A3CE929D0E0E4736");
        assert!(
            !store.name_trace(TraceId::from_u128(9), "x"),
            "no such trace"
        );
        assert!(store.find("x").is_none());
    }

    #[test]
    fn spans_are_found_by_id_and_spelled_as_sent() {
        let mut store = TraceStore::default();
        let t = trace_id_for("t1");
        let (root, child) = (span_id_for("root"), SpanId::from_u64(0xab));
        store.insert(span_in(t, root, None, "root"));
        store.insert(span_in(t, child, Some(root), "child"));
        store.name_span(t, root, "root");
        store.name_span(t, child, &child.to_hex());
        let (tid, trace, span) = store.find_span(child).unwrap();
        assert_eq!((tid, &*span.name), (t, "child"));
        assert_eq!(trace.spell_span(root), "root");
        assert_eq!(trace.spell_span(child), "00000000000000ab");
        assert!(
            trace.span_names.as_ref().map_or(0, |m| m.len()) == 1,
            "a hex spelling is not recorded"
        );
        assert!(store.find_span(SpanId::from_u64(7)).is_none());
    }

    #[test]
    fn upsert_replaces_a_stored_span_and_counts() {
        let mut store = TraceStore::default();
        let t = TraceId::from_u128(5);
        store.insert(span_in(t, SpanId::from_u64(1), None, "first"));
        assert!(store.upsert(span_in(t, SpanId::from_u64(1), None, "second")));
        assert!(store.upsert(span_in(t, SpanId::from_u64(2), None, "new")));
        let trace = store.get(t).unwrap();
        assert_eq!(trace.spans().len(), 2);
        assert_eq!(trace.span(SpanId::from_u64(1)).unwrap().name, "second");
        let st = store.stats();
        assert_eq!((st.spans_replaced, st.spans_stored), (1, 2));
    }

    #[test]
    fn eviction_takes_the_index_and_names_along() {
        let mut store = TraceStore::new(StoreLimits {
            max_traces: 1,
            max_spans_per_trace: 1,
            ..StoreLimits::default()
        });
        let (a, b) = (trace_id_for("a"), trace_id_for("b"));
        assert!(store.insert(span_in(a, SpanId::from_u64(1), None, "a")));
        store.name_trace(a, "a");
        assert!(
            !store.insert(span_in(a, SpanId::from_u64(3), None, "over")),
            "trace full"
        );
        assert!(store.find_span(SpanId::from_u64(3)).is_none());
        store.insert(span_in(b, SpanId::from_u64(2), None, "b"));
        assert!(store.find("a").is_none());
        assert!(store.find_span(SpanId::from_u64(1)).is_none());
        assert_eq!(store.span_index.len(), 1);
        assert_eq!(store.iter().map(|(id, _)| id).collect::<Vec<_>>(), vec![b]);
        // The same bits again start a fresh, unnamed trace.
        store.insert(span_in(a, SpanId::from_u64(1), None, "a2"));
        assert_eq!(store.get(a).unwrap().name(), None);
        assert_eq!(store.stats().spans_dropped, 1);
    }
}
