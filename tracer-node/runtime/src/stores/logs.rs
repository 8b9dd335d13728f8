//! A bounded log store, indexed by trace id (both spellings of an id are one
//! trace) and by service.

use super::ids::TraceKey;
use super::Processor;
use foldhash::HashMap;
use serde::Serialize;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::sync::Arc;
use tracer_core::{KeyValue, LogProcessor, LogRecord, SpanId, TraceId};

/// One stored log entry. Ids are kept exactly as they were logged.
#[derive(Clone, Debug, Serialize)]
pub struct LogEntry {
    /// The service that logged it.
    pub service: Arc<str>,
    /// The message.
    pub message: Arc<str>,
    /// The trace id, as spelled by the logger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Arc<str>>,
    /// The span id, as spelled by the logger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_id: Option<Arc<str>>,
    /// The level, as given (`"INFO"`, `"error"`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<Arc<str>>,
    /// Attributes: a JSON object, kept verbatim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Arc<RawValue>>,
}

impl LogEntry {
    /// Bytes the log store charges for keeping the entry: the entry, the
    /// strings it owns alone (the message and ids; the service and level
    /// are shared spellings), its attributes' JSON, and its places in the
    /// trace and service indexes.
    pub fn bytes(&self) -> usize {
        const INDEXES: usize = 2 * 8 + 16; // a sequence number in each index, with slack
        let own = |s: &Option<Arc<str>>| s.as_deref().map_or(0, |s| s.len() + 16);
        std::mem::size_of::<LogEntry>()
            + INDEXES
            + self.message.len()
            + 16
            + own(&self.trace_id)
            + own(&self.span_id)
            + self.attributes.as_ref().map_or(0, |a| a.get().len() + 16)
    }

    /// The entry as a log record for export, written at `time_unix_nanos`
    /// in `span` (when the entry names no span itself). Ids that are not
    /// W3C ids, and the attributes' JSON, go along as attributes.
    pub fn to_record(&self, time_unix_nanos: u64, span: Option<SpanId>) -> LogRecord {
        let trace_id = self.trace_id.as_deref().and_then(TraceId::parse);
        let span_id = self.span_id.as_deref().and_then(SpanId::from_hex).or(span);
        let mut attributes = Vec::new();
        if let (Some(t), None) = (&self.trace_id, trace_id) {
            attributes.push(KeyValue::new("tracer.trace_id", t.to_string()));
        }
        if let (Some(s), None) = (
            &self.span_id,
            self.span_id.as_deref().and_then(SpanId::from_hex),
        ) {
            attributes.push(KeyValue::new("tracer.span_id", s.to_string()));
        }
        if let Some(a) = &self.attributes {
            attributes.push(KeyValue::new("tracer.attributes", a.get().to_owned()));
        }
        LogRecord {
            time_unix_nanos,
            service: self.service.clone(),
            level: self.level.as_deref().map(|l| l.to_owned().into()),
            body: self.message.clone(),
            trace_id,
            span_id,
            attributes,
        }
    }
}

/// The log store as a log processor (for records of the `log` crate):
/// ids are stored as 32 and 16 lowercase hex digits.
impl LogProcessor for Processor<LogStore> {
    fn emit(&self, record: LogRecord) {
        let attributes = (!record.attributes.is_empty())
            .then(|| {
                let mut out = Vec::new();
                let mut ser = serde_json::Serializer::new(&mut out);
                tracer_core::serialize_attributes(&record.attributes, &mut ser).ok()?;
                RawValue::from_string(String::from_utf8(out).ok()?).ok()
            })
            .flatten()
            .map(Arc::from);
        let mut store = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = LogEntry {
            service: store.intern_service(&record.service),
            message: record.body,
            trace_id: record.trace_id.map(|t| store.intern_trace(&t.to_hex())),
            span_id: record.span_id.map(|s| s.to_hex().into()),
            level: record.level.map(|l| store.intern_level(&l)),
            attributes,
        };
        store.push(entry);
    }
}

/// A search over a [`LogStore`]; every given filter must match.
#[derive(Clone, Copy, Debug)]
pub struct LogQuery<'a> {
    /// Entries of this trace (either spelling of a 128-bit id).
    pub trace_id: Option<&'a str>,
    /// Entries of this service, exactly.
    pub service: Option<&'a str>,
    /// Entries of this level, ignoring case.
    pub level: Option<&'a str>,
    /// Entries whose message contains this text.
    pub contains: Option<&'a str>,
    /// At most this many entries, oldest first.
    pub limit: usize,
}

impl Default for LogQuery<'_> {
    fn default() -> Self {
        LogQuery {
            trace_id: None,
            service: None,
            level: None,
            contains: None,
            limit: 1000,
        }
    }
}

/// What a [`LogStore`] has taken in and let go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Entries stored since start.
    pub stored: u64,
    /// Entries evicted, oldest first, to stay under the caps (count and
    /// bytes).
    pub dropped: u64,
    /// Of those, entries evicted because the byte budget was full.
    pub dropped_for_bytes: u64,
    /// Entries refused: larger than the whole byte budget.
    pub refused_too_large: u64,
}

/// Log entries in arrival order, capped; the oldest entry goes first.
#[derive(Debug)]
pub struct LogStore {
    entries: VecDeque<LogEntry>,
    /// For each entry (same positions as `entries`), the sequence number
    /// of the previous entry of its trace ([`NO_SEQ`] for none): a trace's
    /// entries are a chain from its index entry back through this, so that
    /// storing a log appends here instead of growing a list per trace.
    prev_in_trace: VecDeque<u64>,
    /// Sequence number of `entries[0]`; entries are numbered in arrival order.
    first_seq: u64,
    by_trace: HashMap<TraceKey, TraceLogs>,
    by_service: HashMap<Arc<str>, VecDeque<u64>>,
    cap: usize,
    stats: LogStats,
    /// Level spellings seen, shared by the entries.
    levels: Vec<Arc<str>>,
    /// What the entries are charged, in bytes ([`LogEntry::bytes`]), and
    /// the most they may be.
    bytes: usize,
    max_bytes: usize,
}

/// One trace's entries: the newest (the chain runs back from it through
/// `prev_in_trace`) and how many are held, and the spelling of its id that
/// the first of them logged: the entries that spell it the same share that
/// string.
#[derive(Debug)]
struct TraceLogs {
    id: Arc<str>,
    last: u64,
    held: u64,
}

/// No previous entry in the trace.
const NO_SEQ: u64 = u64::MAX;

/// Distinct level spellings shared, at most.
pub const MAX_LEVELS: usize = 32;

impl LogStore {
    /// The default cap: a little over a million entries.
    pub const DEFAULT_CAP: usize = 1 << 20;

    /// An empty store holding at most `cap` entries (and no byte budget
    /// but what they take).
    pub fn new(cap: usize) -> Self {
        Self::with_bytes(cap, usize::MAX)
    }

    /// An empty store holding at most `cap` entries and `max_bytes` bytes.
    pub fn with_bytes(cap: usize, max_bytes: usize) -> Self {
        LogStore {
            entries: VecDeque::new(),
            prev_in_trace: VecDeque::new(),
            first_seq: 0,
            by_trace: HashMap::default(),
            by_service: HashMap::default(),
            cap: cap.max(1),
            stats: LogStats::default(),
            levels: Vec::new(),
            bytes: 0,
            max_bytes: max_bytes.max(1),
        }
    }

    /// Whether an entry could be stored at all (it is not larger than the
    /// whole byte budget).
    pub fn fits(&self, entry: &LogEntry) -> bool {
        entry.bytes() <= self.max_bytes
    }

    /// Bytes the entries are charged now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The shared copy of a service name, so that a million entries of one
    /// service hold one string.
    pub fn intern_service(&mut self, service: &str) -> Arc<str> {
        match self.by_service.get_key_value(service) {
            Some((k, _)) => k.clone(),
            None => Arc::from(service),
        }
    }

    /// The shared copy of a trace id already in the store, spelled exactly
    /// so (a trace's entries log its id tens of times; each keeps one
    /// pointer, not a string); a new id or spelling gets its own copy.
    pub fn intern_trace(&self, trace_id: &str) -> Arc<str> {
        match self.by_trace.get(&TraceKey::new(trace_id)) {
            Some(t) if &*t.id == trace_id => t.id.clone(),
            _ => Arc::from(trace_id),
        }
    }

    /// The shared copy of a level (`"INFO"`, `"error"`...): a store holds a
    /// handful of distinct levels, so a million entries hold a few strings.
    /// Past [`MAX_LEVELS`] distinct spellings a level gets a copy of its own.
    pub fn intern_level(&mut self, level: &str) -> Arc<str> {
        if let Some(l) = self.levels.iter().find(|l| &***l == level) {
            return l.clone();
        }
        let l: Arc<str> = Arc::from(level);
        if self.levels.len() < MAX_LEVELS {
            self.levels.push(l.clone());
        }
        l
    }

    /// Stores an entry, evicting the oldest when full (in count or in
    /// bytes). Returns whether it was stored: an entry larger than the
    /// whole byte budget is refused (and counted), nothing evicted for it.
    pub fn push(&mut self, entry: LogEntry) -> bool {
        let cost = entry.bytes();
        if cost > self.max_bytes {
            self.stats.refused_too_large += 1;
            return false;
        }
        if self.entries.len() >= self.cap {
            self.evict_oldest();
        }
        while self.bytes + cost > self.max_bytes && !self.entries.is_empty() {
            self.evict_oldest();
            self.stats.dropped_for_bytes += 1;
        }
        self.bytes += cost;
        let seq = self.first_seq + self.entries.len() as u64;
        let prev = match &entry.trace_id {
            Some(t) => {
                let trace = self
                    .by_trace
                    .entry(TraceKey::new(t))
                    .or_insert_with(|| TraceLogs {
                        id: t.clone(),
                        last: NO_SEQ,
                        held: 0,
                    });
                trace.held += 1;
                std::mem::replace(&mut trace.last, seq)
            }
            None => NO_SEQ,
        };
        self.prev_in_trace.push_back(prev);
        match self.by_service.get_mut(&*entry.service) {
            Some(list) => list.push_back(seq),
            None => {
                self.by_service
                    .insert(entry.service.clone(), VecDeque::from([seq]));
            }
        }
        self.entries.push_back(entry);
        self.stats.stored += 1;
        true
    }

    fn evict_oldest(&mut self) {
        let Some(old) = self.entries.pop_front() else {
            return;
        };
        self.prev_in_trace.pop_front();
        let seq = self.first_seq;
        self.first_seq += 1;
        self.stats.dropped += 1;
        self.bytes -= old.bytes();
        // The evicted entry is its trace's oldest: the chain just ends
        // one earlier.
        if let Some(t) = &old.trace_id {
            let key = TraceKey::new(t);
            if let Some(t) = self.by_trace.get_mut(&key) {
                t.held -= 1;
                if t.held == 0 {
                    self.by_trace.remove(&key);
                }
            }
        }
        // Index lists are in arrival order, so the evicted entry is at the front.
        if let Some(list) = self.by_service.get_mut(&*old.service) {
            if list.front() == Some(&seq) {
                list.pop_front();
            }
            if list.is_empty() {
                self.by_service.remove(&*old.service);
            }
        }
    }

    fn at(&self, seq: u64) -> Option<&LogEntry> {
        seq.checked_sub(self.first_seq)
            .and_then(|i| self.entries.get(i as usize))
    }

    /// Entries matching every filter of the query, oldest first, at most
    /// `limit`. Uses the trace index, else the service index, else scans.
    pub fn search(&self, q: &LogQuery<'_>) -> Vec<&LogEntry> {
        // An opaque trace id is indexed by its hash: compare the spelling.
        let trace_key = q.trace_id.map(|t| (t, TraceKey::new(t)));
        let exact_trace = trace_key.filter(|(_, k)| k.is_opaque()).map(|(t, _)| t);
        let matches = |e: &LogEntry| {
            exact_trace.is_none_or(|t| e.trace_id.as_deref() == Some(t))
                && q.service.is_none_or(|s| &*e.service == s)
                && q.level.is_none_or(|l| {
                    e.level
                        .as_deref()
                        .is_some_and(|el| el.eq_ignore_ascii_case(l))
                })
                && q.contains.is_none_or(|c| e.message.contains(c))
        };
        if q.limit == 0 {
            return Vec::new();
        }
        // The narrowest index that applies: trace, else service, else none.
        if let Some((_, k)) = trace_key {
            let mut seqs = Vec::new();
            if let Some(t) = self.by_trace.get(&k) {
                let mut seq = t.last;
                while seq != NO_SEQ && seq >= self.first_seq {
                    seqs.push(seq);
                    seq = self.prev_in_trace[(seq - self.first_seq) as usize];
                }
            }
            return seqs
                .into_iter()
                .rev()
                .filter_map(|s| self.at(s))
                .filter(|e| matches(e))
                .take(q.limit)
                .collect();
        }
        let index = q.service.map(|s| self.by_service.get(s));
        if let Some(seqs) = index {
            return seqs
                .into_iter()
                .flatten()
                .filter_map(|&s| self.at(s))
                .filter(|e| matches(e))
                .take(q.limit)
                .collect();
        }
        self.entries
            .iter()
            .filter(|e| matches(e))
            .take(q.limit)
            .collect()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The counters.
    pub fn stats(&self) -> LogStats {
        self.stats
    }
}

impl Default for LogStore {
    fn default() -> Self {
        LogStore::new(Self::DEFAULT_CAP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(store: &mut LogStore, service: &str, msg: &str, trace: Option<&str>) -> LogEntry {
        LogEntry {
            service: store.intern_service(service),
            message: msg.into(),
            trace_id: trace.map(Into::into),
            span_id: None,
            level: None,
            attributes: None,
        }
    }

    #[test]
    fn a_traces_chain_holds_its_entries_oldest_first_across_evictions() {
        let mut s = LogStore::new(5);
        // t0 t1 t2 t0 t1 t2 t0 t1 t2: the first four go.
        for i in 0..9 {
            let t = format!("trace-{}", i % 3);
            let e = entry(&mut s, "web", &i.to_string(), Some(&t));
            s.push(e);
        }
        let msgs = |s: &LogStore, trace: &str, limit: usize| -> Vec<String> {
            s.search(&LogQuery {
                trace_id: Some(trace),
                limit,
                ..LogQuery::default()
            })
            .iter()
            .map(|e| e.message.to_string())
            .collect()
        };
        assert_eq!(msgs(&s, "trace-0", 10), ["6"]);
        assert_eq!(msgs(&s, "trace-1", 10), ["4", "7"]);
        assert_eq!(msgs(&s, "trace-2", 10), ["5", "8"]);
        assert_eq!(msgs(&s, "trace-2", 1), ["5"], "the limit keeps the oldest");
        // A trace whose entries all went is forgotten.
        for i in 9..14 {
            let e = entry(&mut s, "web", &i.to_string(), Some("other"));
            s.push(e);
        }
        assert!(msgs(&s, "trace-1", 10).is_empty());
        assert_eq!(s.by_trace.len(), 1);
    }

    #[test]
    fn a_traces_entries_share_its_id_as_first_spelled_and_only_while_held() {
        let mut s = LogStore::new(2);
        let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
        let uuid = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
        let mut first = entry(&mut s, "web", "a", None);
        first.trace_id = Some(s.intern_trace(hex));
        s.push(first);
        let same = s.intern_trace(hex);
        let held = s.search(&LogQuery::default())[0].trace_id.clone().unwrap();
        assert!(Arc::ptr_eq(&same, &held), "one string for the trace");
        let other = s.intern_trace(uuid);
        assert_eq!(&*other, uuid, "another spelling is kept as logged");
        assert!(!Arc::ptr_eq(&other, &held));
        drop(same);
        // The trace's entries go: its id is not held any more.
        for m in ["b", "c"] {
            let e = entry(&mut s, "web", m, None);
            s.push(e);
        }
        assert!(!Arc::ptr_eq(&s.intern_trace(hex), &held));
        assert_eq!(Arc::strong_count(&held), 1, "only this test holds it");
    }

    #[test]
    fn finds_by_either_spelling_and_keeps_logged_spelling() {
        let mut s = LogStore::new(10);
        let e = entry(
            &mut s,
            "web",
            "hi",
            Some("4BF92F3577B34DA6A3CE929D0E0E4736"),
        );
        s.push(e);
        let q = LogQuery {
            trace_id: Some("4bf92f35-77b3-4da6-a3ce-929d0e0e4736"),
            ..LogQuery::default()
        };
        let found = s.search(&q);
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].trace_id.as_deref(),
            Some("4BF92F3577B34DA6A3CE929D0E0E4736")
        );
    }

    #[test]
    fn filters_combine_and_respect_limit() {
        let mut s = LogStore::new(100);
        for i in 0..10 {
            let svc = if i % 2 == 0 { "a" } else { "b" };
            let mut e = entry(&mut s, svc, &format!("msg {i}"), Some("t1"));
            e.level = Some(if i < 5 { "INFO" } else { "ERROR" }.into());
            s.push(e);
        }
        let q = LogQuery {
            trace_id: Some("t1"),
            service: Some("a"),
            level: Some("error"),
            ..Default::default()
        };
        let got: Vec<_> = s.search(&q).iter().map(|e| e.message.to_string()).collect();
        assert_eq!(got, ["msg 6", "msg 8"]);
        let q = LogQuery {
            contains: Some("msg"),
            limit: 3,
            ..Default::default()
        };
        assert_eq!(s.search(&q).len(), 3);
        let q = LogQuery {
            trace_id: Some("T1"),
            ..Default::default()
        };
        assert!(s.search(&q).is_empty(), "opaque ids compare exactly");
    }

    #[test]
    fn evicts_oldest_and_keeps_indexes_consistent() {
        let mut s = LogStore::new(3);
        for i in 0..5 {
            let e = entry(
                &mut s,
                "svc",
                &format!("m{i}"),
                Some(if i % 2 == 0 { "even" } else { "odd" }),
            );
            s.push(e);
        }
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.stats(),
            LogStats {
                stored: 5,
                dropped: 2,
                ..LogStats::default()
            }
        );
        let even: Vec<_> = s
            .search(&LogQuery {
                trace_id: Some("even"),
                ..Default::default()
            })
            .iter()
            .map(|e| e.message.to_string())
            .collect();
        assert_eq!(even, ["m2", "m4"]);
        let all = s.search(&LogQuery {
            service: Some("svc"),
            ..Default::default()
        });
        assert_eq!(all.len(), 3);
        assert_eq!(&*all[0].message, "m2");
    }

    #[test]
    fn levels_are_shared_up_to_the_cap() {
        let mut store = LogStore::new(10);
        let a = store.intern_level("INFO");
        let b = store.intern_level("INFO");
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..MAX_LEVELS + 5 {
            store.intern_level(&format!("L{i}"));
        }
        assert_eq!(store.levels.len(), MAX_LEVELS);
        let c = store.intern_level("INFO");
        assert!(Arc::ptr_eq(&a, &c), "a level seen first stays shared");
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest_entries_and_refuses_what_never_fits() {
        let probe = |store: &mut LogStore| entry(store, "svc", "m0000", Some("t"));
        let mut sizer = LogStore::new(10);
        let one = probe(&mut sizer).bytes();
        let mut store = LogStore::with_bytes(1_000, 5 * one);
        for i in 0..20 {
            let e = entry(&mut store, "svc", &format!("m{i:04}"), Some("t"));
            assert!(store.push(e));
            assert!(store.bytes() <= 5 * one);
        }
        assert_eq!(store.len(), 5);
        let st = store.stats();
        assert_eq!((st.dropped, st.dropped_for_bytes), (15, 15));
        let kept: Vec<&str> = store
            .search(&LogQuery::default())
            .iter()
            .map(|e| &*e.message)
            .collect();
        assert_eq!(kept, ["m0015", "m0016", "m0017", "m0018", "m0019"]);
        let big = entry(&mut store, "svc", &"x".repeat(10 * one), None);
        assert!(!store.fits(&big));
        assert!(!store.push(big));
        assert_eq!(store.len(), 5, "nothing evicted for it");
        assert_eq!(store.stats().refused_too_large, 1);
    }
}
