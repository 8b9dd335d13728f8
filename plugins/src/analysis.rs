//! Questions about traces: `query_traces` and `find_traces` find stored
//! traces; `analyze_traces`, `profile_traces`, `analyze_errors` and
//! `service_map` work over the stored traces or over traces given in the
//! request.
//!
//! Stored traces are seen without the node's own message spans: the SERVER
//! span the runtime opens for every message (attribute `rpc.system:
//! "maelstrom"`) and the spans under it (its CLIENT `send` spans). They
//! describe the node serving the protocol, not the traced system.
//!
//! Traces given in a request come in one of three shapes, told apart by
//! their keys (see [`TraceAny`]): the full one (`spans` with `span_id`,
//! `parent_span_id`, `duration_us`...), the course's call chain
//! (`{trace_id, duration_ms, spans: [{service, duration}]}`) and, for
//! `analyze_errors` only, the course's error flags (`{trace_id, has_error,
//! service?}`). All the traces of one request have one shape.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use tracer_core::{SpanId, SpanKind, Status};
use tracer_node::stores;
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

/// A span kind, from its OpenTelemetry name in any case (`"client"`,
/// `"SPAN_KIND_CLIENT"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KindIn(SpanKind);

impl<'de> Deserialize<'de> for KindIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SpanKind::parse(&s).map(KindIn).ok_or_else(|| {
            de::Error::custom(format!(
                "{s:?} is not one of INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER"
            ))
        })
    }
}

/// One span, as the analysis sees it.
#[derive(Clone, Debug)]
pub struct SpanIn {
    span_id: String,
    parent_span_id: Option<String>,
    service: String,
    name: Option<String>,
    duration_us: u64,
    failed: Failed,
    start_us: Option<u64>,
    kind: SpanKind,
    /// The attributes the suggestion rules read (see
    /// [`is_rule_attribute`]), as text.
    attributes: Vec<(String, String)>,
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
#[derive(Clone, Debug)]
pub struct TraceIn {
    trace_id: Option<String>,
    spans: Vec<SpanIn>,
}

/// A stored trace without the node's own message spans and what they
/// started; `None` when nothing else is left.
fn from_stored(name: String, trace: &StoredTrace) -> Option<TraceIn> {
    let mut skipped: HashSet<SpanId> = HashSet::new();
    let mut spans = Vec::new();
    for s in trace.tree_order() {
        if stores::is_node_span(s) || s.parent_span_id.is_some_and(|p| skipped.contains(&p)) {
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
            kind: s.kind,
            attributes: s
                .attributes
                .iter()
                .filter(|kv| is_rule_attribute(&kv.key))
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect(),
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

// ---------------------------------------------------------------------
// Traces given in a request.

/// One span as a request gives it, in either shape: the full one
/// (`span_id`, `parent_span_id?`, `service`, `name?`, `duration_us`,
/// `status?`, `start_us?`, `kind?`, `attributes?`) or the course's
/// (`service`, `duration` in ms, exclusive of the next span's). Every key
/// is optional here, so that a mistyped one is named by its path; which
/// ones must be there is checked once the shape is known.
#[derive(Deserialize)]
pub struct SpanAny {
    span_id: Option<String>,
    parent_span_id: Option<String>,
    service: Option<String>,
    name: Option<String>,
    duration_us: Option<u64>,
    duration: Option<f64>,
    status: Option<Failed>,
    start_us: Option<u64>,
    kind: Option<KindIn>,
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One trace as a request gives it: `{trace_id?, spans}` (spans in the
/// full shape or the course's; the course's also has `duration_ms`), or
/// the course's error flags `{trace_id?, has_error, service?}`.
#[derive(Deserialize)]
pub struct TraceAny {
    trace_id: Option<String>,
    spans: Option<Vec<SpanAny>>,
    duration_ms: Option<f64>,
    has_error: Option<bool>,
    service: Option<String>,
}

/// The shape of a trace given in a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    /// Span ids, parents, microseconds.
    Full,
    /// The course's call chain: `spans: [{service, duration}]`.
    Chain,
    /// The course's error flags: `{trace_id, has_error, service?}`.
    Flags,
}

impl Shape {
    fn describe(self) -> &'static str {
        match self {
            Shape::Full => "the full shape (spans with `span_id`)",
            Shape::Chain => "the call-chain shape (spans with `duration` and no `span_id`)",
            Shape::Flags => "the error-flag shape (`has_error`)",
        }
    }
}

/// A trace of the course's error-flag shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagTrace {
    has_error: bool,
    service: Option<String>,
}

/// Traces given to `analyze_errors`: spans, or error flags.
enum ErrorInput {
    Spans(Vec<TraceIn>),
    Flags(Vec<FlagTrace>),
}

fn missing(path: &str) -> Error {
    Error::bad_field(path, "missing")
}

/// A duration in ms, as a whole number of µs (rounded; a duration too
/// large for 64 bits saturates). Negative durations are refused.
fn ms_to_us(path: &str, ms: f64) -> Result<u64, Error> {
    if !ms.is_finite() || ms < 0.0 {
        return Err(Error::bad_field(
            path,
            format!("{ms} is not a duration in ms"),
        ));
    }
    // `as` saturates at u64::MAX.
    Ok((ms * 1_000.0).round() as u64)
}

/// The shape of trace `i` by its keys; `None` for one that fits any (no
/// spans). `flags`: whether the error-flag shape is accepted.
fn shape_of(t: &TraceAny, i: usize, flags: bool) -> Result<Option<Shape>, Error> {
    if flags && t.has_error.is_some() {
        return Ok(Some(Shape::Flags));
    }
    let Some(spans) = &t.spans else {
        let why = if flags {
            "missing (a trace has `spans`, or `has_error`)"
        } else {
            "missing"
        };
        return Err(Error::bad_field(&format!("traces[{i}].spans"), why));
    };
    let span_shape = |s: &SpanAny| {
        if s.span_id.is_none() && s.duration.is_some() {
            Shape::Chain
        } else {
            Shape::Full
        }
    };
    let Some(first) = spans.first().map(span_shape) else {
        return Ok(t.duration_ms.is_some().then_some(Shape::Chain));
    };
    if let Some(j) = spans.iter().position(|s| span_shape(s) != first) {
        return Err(Error::bad_field(
            &format!("traces[{i}].spans[{j}]"),
            format!(
                "the trace's first span is in {}, this one is not; a trace has one shape",
                first.describe()
            ),
        ));
    }
    Ok(Some(first))
}

/// The one shape of all the traces of a request (`None`: no trace has
/// spans); a trace in another shape than the first one's is error 12
/// naming it.
fn request_shape(traces: &[TraceAny], flags: bool) -> Result<Option<Shape>, Error> {
    let mut seen: Option<(usize, Shape)> = None;
    for (i, t) in traces.iter().enumerate() {
        let Some(shape) = shape_of(t, i, flags)? else {
            continue;
        };
        match seen {
            None => seen = Some((i, shape)),
            Some((first, want)) if want != shape => {
                return Err(Error::bad_field(
                    &format!("traces[{i}]"),
                    format!(
                        "is in {} but traces[{first}] is in {}; all the traces of one \
                         request have one shape",
                        shape.describe(),
                        want.describe()
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(seen.map(|(_, s)| s))
}

/// The attributes the suggestion rules read, as text.
fn rule_attributes(
    attributes: Option<serde_json::Map<String, serde_json::Value>>,
) -> Vec<(String, String)> {
    attributes
        .into_iter()
        .flatten()
        .filter(|(k, _)| is_rule_attribute(k))
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => (k, s),
            other => (k, other.to_string()),
        })
        .collect()
}

/// A full-shape span, its required keys checked.
fn full_span(path: &str, s: SpanAny) -> Result<SpanIn, Error> {
    Ok(SpanIn {
        span_id: s
            .span_id
            .ok_or_else(|| missing(&format!("{path}.span_id")))?,
        parent_span_id: s.parent_span_id,
        service: s
            .service
            .ok_or_else(|| missing(&format!("{path}.service")))?,
        name: s.name,
        duration_us: s
            .duration_us
            .ok_or_else(|| missing(&format!("{path}.duration_us")))?,
        failed: s.status.unwrap_or_default(),
        start_us: s.start_us,
        kind: s.kind.map_or(SpanKind::Internal, |k| k.0),
        attributes: rule_attributes(s.attributes),
    })
}

/// The course's call chain as a trace: span `i` calls span `i + 1`, and a
/// span's inclusive duration is its own (exclusive) duration plus those of
/// every span after it. Span ids are the positions (`"0"`, `"1"`...).
pub fn chain(trace_id: Option<String>, spans: Vec<(String, u64)>) -> TraceIn {
    let mut inclusive = vec![0u64; spans.len()];
    let mut sum = 0u64;
    for (i, (_, us)) in spans.iter().enumerate().rev() {
        sum = sum.saturating_add(*us);
        inclusive[i] = sum;
    }
    let spans = spans
        .into_iter()
        .zip(inclusive)
        .enumerate()
        .map(|(i, ((service, _), duration_us))| SpanIn {
            span_id: i.to_string(),
            parent_span_id: i.checked_sub(1).map(|p| p.to_string()),
            service,
            name: None,
            duration_us,
            failed: Failed(false),
            start_us: None,
            kind: SpanKind::Internal,
            attributes: Vec::new(),
        })
        .collect();
    TraceIn { trace_id, spans }
}

/// A span-carrying trace (full or chain shape) as the analysis sees it.
fn span_trace(i: usize, t: TraceAny, shape: Shape) -> Result<TraceIn, Error> {
    if let Some(ms) = t.duration_ms {
        ms_to_us(&format!("traces[{i}].duration_ms"), ms)?;
    }
    let spans = t.spans.unwrap_or_default();
    match shape {
        Shape::Chain => {
            let mut chained = Vec::with_capacity(spans.len());
            for (j, s) in spans.into_iter().enumerate() {
                let path = format!("traces[{i}].spans[{j}]");
                let service = s
                    .service
                    .ok_or_else(|| missing(&format!("{path}.service")))?;
                let ms = s
                    .duration
                    .ok_or_else(|| missing(&format!("{path}.duration")))?;
                chained.push((service, ms_to_us(&format!("{path}.duration"), ms)?));
            }
            Ok(chain(t.trace_id, chained))
        }
        Shape::Full | Shape::Flags => Ok(TraceIn {
            trace_id: t.trace_id,
            spans: spans
                .into_iter()
                .enumerate()
                .map(|(j, s)| full_span(&format!("traces[{i}].spans[{j}]"), s))
                .collect::<Result<_, _>>()?,
        }),
    }
}

/// Traces given to `analyze_traces`, `profile_traces` and `service_map`:
/// full or call-chain shape, one shape per request.
fn span_traces(traces: Vec<TraceAny>) -> Result<Vec<TraceIn>, Error> {
    let shape = request_shape(&traces, false)?.unwrap_or(Shape::Full);
    traces
        .into_iter()
        .enumerate()
        .map(|(i, t)| span_trace(i, t, shape))
        .collect()
}

/// Traces given to `analyze_errors`: full, call-chain or error-flag shape,
/// one shape per request.
fn error_traces(traces: Vec<TraceAny>) -> Result<ErrorInput, Error> {
    match request_shape(&traces, true)?.unwrap_or(Shape::Full) {
        Shape::Flags => Ok(ErrorInput::Flags(
            traces
                .into_iter()
                .map(|t| FlagTrace {
                    has_error: t.has_error.unwrap_or(false),
                    service: t.service,
                })
                .collect(),
        )),
        shape => Ok(ErrorInput::Spans(
            traces
                .into_iter()
                .enumerate()
                .map(|(i, t)| span_trace(i, t, shape))
                .collect::<Result<_, _>>()?,
        )),
    }
}

// ---------------------------------------------------------------------
// Time ranges.

/// `time_range`: the last so long, up to now (`"1h"`, `"15m"`, `"30s"`:
/// a number and a unit among `ms`, `s`, `m`, `h`, `d`), or `{start_us,
/// end_us}` (µs since the Unix epoch); both ends inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeRange {
    /// The last so many µs, up to now.
    Last(u64),
    /// From `start_us` to `end_us`.
    Between {
        /// The first µs in the range.
        start_us: u64,
        /// The last µs in the range.
        end_us: u64,
    },
}

impl TimeRange {
    /// The range's first and last µs, `now_us` being now.
    pub fn bounds(self, now_us: u64) -> (u64, u64) {
        match self {
            TimeRange::Last(us) => (now_us.saturating_sub(us), now_us),
            TimeRange::Between { start_us, end_us } => (start_us, end_us),
        }
    }

    /// The range's bounds now.
    fn bounds_now(self) -> (u64, u64) {
        self.bounds(tracer_core::now_unix_nanos() / 1_000)
    }
}

/// `"1h"`, `"15m"`, `"30s"`, `"250ms"`, `"2d"`, `"1.5h"` in µs: a
/// non-negative decimal number, optionally spaces, then a unit among `ms`,
/// `s`, `m`, `h`, `d` (lower case).
pub fn parse_duration_us(text: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{text:?} is not a duration such as \"1h\", \"15m\" or \"30s\" \
             (a number and one of ms, s, m, h, d)"
        )
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let us_per_unit: f64 = match unit.trim_start() {
        "ms" => 1e3,
        "s" => 1e6,
        "m" => 60e6,
        "h" => 3_600e6,
        "d" => 86_400e6,
        _ => return Err(bad()),
    };
    let well_formed = !number.is_empty()
        && !number.starts_with('.')
        && !number.ends_with('.')
        && number.matches('.').count() <= 1;
    let n: f64 = if well_formed {
        number.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    let us = (n * us_per_unit).round();
    if us >= u64::MAX as f64 {
        return Err(format!("{text:?} is too long a time"));
    }
    Ok(us as u64)
}

impl<'de> Deserialize<'de> for TimeRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Bounds {
            start_us: u64,
            end_us: u64,
        }

        struct RangeVisitor;

        impl<'de> Visitor<'de> for RangeVisitor {
            type Value = TimeRange;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"1h\", \"15m\" or \"30s\", or {start_us, end_us}")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeRange, E> {
                parse_duration_us(v).map(TimeRange::Last).map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<TimeRange, A::Error> {
                let b = Bounds::deserialize(de::value::MapAccessDeserializer::new(map))?;
                if b.start_us > b.end_us {
                    return Err(de::Error::custom("start_us must not be after end_us"));
                }
                Ok(TimeRange::Between {
                    start_us: b.start_us,
                    end_us: b.end_us,
                })
            }
        }

        d.deserialize_any(RangeVisitor)
    }
}

/// When a trace starts: its earliest span start, `None` when no span has
/// one (traces given in the course's shape).
fn start_us(t: &TraceIn) -> Option<u64> {
    t.spans.iter().filter_map(|s| s.start_us).min()
}

/// Earliest start to latest end of a trace's spans, in microseconds.
fn extent_us(t: &TraceIn) -> (u64, u64) {
    let start = start_us(t).unwrap_or(0);
    let end = t
        .spans
        .iter()
        .map(|s| s.start_us.unwrap_or(start).saturating_add(s.duration_us))
        .max()
        .unwrap_or(start);
    (start, end)
}

/// Whether a trace starts within `(first, last)`; one without timestamps
/// is kept.
fn starts_within(t: &TraceIn, (first, last): (u64, u64)) -> bool {
    start_us(t).is_none_or(|s| (first..=last).contains(&s))
}

// ---------------------------------------------------------------------
// Self time and the critical path.

/// The tree of one trace: parent and children by index. A parent id not in
/// the trace (or the span itself) makes a root; a repeated span id counts
/// once as a parent (its first occurrence).
struct Tree<'a> {
    spans: &'a [SpanIn],
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
}

/// Makes every span reachable from a root, as the trace store lists them:
/// a span its own parent is a root (done by the caller), and each parent
/// cycle is broken at its earliest-started span (else the first given),
/// which becomes a root. Analysis then sees the same trees `get_trace`
/// shows.
fn break_cycles(spans: &[SpanIn], parent: &mut [Option<usize>]) {
    // Each span is walked once: 0 not yet, 1 on the current walk, 2 known
    // to reach a root.
    let mut state = vec![0u8; spans.len()];
    let mut walk: Vec<usize> = Vec::new();
    for start in 0..spans.len() {
        walk.clear();
        let mut i = start;
        loop {
            match state[i] {
                2 => break,
                1 => {
                    // Back on this walk: the spans from `i` on are a cycle.
                    let pos = walk.iter().position(|&j| j == i).unwrap_or(0);
                    if let Some(&cut) = walk[pos..]
                        .iter()
                        .min_by_key(|&&j: &&usize| (spans[j].start_us.unwrap_or(u64::MAX), j))
                    {
                        parent[cut] = None;
                    }
                    break;
                }
                _ => {}
            }
            state[i] = 1;
            walk.push(i);
            match parent[i] {
                None => break,
                Some(p) => i = p,
            }
        }
        for &j in &walk {
            state[j] = 2;
        }
    }
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [SpanIn]) -> Self {
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, s) in spans.iter().enumerate() {
            index.entry(s.span_id.as_str()).or_insert(i);
        }
        let mut parent: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_span_id
                    .as_deref()
                    .and_then(|p| index.get(p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        break_cycles(spans, &mut parent);
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
    /// total. Cycles were broken when the tree was made, so every span
    /// takes part.
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

// ---------------------------------------------------------------------
// Optimization suggestions.

/// One row of the table the optimization suggestion comes from. A span
/// matches a row when its service's name has one of `words` (see
/// [`has_word`]), or one of its attributes `db.system`,
/// `messaging.system` or `peer.service` has one in its value, or it has
/// one of the `attributes`, or its kind is among `kinds`. A row with none
/// of the three lists matches every span.
#[derive(Debug)]
pub struct SuggestionRule {
    /// What the bottleneck is.
    pub what: &'static str,
    /// Words of service names and attribute values.
    pub words: &'static [&'static str],
    /// Attribute keys that mark a span.
    pub attributes: &'static [&'static str],
    /// Span kinds that mark a span.
    pub kinds: &'static [SpanKind],
    /// The suggestion, one sentence.
    pub suggestion: &'static str,
}

/// The suggestion table, in the order rows are tried: each span of the top
/// bottleneck goes to the first row it matches, and the row whose spans
/// have the most self time (the earlier row on a tie) gives the
/// suggestion. Kept in step with `docs/protocol.md`.
pub const SUGGESTION_RULES: [SuggestionRule; 5] = [
    SuggestionRule {
        what: "cache",
        words: &["cache", "redis", "memcache", "memcached", "valkey"],
        attributes: &[],
        kinds: &[],
        suggestion: "Batch cache lookups and tune keys and expiry times to raise the hit rate",
    },
    SuggestionRule {
        what: "database",
        words: &[
            "db",
            "database",
            "sql",
            "postgres",
            "mysql",
            "mariadb",
            "mongo",
            "sqlite",
            "oracle",
            "cassandra",
            "dynamo",
            "pg",
        ],
        attributes: &["db.system", "db.statement", "db.query.text", "db.name"],
        kinds: &[],
        suggestion: "Add caching for database queries",
    },
    SuggestionRule {
        what: "queue",
        words: &[
            "queue", "kafka", "rabbit", "rabbitmq", "sqs", "sns", "pubsub", "nats", "amqp", "mq",
            "kinesis", "broker",
        ],
        attributes: &["messaging.system", "messaging.destination.name"],
        kinds: &[SpanKind::Producer, SpanKind::Consumer],
        suggestion: "Add consumers or partitions and batch messages to cut the time spent \
                     waiting on the queue",
    },
    SuggestionRule {
        what: "remote call",
        words: &[
            "gateway",
            "external",
            "remote",
            "upstream",
            "proxy",
            "client",
            "thirdparty",
            "partner",
            "vendor",
            "webhook",
        ],
        attributes: &["url.full", "http.url", "peer.service", "rpc.service"],
        kinds: &[SpanKind::Client],
        suggestion: "Make remote calls concurrently, with timeouts, and cache or batch \
                     their responses",
    },
    SuggestionRule {
        what: "CPU-bound work (anything else)",
        words: &[],
        attributes: &[],
        kinds: &[],
        suggestion: "Profile the service's own code and optimize its hot paths",
    },
];

/// The suggestion when there is no span to analyze.
pub const NO_SPANS: &str = "No spans to analyze";

/// The suggestion when spans were analyzed but none had self time.
pub const NO_TIME: &str = "No span took measurable time: nothing to optimize";

/// Attributes whose values are searched for the rules' words.
const WORD_ATTRIBUTES: [&str; 3] = ["db.system", "messaging.system", "peer.service"];

/// Whether the rules read an attribute: only those are kept on spans for
/// the analysis.
fn is_rule_attribute(key: &str) -> bool {
    WORD_ATTRIBUTES.contains(&key) || SUGGESTION_RULES.iter().any(|r| r.attributes.contains(&key))
}

/// Whether `text` has one of `words`: split into parts at every character
/// that is not an ASCII letter or digit, lower-cased, a part has a word
/// when it starts or ends with it (`"orders-db"`, `"mongodb"` and
/// `"postgresql"` have a database word; `"feedback"` has none).
pub fn has_word(text: &str, words: &[&str]) -> bool {
    text.to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .any(|p| words.iter().any(|w| p.starts_with(w) || p.ends_with(w)))
}

impl SuggestionRule {
    fn matches_everything(&self) -> bool {
        self.words.is_empty() && self.attributes.is_empty() && self.kinds.is_empty()
    }

    /// Whether the span matches the row, `service_has_word` being whether
    /// its service's name has one of the row's words.
    fn matches(&self, service_has_word: bool, s: &SpanIn) -> bool {
        self.matches_everything()
            || service_has_word
            || self.kinds.contains(&s.kind)
            || s.attributes.iter().any(|(k, v)| {
                self.attributes.contains(&k.as_str())
                    || (WORD_ATTRIBUTES.contains(&k.as_str()) && has_word(v, self.words))
            })
    }
}

/// For each row of [`SUGGESTION_RULES`], whether a service's name has one
/// of its words.
fn service_words(service: &str) -> [bool; SUGGESTION_RULES.len()] {
    SUGGESTION_RULES.map(|r| has_word(service, r.words))
}

/// The row of [`SUGGESTION_RULES`] a span goes to, `service_words` being
/// [`service_words`] of its service.
fn rule_of(s: &SpanIn, service_words: &[bool; SUGGESTION_RULES.len()]) -> usize {
    SUGGESTION_RULES
        .iter()
        .zip(service_words)
        .position(|(r, &w)| r.matches(w, s))
        .unwrap_or(SUGGESTION_RULES.len() - 1)
}

/// The suggestion for a bottleneck whose spans' self time went to each row
/// of [`SUGGESTION_RULES`] as `by_rule` says: the row with the most.
pub fn suggestion(by_rule: &[u64; SUGGESTION_RULES.len()]) -> &'static str {
    let mut best: Option<usize> = None;
    for (i, &us) in by_rule.iter().enumerate() {
        if us > 0 && best.is_none_or(|b| us > by_rule[b]) {
            best = Some(i);
        }
    }
    SUGGESTION_RULES[best.unwrap_or(SUGGESTION_RULES.len() - 1)].suggestion
}

// ---------------------------------------------------------------------
// analyze_traces, profile_traces.

/// What `analyze_traces` and `profile_traces` report on.
struct Profile<'a> {
    /// Every span analyzed.
    spans: usize,
    /// Self time by service, largest first (ties by name).
    services: Vec<(&'a str, u64)>,
    /// Self time by service and row of [`SUGGESTION_RULES`].
    by_rule: HashMap<&'a str, [u64; SUGGESTION_RULES.len()]>,
    /// The heaviest root-to-leaf chain over all traces: its trace, its
    /// spans, its total duration.
    critical: Option<(&'a TraceIn, Vec<usize>, u64)>,
}

impl<'a> Profile<'a> {
    fn of(traces: &'a [TraceIn]) -> Self {
        let mut self_time: BTreeMap<&str, u64> = BTreeMap::new();
        let mut by_rule: HashMap<&str, [u64; SUGGESTION_RULES.len()]> = HashMap::new();
        let mut words: HashMap<&str, [bool; SUGGESTION_RULES.len()]> = HashMap::new();
        let mut critical: Option<(&TraceIn, Vec<usize>, u64)> = None;
        let mut spans = 0;
        for t in traces {
            spans += t.spans.len();
            let tree = Tree::new(&t.spans);
            for (i, s) in t.spans.iter().enumerate() {
                let us = tree.self_time_us(i);
                let total = self_time.entry(s.service.as_str()).or_default();
                *total = total.saturating_add(us);
                let service = s.service.as_str();
                let w = words
                    .entry(service)
                    .or_insert_with(|| service_words(service));
                let row = &mut by_rule.entry(service).or_default()[rule_of(s, w)];
                *row = row.saturating_add(us);
            }
            let (path, total) = tree.critical_path();
            if !path.is_empty() && critical.as_ref().is_none_or(|(_, _, best)| total > *best) {
                critical = Some((t, path, total));
            }
        }
        let mut services: Vec<(&str, u64)> = self_time.into_iter().collect();
        services.sort_by_key(|&(_, us)| std::cmp::Reverse(us));
        Profile {
            spans,
            services,
            by_rule,
            critical,
        }
    }
}

/// The bottleneck rule: of services by self time, largest first, the
/// largest (when it has any self time), and every other one with at least
/// 20 % of all self time and at least half the largest's.
pub fn bottlenecks<'a>(by_self_time: &[(&'a str, u64)]) -> Vec<&'a str> {
    let total: u128 = by_self_time.iter().map(|&(_, us)| u128::from(us)).sum();
    let Some(&(_, top)) = by_self_time.first() else {
        return Vec::new();
    };
    by_self_time
        .iter()
        .enumerate()
        .filter(|&(i, &(_, us))| {
            let us = u128::from(us);
            us > 0 && (i == 0 || (us * 5 >= total && us * 2 >= u128::from(top)))
        })
        .map(|(_, &(service, _))| service)
        .collect()
}

/// `insights {bottlenecks, critical_path, optimization_suggestion}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "insights")]
pub struct Insights {
    bottlenecks: Vec<String>,
    critical_path: String,
    optimization_suggestion: String,
}

/// The bottleneck services, the services along the heaviest chain
/// (`"web->api->db"`, a service repeated in a row named once), and the
/// suggestion for the top bottleneck.
pub fn insights(traces: &[TraceIn]) -> Insights {
    let p = Profile::of(traces);
    let bottlenecks: Vec<String> = bottlenecks(&p.services)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut path: Vec<&str> = Vec::new();
    if let Some((t, spans, _)) = &p.critical {
        for &i in spans {
            let service = t.spans[i].service.as_str();
            if path.last() != Some(&service) {
                path.push(service);
            }
        }
    }
    let optimization_suggestion = if p.spans == 0 {
        NO_SPANS
    } else {
        match bottlenecks.first() {
            None => NO_TIME,
            Some(top) => suggestion(&p.by_rule[top.as_str()]),
        }
    };
    Insights {
        bottlenecks,
        critical_path: path.join("->"),
        optimization_suggestion: optimization_suggestion.to_owned(),
    }
}

/// A service's share of the self time of every span analyzed.
#[derive(Debug, PartialEq, Serialize)]
pub struct ServiceTime {
    service: String,
    self_time_us: u64,
    share: String,
}

/// `trace_profile {bottlenecks, critical_path, trace_id}`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "trace_profile")]
pub struct TraceProfile {
    bottlenecks: Vec<ServiceTime>,
    critical_path: Vec<String>,
    trace_id: Option<String>,
}

/// Every service by self time, largest first (ties by name), with its
/// share; the heaviest chain's spans as `service:name`, and its trace.
pub fn trace_profile(traces: &[TraceIn]) -> TraceProfile {
    let p = Profile::of(traces);
    let total: u64 = p
        .services
        .iter()
        .fold(0u64, |a, &(_, us)| a.saturating_add(us));
    let (critical_path, trace_id) = match &p.critical {
        Some((t, path, _)) => (
            path.iter().map(|&i| t.spans[i].label()).collect(),
            t.trace_id.clone(),
        ),
        None => (Vec::new(), None),
    };
    TraceProfile {
        bottlenecks: p
            .services
            .iter()
            .map(|&(service, us)| ServiceTime {
                service: service.to_owned(),
                self_time_us: us,
                share: percent(us, total),
            })
            .collect(),
        critical_path,
        trace_id,
    }
}

// ---------------------------------------------------------------------
// analyze_errors, service_map.

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

/// The course's error flags: each service named, its failed traces over
/// all the traces given (a failed trace without a service counts for
/// `"unknown"`); `total_errors` the failed traces.
pub fn flag_error_analysis(traces: &[FlagTrace]) -> ErrorAnalysis {
    let mut failed: BTreeMap<&str, u64> = BTreeMap::new();
    let mut total_errors = 0;
    for t in traces {
        let service = t.service.as_deref();
        if t.has_error {
            total_errors += 1;
            *failed.entry(service.unwrap_or("unknown")).or_default() += 1;
        } else if let Some(service) = service {
            failed.entry(service).or_default();
        }
    }
    let all = traces.len() as u64;
    ErrorAnalysis {
        error_rate_by_service: failed
            .into_iter()
            .map(|(svc, n)| (svc.to_owned(), percent(n, all)))
            .collect(),
        total_errors,
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

// ---------------------------------------------------------------------
// Handlers.

/// `analyze_traces`, `profile_traces`: `{traces?, time_range?}`.
#[derive(Deserialize)]
pub struct AnalyzeTraces {
    #[serde(default)]
    traces: Option<Vec<TraceAny>>,
    #[serde(default)]
    time_range: Option<TimeRange>,
}

/// The traces given, else the stored ones; those with a start outside
/// `time_range` left out (traces without timestamps are kept).
fn traces_in_range(ctx: &Ctx<'_>, req: AnalyzeTraces) -> Result<Vec<TraceIn>, Error> {
    let mut traces = match req.traces {
        Some(given) => span_traces(given)?,
        None => stored(&ctx.traces()),
    };
    if let Some(range) = req.time_range {
        let bounds = range.bounds_now();
        traces.retain(|t| starts_within(t, bounds));
    }
    Ok(traces)
}

/// The bottleneck services, the critical path, one suggestion.
#[handler("analyze_traces")]
pub fn analyze_traces(ctx: &mut Ctx<'_>, req: AnalyzeTraces) -> Result<Insights, Error> {
    Ok(insights(&traces_in_range(ctx, req)?))
}

/// Self time and share of every service, the critical path's spans.
#[handler("profile_traces")]
pub fn profile_traces(ctx: &mut Ctx<'_>, req: AnalyzeTraces) -> Result<TraceProfile, Error> {
    Ok(trace_profile(&traces_in_range(ctx, req)?))
}

/// `analyze_errors`, `service_map`: `{traces?}`.
#[derive(Deserialize)]
pub struct Analyze {
    #[serde(default)]
    traces: Option<Vec<TraceAny>>,
}

/// Error rates by service.
#[handler("analyze_errors")]
pub fn analyze_errors(ctx: &mut Ctx<'_>, req: Analyze) -> Result<ErrorAnalysis, Error> {
    Ok(match req.traces {
        None => error_analysis(&stored(&ctx.traces())),
        Some(given) => match error_traces(given)? {
            ErrorInput::Spans(traces) => error_analysis(&traces),
            ErrorInput::Flags(traces) => flag_error_analysis(&traces),
        },
    })
}

/// Which service calls which.
#[handler("service_map")]
pub fn service_map_handler(ctx: &mut Ctx<'_>, req: Analyze) -> Result<ServiceMap, Error> {
    let traces = match req.traces {
        Some(given) => span_traces(given)?,
        None => stored(&ctx.traces()),
    };
    Ok(service_map(&traces))
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

/// `query_traces`, `find_traces`: `{service?, time_range?,
/// min_duration_us?, status?}`.
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

/// Stored traces matching every filter given (oldest first): one of its
/// spans from `service`; its start within `time_range`; lasting at least
/// `min_duration_us`; with (`ERROR`) or without (`OK`) a failed span. Each
/// with its duration in µs.
fn matching(ctx: &Ctx<'_>, req: &QueryTraces) -> Vec<(String, u64)> {
    let bounds = req.time_range.map(TimeRange::bounds_now);
    let traces = stored(&ctx.traces());
    let mut found = Vec::new();
    for t in traces {
        let (start, end) = extent_us(&t);
        let duration = end - start;
        let keep = req
            .service
            .as_deref()
            .is_none_or(|svc| t.spans.iter().any(|s| s.service == svc))
            && bounds.is_none_or(|b| starts_within(&t, b))
            && req.min_duration_us.is_none_or(|min| duration >= min)
            && req
                .status
                .as_ref()
                .is_none_or(|want| t.spans.iter().any(|s| s.failed.0) == want.0);
        if keep {
            found.push((t.trace_id.unwrap_or_default(), duration));
        }
    }
    found
}

/// `query_results {traces, avg_duration_ms}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "query_results")]
pub struct QueryResults {
    traces: usize,
    avg_duration_ms: f64,
}

/// How many stored traces match, and their mean duration in ms (µs
/// precision; 0 when none matched).
#[handler("query_traces")]
pub fn query_traces(ctx: &mut Ctx<'_>, req: QueryTraces) -> Result<QueryResults, Error> {
    let found = matching(ctx, &req);
    let total_us = found.iter().fold(0u64, |a, &(_, us)| a.saturating_add(us));
    let avg_duration_ms = if found.is_empty() {
        0.0
    } else {
        (total_us as f64 / found.len() as f64).round() / 1_000.0
    };
    Ok(QueryResults {
        traces: found.len(),
        avg_duration_ms,
    })
}

/// `found_traces {trace_ids}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "found_traces")]
pub struct FoundTraces {
    trace_ids: Vec<String>,
}

/// The ids of the stored traces `query_traces` counts, oldest first.
#[handler("find_traces")]
pub fn find_traces(ctx: &mut Ctx<'_>, req: QueryTraces) -> Result<FoundTraces, Error> {
    Ok(FoundTraces {
        trace_ids: matching(ctx, &req).into_iter().map(|(id, _)| id).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// Request traces as the handlers read them.
    fn given(v: Value) -> Vec<TraceAny> {
        serde_json::from_value(v).unwrap()
    }

    fn traces(v: Value) -> Vec<TraceIn> {
        span_traces(given(v)).unwrap()
    }

    fn trace(v: Value) -> TraceIn {
        traces(json!([v])).remove(0)
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

    /// The course's performance case.
    fn course_chain() -> Value {
        json!({"trace_id": "t1", "duration_ms": 5000, "spans": [
            {"service": "web", "duration": 100},
            {"service": "api", "duration": 200},
            {"service": "db", "duration": 4700}
        ]})
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
        let tree = Tree::new(&t.spans);
        // x <-> y is broken at x (no start times: the first given).
        assert_eq!(tree.parent, vec![None, Some(0), None]);
        let (path, total) = tree.critical_path();
        assert_eq!((path, total), (vec![2], 5));
        // Every span takes part: the analysis does not contradict itself.
        let i = insights(&[t]);
        assert!(!i.bottlenecks.is_empty());
        assert_ne!(i.optimization_suggestion, NO_SPANS);
    }

    #[test]
    fn long_chains_of_cycles_are_broken_in_one_pass() {
        let spans: Vec<serde_json::Value> = (0..20_000)
            .map(|i| {
                let pair = i ^ 1;
                json!({"span_id": format!("s{i}"), "parent_span_id": format!("s{pair}"),
                       "service": "a", "duration_us": 1})
            })
            .collect();
        let t = trace(json!({ "spans": spans }));
        let tree = Tree::new(&t.spans);
        assert_eq!(tree.parent.iter().filter(|p| p.is_none()).count(), 10_000);
    }

    #[test]
    fn a_call_chain_becomes_nested_spans_with_suffix_sums() {
        let t = chain(
            Some("t".into()),
            vec![
                ("web".into(), 100),
                ("api".into(), 200),
                ("db".into(), 4700),
            ],
        );
        assert_eq!(t.trace_id.as_deref(), Some("t"));
        let durations: Vec<u64> = t.spans.iter().map(|s| s.duration_us).collect();
        assert_eq!(durations, vec![5000, 4900, 4700]);
        let parents: Vec<Option<&str>> = t
            .spans
            .iter()
            .map(|s| s.parent_span_id.as_deref())
            .collect();
        assert_eq!(parents, vec![None, Some("0"), Some("1")]);
        let tree = Tree::new(&t.spans);
        let selfs: Vec<u64> = (0..3).map(|i| tree.self_time_us(i)).collect();
        assert_eq!(
            selfs,
            vec![100, 200, 4700],
            "self time is the exclusive duration"
        );
        assert_eq!(tree.critical_path().0, vec![0, 1, 2]);
        assert!(chain(None, Vec::new()).spans.is_empty());
        // Saturating, not overflowing.
        let huge = chain(None, vec![("a".into(), u64::MAX), ("b".into(), 1)]);
        assert_eq!(huge.spans[0].duration_us, u64::MAX);
    }

    #[test]
    fn the_course_shape_is_read_in_milliseconds() {
        let t = trace(course_chain());
        let us: Vec<u64> = t.spans.iter().map(|s| s.duration_us).collect();
        assert_eq!(us, vec![5_000_000, 4_900_000, 4_700_000]);
        let frac = trace(json!({"spans": [{"service": "a", "duration": 1.5}]}));
        assert_eq!(frac.spans[0].duration_us, 1_500);
        assert!(frac.spans[0].start_us.is_none());
    }

    #[test]
    fn the_course_case_gives_the_course_answer() {
        let i = insights(&traces(json!([course_chain()])));
        assert_eq!(i.bottlenecks, vec!["db"]);
        assert_eq!(i.critical_path, "web->api->db");
        assert_eq!(
            i.optimization_suggestion,
            "Add caching for database queries"
        );
    }

    #[test]
    fn shapes_are_decided_by_keys_one_per_request() {
        let full = json!({"spans": [{"span_id": "s", "service": "a", "duration_us": 1}]});
        let empty = json!({"trace_id": "e", "spans": []});
        assert_eq!(traces(json!([empty, course_chain(), empty])).len(), 3);
        assert_eq!(traces(json!([full, empty])).len(), 2);
        let e = span_traces(given(json!([course_chain(), empty, full]))).unwrap_err();
        assert_eq!(e.code.code(), 12);
        assert!(e.text.starts_with("field `traces[2]`"), "{}", e.text);
        assert!(e.text.contains("traces[0]"), "{}", e.text);
        let mixed = json!([{"spans": [
            {"service": "a", "duration": 1},
            {"span_id": "s", "service": "a", "duration_us": 1}
        ]}]);
        let e = span_traces(given(mixed)).unwrap_err();
        assert!(
            e.text.starts_with("field `traces[0].spans[1]`"),
            "{}",
            e.text
        );
        // A span with neither `span_id` nor `duration` is a full span
        // without its id.
        let e = span_traces(given(json!([{"spans": [{"service": "a"}]}]))).unwrap_err();
        assert_eq!(e.text, "field `traces[0].spans[0].span_id`: missing");
        let e = span_traces(given(
            json!([{"spans": [{"service": "a", "duration": -1}]}]),
        ))
        .unwrap_err();
        assert!(
            e.text.starts_with("field `traces[0].spans[0].duration`"),
            "{}",
            e.text
        );
        let e = span_traces(given(json!([{"spans": [{"duration": 1}]}]))).unwrap_err();
        assert_eq!(e.text, "field `traces[0].spans[0].service`: missing");
        let e = span_traces(given(json!([{"duration_ms": -3, "spans": []}]))).unwrap_err();
        assert!(
            e.text.starts_with("field `traces[0].duration_ms`"),
            "{}",
            e.text
        );
        let e = span_traces(given(json!([{"has_error": true}]))).unwrap_err();
        assert_eq!(e.text, "field `traces[0].spans`: missing");
    }

    #[test]
    fn the_bottleneck_rule() {
        // The largest always; others at >= 20 % of all and >= half the largest.
        assert_eq!(
            bottlenecks(&[("db", 4700), ("api", 200), ("web", 100)]),
            vec!["db"]
        );
        assert_eq!(
            bottlenecks(&[("a", 40), ("b", 30), ("c", 20), ("d", 10)]),
            vec!["a", "b", "c"]
        );
        // 20 of 100 is a fifth but less than half of 50.
        assert_eq!(
            bottlenecks(&[("a", 50), ("b", 30), ("c", 20)]),
            vec!["a", "b"]
        );
        // Spread thin: only the largest.
        let thin: Vec<(&str, u64)> = vec![
            ("a", 11),
            ("b", 10),
            ("c", 10),
            ("d", 10),
            ("e", 10),
            ("f", 10),
            ("g", 10),
            ("h", 10),
            ("i", 10),
        ];
        assert_eq!(bottlenecks(&thin), vec!["a"]);
        assert_eq!(bottlenecks(&[("a", 0), ("b", 0)]), Vec::<&str>::new());
        assert_eq!(bottlenecks(&[]), Vec::<&str>::new());
        assert_eq!(
            bottlenecks(&[("a", u64::MAX), ("b", u64::MAX)]),
            vec!["a", "b"]
        );
    }

    #[test]
    fn insights_name_the_bottlenecks_and_the_path() {
        let i = insights(&[shop()]);
        assert_eq!(i.bottlenecks, vec!["db"]);
        assert_eq!(i.critical_path, "web->api->db");
        assert_eq!(
            i.optimization_suggestion,
            "Add caching for database queries"
        );
        // A service repeated in a row is named once.
        let t = trace(json!({"spans": [
            {"span_id": "a", "service": "api", "duration_us": 10},
            {"span_id": "b", "parent_span_id": "a", "service": "api", "duration_us": 8},
            {"span_id": "c", "parent_span_id": "b", "service": "worker", "duration_us": 7},
            {"span_id": "d", "parent_span_id": "c", "service": "api", "duration_us": 1}
        ]}));
        let i = insights(&[t]);
        assert_eq!(i.critical_path, "api->worker->api");
        // worker 6 of 10; api 4, at least a fifth and half of worker's.
        assert_eq!(i.bottlenecks, vec!["worker", "api"]);
        assert_eq!(i.optimization_suggestion, SUGGESTION_RULES[4].suggestion);
        let empty = insights(&[]);
        assert!(empty.bottlenecks.is_empty() && empty.critical_path.is_empty());
        assert_eq!(empty.optimization_suggestion, NO_SPANS);
        let idle = insights(&traces(
            json!([{"spans": [{"service": "a", "duration": 0}]}]),
        ));
        assert!(idle.bottlenecks.is_empty());
        assert_eq!(idle.critical_path, "a");
        assert_eq!(idle.optimization_suggestion, NO_TIME);
    }

    #[test]
    fn the_profile_keeps_the_rich_answer() {
        let p = trace_profile(&[shop()]);
        assert_eq!(p.bottlenecks.len(), 4);
        assert_eq!(
            p.bottlenecks[0],
            ServiceTime {
                service: "db".into(),
                self_time_us: 50,
                share: "50.0%".into()
            }
        );
        // Ties by name: api and web both 20.
        assert_eq!(p.bottlenecks[1].service, "api");
        assert_eq!(p.bottlenecks[2].service, "web");
        assert_eq!(p.critical_path, vec!["web:GET /", "api", "db:SELECT"]);
        assert_eq!(p.trace_id.as_deref(), Some("t1"));
        let mut named_as_service = shop();
        named_as_service.spans[1].name = Some("api".into());
        assert_eq!(trace_profile(&[named_as_service]).critical_path[1], "api");
        let empty = trace_profile(&[]);
        assert!(empty.bottlenecks.is_empty() && empty.critical_path.is_empty());
        assert_eq!(empty.trace_id, None);
    }

    /// The suggestion for one span of `service` with these attributes and
    /// kind, as the only span analyzed.
    fn suggested(service: &str, kind: &str, attributes: Value) -> String {
        let t = trace(
            json!({"spans": [{"span_id": "s", "service": service, "duration_us": 5,
            "kind": kind, "attributes": attributes}]}),
        );
        insights(&[t]).optimization_suggestion
    }

    #[test]
    fn the_suggestion_table() {
        let [cache, db, queue, remote, cpu] = SUGGESTION_RULES.map(|r| r.suggestion);
        assert!(SUGGESTION_RULES[4].matches_everything());
        for (service, kind, attributes, want) in [
            ("db", "internal", json!({}), db),
            ("orders-db", "internal", json!({}), db),
            ("MongoDB", "internal", json!({}), db),
            ("postgresql", "internal", json!({}), db),
            ("users", "client", json!({"db.system": "postgresql"}), db),
            ("users", "internal", json!({"db.statement": "SELECT 1"}), db),
            ("redis", "internal", json!({}), cache),
            ("session-cache", "internal", json!({}), cache),
            ("users", "client", json!({"db.system": "redis"}), cache),
            ("memcached", "internal", json!({}), cache),
            ("kafka", "internal", json!({}), queue),
            ("order-queue", "internal", json!({}), queue),
            ("rabbitmq", "internal", json!({}), queue),
            ("users", "producer", json!({}), queue),
            (
                "users",
                "internal",
                json!({"messaging.system": "sqs"}),
                queue,
            ),
            ("api-gateway", "internal", json!({}), remote),
            ("users", "client", json!({}), remote),
            (
                "users",
                "internal",
                json!({"url.full": "https://x.example/"}),
                remote,
            ),
            (
                "users",
                "internal",
                json!({"peer.service": "stripe"}),
                remote,
            ),
            ("api", "server", json!({}), cpu),
            ("feedback", "internal", json!({}), cpu),
            ("web", "server", json!({"http.request.method": "GET"}), cpu),
        ] {
            assert_eq!(
                suggested(service, kind, attributes.clone()),
                want,
                "{service} {kind} {attributes}"
            );
        }
        // The bottleneck's self time decides between its spans' rows.
        let t = trace(json!({"spans": [
            {"span_id": "a", "service": "api", "duration_us": 100},
            {"span_id": "q", "parent_span_id": "a", "service": "api", "duration_us": 30,
             "kind": "client", "attributes": {"db.system": "mysql"}}
        ]}));
        assert_eq!(insights(&[t]).optimization_suggestion, cpu);
        assert_eq!(
            suggestion(&[0, 7, 7, 0, 6]),
            db,
            "ties go to the earlier row"
        );
        assert_eq!(suggestion(&[0; 5]), cpu);
    }

    #[test]
    fn words_are_parts_that_start_or_end_with_them() {
        assert!(has_word("orders-db", &["db"]));
        assert!(has_word("userDB", &["db"]));
        assert!(has_word("db_primary", &["db"]));
        assert!(!has_word("feedback", &["db"]));
        assert!(!has_word("", &["db"]));
        assert!(!has_word("anything", &[]));
    }

    #[test]
    fn durations_parse_as_a_number_and_a_unit() {
        assert_eq!(parse_duration_us("1h"), Ok(3_600_000_000));
        assert_eq!(parse_duration_us("15m"), Ok(900_000_000));
        assert_eq!(parse_duration_us("30s"), Ok(30_000_000));
        assert_eq!(parse_duration_us("250ms"), Ok(250_000));
        assert_eq!(parse_duration_us("2d"), Ok(172_800_000_000));
        assert_eq!(parse_duration_us("1.5h"), Ok(5_400_000_000));
        assert_eq!(parse_duration_us(" 10 m "), Ok(600_000_000));
        assert_eq!(parse_duration_us("0s"), Ok(0));
        for bad in [
            "",
            "h",
            "1",
            "today",
            "1H",
            "-1h",
            "1.h",
            ".5h",
            "1.2.3s",
            "1hh",
            "1 hour",
            "1e3s",
            "99999999999999999999d",
        ] {
            assert!(parse_duration_us(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration_us("today")
            .unwrap_err()
            .contains("\"today\""));
    }

    #[test]
    fn time_ranges_read_both_forms() {
        let r: TimeRange = serde_json::from_value(json!("15m")).unwrap();
        assert_eq!(r, TimeRange::Last(900_000_000));
        assert_eq!(r.bounds(1_000_000_000), (100_000_000, 1_000_000_000));
        assert_eq!(TimeRange::Last(5).bounds(3), (0, 3));
        let r: TimeRange = serde_json::from_value(json!({"start_us": 1, "end_us": 2})).unwrap();
        assert_eq!(
            r,
            TimeRange::Between {
                start_us: 1,
                end_us: 2
            }
        );
        assert_eq!(r.bounds(99), (1, 2));
        for bad in [
            json!(5),
            json!("x"),
            json!({"start_us": 2, "end_us": 1}),
            json!({"start_us": 2}),
        ] {
            assert!(
                serde_json::from_value::<TimeRange>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let now = TimeRange::Last(3_600_000_000).bounds_now();
        assert_eq!(now.1 - now.0, 3_600_000_000);
    }

    #[test]
    fn traces_without_timestamps_pass_any_time_range() {
        let chained = trace(course_chain());
        assert!(starts_within(&chained, (5, 6)));
        let timed = trace(json!({"spans": [
            {"span_id": "a", "service": "a", "duration_us": 1, "start_us": 10},
            {"span_id": "b", "service": "a", "duration_us": 1, "start_us": 7},
            {"span_id": "c", "service": "a", "duration_us": 1}
        ]}));
        assert_eq!(start_us(&timed), Some(7));
        assert!(starts_within(&timed, (7, 7)));
        assert!(!starts_within(&timed, (8, 100)));
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
        let extra = trace(json!({"spans": [
            {"span_id": "a2", "service": "api", "duration_us": 1, "status": "ERROR"},
            {"span_id": "a3", "service": "api", "duration_us": 1}
        ]}));
        t.spans.extend(extra.spans);
        let e = error_analysis(&[t]);
        assert_eq!(e.total_errors, 2);
        assert_eq!(e.error_rate_by_service["api"], "66.7%");
        assert_eq!(e.error_rate_by_service["web"], "0.0%");
    }

    fn flags(v: Value) -> ErrorAnalysis {
        match error_traces(given(v)).unwrap() {
            ErrorInput::Flags(f) => flag_error_analysis(&f),
            ErrorInput::Spans(_) => panic!("read as spans"),
        }
    }

    #[test]
    fn error_flags_rate_failed_traces_against_all_traces() {
        // The course's case.
        let e = flags(json!([
            {"trace_id": "t1", "has_error": true, "service": "payment-service"},
            {"trace_id": "t2", "has_error": false},
            {"trace_id": "t3", "has_error": true, "service": "payment-service"}
        ]));
        assert_eq!(e.total_errors, 2);
        assert_eq!(
            e.error_rate_by_service,
            BTreeMap::from([("payment-service".to_owned(), "66.7%".to_owned())])
        );
        let e = flags(json!([
            {"has_error": true, "service": "a"},
            {"has_error": false, "service": "b"},
            {"has_error": true},
            {"has_error": false, "service": "a"}
        ]));
        assert_eq!(e.total_errors, 2);
        assert_eq!(
            e.error_rate_by_service,
            BTreeMap::from([
                ("a".to_owned(), "25.0%".to_owned()),
                ("b".to_owned(), "0.0%".to_owned()),
                ("unknown".to_owned(), "25.0%".to_owned())
            ])
        );
        let e = flags(json!([{"has_error": false}]));
        assert_eq!((e.total_errors, e.error_rate_by_service.len()), (0, 0));
        // One shape per request.
        let Err(e) = error_traces(given(json!([
            {"has_error": true},
            {"spans": [{"span_id": "s", "service": "a", "duration_us": 1}]}
        ]))) else {
            panic!("mixed shapes accepted")
        };
        assert!(e.text.starts_with("field `traces[1]`"), "{}", e.text);
        let Err(e) = error_traces(given(json!([{"trace_id": "t"}]))) else {
            panic!("a trace of nothing accepted")
        };
        assert!(e.text.starts_with("field `traces[0].spans`"), "{}", e.text);
        assert!(matches!(error_traces(given(json!([]))), Ok(ErrorInput::Spans(t)) if t.is_empty()));
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
        let m = service_map(&traces(json!([course_chain()])));
        assert_eq!(
            m.edges,
            vec![edge("api", "db", 1, 0), edge("web", "api", 1, 0)]
        );
    }

    #[test]
    fn bad_status_and_kind_are_rejected_naming_the_value() {
        let e = serde_json::from_value::<Vec<TraceAny>>(json!([{"spans": [
            {"span_id": "x", "service": "a", "duration_us": 1, "status": "meh"}
        ]}]))
        .err()
        .unwrap();
        assert!(
            e.to_string()
                .contains("\"meh\" is not one of OK, ERROR, UNSET"),
            "{e}"
        );
        let e = serde_json::from_value::<Vec<TraceAny>>(json!([{"spans": [
            {"span_id": "x", "service": "a", "duration_us": 1, "kind": "sideways"}
        ]}]))
        .err()
        .unwrap();
        assert!(e.to_string().contains("\"sideways\" is not one of"), "{e}");
    }
}
