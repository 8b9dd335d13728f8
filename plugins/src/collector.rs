//! The collector role: other services report finished spans with `span`;
//! the node samples them consistently by trace id, stores them in its trace
//! store, and tells the client that sent a trace's root span when the trace
//! is complete (`trace_complete`). Spans of a trace already reported
//! complete update the stored trace.
//!
//! "Complete" is decided by the runtime's timers: a trace whose root is
//! in, whose spans name no missing parent, and which received no span for
//! [`QUIET`] is reported then, while the node waits for input; no further
//! traffic is needed.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tracer_core::{
    now_unix_nanos, KeyValue, Sampler, SpanContext, SpanData, SpanId, SpanKind, Status, TraceFlags,
    TraceId, TraceState,
};
use tracer_node::stores;
use tracer_node::{handler, sidecar, BoundedMap, Ctx, Error};

/// How long a trace must go without a new span before it is complete.
pub const QUIET: Duration = Duration::from_millis(100);
/// Traces followed until complete; past it the oldest is forgotten (its
/// spans stay stored; it gets no notice).
pub const MAX_PENDING: usize = 10_000;
/// Traces remembered as reported, to recognize late spans.
pub const MAX_REPORTED: usize = 100_000;
/// Span ids followed in one pending trace, at most (past it the trace's
/// further spans are stored but not followed: its notice may not come).
pub const MAX_FOLLOWED_PER_TRACE: usize = 10_000;
/// Bytes one followed id takes in a pending trace's sets, hash table slack
/// included: what the bookkeeping share of the memory budget is divided by.
pub const BYTES_PER_FOLLOWED_ID: usize = 48;

/// A trace being collected.
struct Pending {
    /// The trace id as the services spell it.
    name: String,
    /// Who sent the root span (else the first span): who gets the notice.
    notify: String,
    /// Span ids received.
    spans: HashSet<SpanId>,
    /// Parent ids referenced but not received.
    missing: HashSet<SpanId>,
    has_root: bool,
    /// When its last span came.
    last: Instant,
    /// A timer will look at it.
    armed: bool,
}

impl Pending {
    fn is_complete(&self) -> bool {
        self.has_root && self.missing.is_empty()
    }
}

/// The plugin's state, bounded: traces in progress and traces reported.
struct Collector {
    pending: BoundedMap<TraceId, Pending>,
    reported: BoundedMap<TraceId, ()>,
    /// Ids held in the pending traces' sets, over all of them.
    followed: usize,
    /// The most `followed` may be: the bookkeeping share of the memory
    /// budget, in ids (set at the first span).
    max_followed: usize,
    /// Pending traces forgotten to keep `followed` bounded.
    forgotten_for_size: u64,
    /// Spans not followed because their trace followed the most it may.
    not_followed: u64,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            pending: BoundedMap::new(MAX_PENDING),
            reported: BoundedMap::new(MAX_REPORTED),
            followed: 0,
            max_followed: usize::MAX,
            forgotten_for_size: 0,
            not_followed: 0,
        }
    }
}

/// What a timer found when it looked at a trace.
#[derive(Debug, PartialEq)]
enum Quiet {
    /// A span came since: look again after this long.
    NotYet(Duration),
    /// Quiet and complete: reported (taken out).
    Complete,
    /// Quiet but a parent is missing (or the trace is gone): the next span
    /// arms a timer again.
    Waiting,
}

impl Collector {
    /// Records a span of a trace not yet reported; whether a timer must
    /// be armed for its trace.
    fn note(&mut self, id: TraceId, name: &str, from: &str, span: &SpanData, now: Instant) -> bool {
        let held = |p: &Pending| p.spans.len() + p.missing.len();
        if !self.pending.contains_key(&id) {
            let fresh = Pending {
                name: name.to_owned(),
                notify: from.to_owned(),
                spans: HashSet::new(),
                missing: HashSet::new(),
                has_root: false,
                last: now,
                armed: false,
            };
            // The count cap let the oldest trace go: its ids leave the count.
            if let Some((_, gone)) = self.pending.insert(id, fresh) {
                self.followed -= held(&gone);
            }
        }
        let p = self.pending.get_mut(&id).expect("inserted above");
        let was = held(p);
        let sid = span.context.span_id();
        if p.spans.len() < MAX_FOLLOWED_PER_TRACE {
            p.spans.insert(sid);
            p.missing.remove(&sid);
            match span.parent_span_id {
                Some(parent) if !p.spans.contains(&parent) => {
                    p.missing.insert(parent);
                }
                Some(_) => {}
                None => {
                    p.has_root = true;
                    p.notify = from.to_owned();
                }
            }
        } else {
            self.not_followed += 1;
        }
        p.last = now;
        let arm = !std::mem::replace(&mut p.armed, true);
        self.followed = self.followed + held(p) - was;
        while self.followed > self.max_followed {
            let Some((old, gone)) = self.pending.pop_oldest() else {
                break;
            };
            self.followed -= held(&gone);
            self.forgotten_for_size += 1;
            if old == id {
                break; // the trace being noted was the oldest: it goes too
            }
        }
        arm
    }

    /// A timer's look at a trace at `now`.
    fn look(&mut self, id: TraceId, now: Instant) -> Quiet {
        let Some(p) = self.pending.get_mut(&id) else {
            return Quiet::Waiting;
        };
        let quiet_for = now.saturating_duration_since(p.last);
        if quiet_for < QUIET {
            return Quiet::NotYet(QUIET - quiet_for);
        }
        p.armed = false;
        if !p.is_complete() {
            return Quiet::Waiting;
        }
        self.reported.insert(id, ());
        Quiet::Complete
    }
}

impl Collector {
    /// Evictions so far: traces dropped from following (for the count cap
    /// or the size cap), reported traces forgotten.
    fn evictions(&self) -> (u64, u64, u64) {
        (
            self.pending.evicted() + self.forgotten_for_size,
            self.reported.evicted(),
            self.not_followed,
        )
    }
}

/// Counts in `stats` what the collector let go since `before`.
fn count_evictions(ctx: &mut Ctx<'_>, before: (u64, u64, u64)) {
    let after = ctx.state::<Collector>().evictions();
    let places = [
        ("collector.traces_forgotten", after.0 - before.0),
        ("collector.reported_forgotten", after.1 - before.1),
        ("collector.spans_not_followed", after.2 - before.2),
    ];
    for (what, n) in places {
        if n > 0 {
            ctx.count_drop(what, n);
        }
    }
}

/// Sends `trace_complete` for the trace if it is quiet and complete;
/// looks again later if a span came meanwhile.
fn look_at(ctx: &mut Ctx<'_>, id: TraceId) {
    let before = ctx.state::<Collector>().evictions();
    let quiet = ctx.state::<Collector>().look(id, Instant::now());
    count_evictions(ctx, before);
    match quiet {
        Quiet::NotYet(left) => arm(ctx, id, left),
        Quiet::Waiting => {}
        Quiet::Complete => {
            let state = ctx.state::<Collector>();
            let gone = state.pending.remove(&id);
            if let Some(p) = &gone {
                state.followed -= p.spans.len() + p.missing.len();
            }
            if let Some(p) = gone {
                let notice = TraceComplete {
                    trace_id: p.name,
                    span_count: p.spans.len(),
                };
                ctx.send(&p.notify, &notice);
            }
        }
    }
}

/// Asks the runtime to look at the trace after `delay`. When the timers
/// are full (counted in `stats`), the trace's next span tries again.
fn arm(ctx: &mut Ctx<'_>, id: TraceId, delay: Duration) {
    if ctx.after(delay, move |ctx| look_at(ctx, id)).is_err() {
        if let Some(p) = ctx.state::<Collector>().pending.get_mut(&id) {
            p.armed = false;
        }
    }
}

/// `span {trace_id, span_id, parent_span_id?, service, name?, kind?,
/// start_us?, duration_us?, status?, error?, sampling_rate?}`. Without
/// `status`, an `error` text makes the status ERROR.
#[derive(Deserialize)]
pub struct SpanIntake {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    service: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    start_us: Option<u64>,
    #[serde(default)]
    duration_us: Option<u64>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    sampling_rate: Option<Box<RawValue>>,
}

/// `span_accepted {sampled, reason?, action?}`: the course's shape.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_accepted")]
pub struct SpanAccepted {
    sampled: bool,
    /// Why a span was not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// `"update_trace"` for a span of a trace already reported complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
}

/// `trace_complete {trace_id, span_count}`: the notice.
#[derive(Serialize)]
#[serde(tag = "type", rename = "trace_complete")]
pub struct TraceComplete {
    trace_id: String,
    span_count: usize,
}

fn non_empty(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::bad_field(field, "must not be empty"));
    }
    Ok(())
}

/// The sampling rate: the body's, else the envelope's, else 1; both read
/// by the sidecar's one parser.
fn sampling_rate(ctx: &Ctx<'_>, body: Option<&RawValue>) -> Result<f64, Error> {
    let rate = match body {
        Some(raw) => sidecar::sampling_rate(Some(raw))?,
        None => ctx.sampling_rate()?,
    };
    Ok(rate.unwrap_or(1.0))
}

/// A rate as the course writes it: a whole percent (`"1%"`), or with the
/// decimals it needs (`"0.5%"`, `"33.3333%"`).
fn percent(rate: f64) -> String {
    let text = format!("{:.4}", rate * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The span as stored: `start_us` defaults to its arrival minus its
/// duration (a span is reported when it ends), `name` to the service.
fn span_data(req: &SpanIntake, trace: TraceId, now: u64) -> Result<SpanData, Error> {
    let kind = match &req.kind {
        None => SpanKind::Internal,
        Some(k) => SpanKind::parse(k).ok_or_else(|| {
            Error::bad_field(
                "kind",
                format!("{k:?} is not one of INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER"),
            )
        })?,
    };
    let error = || Status::Error(Cow::Owned(req.error.clone().unwrap_or_default()));
    let status = match req
        .status
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None if req.error.is_some() => error(),
        None | Some("UNSET") => Status::Unset,
        Some("OK") => Status::Ok,
        Some("ERROR") => error(),
        Some(_) => {
            return Err(Error::bad_field(
                "status",
                format!(
                    "{:?} is not one of OK, ERROR, UNSET",
                    req.status.as_deref().unwrap_or_default()
                ),
            ))
        }
    };
    // Times are kept in nanoseconds since the epoch, as u64: what does not
    // fit is refused, never clamped.
    let nanos = |field: &str, us: u64| {
        us.checked_mul(1_000).ok_or_else(|| {
            Error::bad_field(
                field,
                format!("{us} µs is out of range (at most {} µs)", u64::MAX / 1_000),
            )
        })
    };
    let duration = nanos("duration_us", req.duration_us.unwrap_or(0))?;
    let start = match req.start_us {
        Some(us) => nanos("start_us", us)?,
        None => now.saturating_sub(duration),
    };
    let end = start.checked_add(duration).ok_or_else(|| {
        Error::bad_field(
            "duration_us",
            "start_us + duration_us is out of range (the span would end after the year 2554)",
        )
    })?;
    Ok(SpanData {
        context: SpanContext::new(
            trace,
            stores::span_id_for(&req.span_id),
            TraceFlags::SAMPLED,
            true,
            TraceState::EMPTY,
        ),
        parent_span_id: req.parent_span_id.as_deref().map(stores::span_id_for),
        name: Cow::Owned(req.name.clone().unwrap_or_else(|| req.service.clone())),
        kind,
        start_unix_nanos: start,
        end_unix_nanos: end,
        attributes: vec![KeyValue::new("service.name", req.service.clone())],
        events: vec![],
        links: vec![],
        status,
    })
}

/// Takes in a span from another service. Sampling keeps or drops whole
/// traces: the decision is a ratio of the trace id's bits (an opaque id's
/// stable hash), the same on every node. A dropped span is answered even
/// without `msg_id` (the course's collector does so); a kept one only when
/// asked.
#[handler("span")]
pub fn span(ctx: &mut Ctx<'_>, req: SpanIntake) -> Result<SpanAccepted, Error> {
    non_empty("trace_id", &req.trace_id)?;
    non_empty("span_id", &req.span_id)?;
    non_empty("service", &req.service)?;
    if let Some(p) = &req.parent_span_id {
        non_empty("parent_span_id", p)?;
    }
    let trace = stores::trace_id_for(&req.trace_id);
    if !trace.is_valid() {
        return Err(Error::bad_field(
            "trace_id",
            "the all-zero trace id is invalid",
        ));
    }
    let rate = sampling_rate(ctx, req.sampling_rate.as_deref())?;
    let data = span_data(&req, trace, now_unix_nanos())?;
    if !Sampler::TraceIdRatio(rate).should_sample(None, trace) {
        let reply = SpanAccepted {
            sampled: false,
            reason: Some(format!("Trace not sampled ({} rate)", percent(rate))),
            action: None,
        };
        ctx.answer(&reply);
        return Ok(reply);
    }
    let from = ctx.src().unwrap_or("client").to_owned();
    let mut reply = SpanAccepted {
        sampled: true,
        reason: None,
        action: None,
    };
    let sid = data.context.span_id();
    let parent = data.parent_span_id;
    let max_followed = (ctx.config().bookkeeping_bytes() / BYTES_PER_FOLLOWED_ID).max(1024);
    let state = ctx.state::<Collector>();
    state.max_followed = max_followed;
    let before = state.evictions();
    let arm_timer = if state.reported.contains_key(&trace) {
        reply.action = Some("update_trace");
        false
    } else {
        state.note(trace, &req.trace_id, &from, &data, Instant::now())
    };
    count_evictions(ctx, before);
    if arm_timer {
        arm(ctx, trace, QUIET);
    }
    let exported = ctx.exports_spans().then(|| data.clone());
    let mut store = ctx.traces();
    let refused_for_bytes = store.stats().spans_refused_for_bytes;
    if store.upsert(data) {
        store.name_trace(trace, &req.trace_id);
        store.name_span(trace, sid, &req.span_id);
        if let (Some(pid), Some(name)) = (parent, &req.parent_span_id) {
            store.name_span(trace, pid, name);
        }
        drop(store);
        if let Some(span) = exported {
            ctx.export_span(span);
        }
    } else {
        reply.sampled = false;
        reply.reason = Some(
            if store.stats().spans_refused_for_bytes > refused_for_bytes {
                format!(
                "no room in the trace store's share of the memory budget ({} bytes, TRACER_MAX_MEMORY)",
                store.limits().max_bytes
            )
            } else {
                format!(
                    "trace is full ({} spans kept per trace)",
                    store.limits().max_spans_per_trace
                )
            },
        );
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spans and missing parents the pending traces hold, counted
    /// anew (what `followed` keeps a running count of).
    fn recount(c: &Collector) -> usize {
        c.pending
            .iter()
            .map(|(_, p)| p.spans.len() + p.missing.len())
            .sum()
    }

    fn data(span: u64, parent: Option<u64>) -> SpanData {
        SpanData {
            context: SpanContext::new(
                TraceId::from_u128(1),
                SpanId::from_u64(span),
                TraceFlags::SAMPLED,
                true,
                TraceState::EMPTY,
            ),
            parent_span_id: parent.map(SpanId::from_u64),
            name: "s".into(),
            kind: SpanKind::Internal,
            start_unix_nanos: 0,
            end_unix_nanos: 0,
            attributes: vec![],
            events: vec![],
            links: vec![],
            status: Status::Unset,
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn complete_needs_root_no_missing_parent_and_quiet() {
        let t0 = Instant::now();
        let mut c = Collector::default();
        let t = TraceId::from_u128(1);
        assert!(c.note(t, "t", "a", &data(2, Some(1)), t0), "arm a timer");
        assert_eq!(c.look(t, t0 + 500 * MS), Quiet::Waiting, "parent 1 missing");
        assert!(c.note(t, "t", "b", &data(1, None), t0 + 1_000 * MS));
        assert!(
            !c.note(t, "t", "b", &data(3, Some(1)), t0 + 1_010 * MS),
            "armed"
        );
        assert_eq!(c.look(t, t0 + 1_050 * MS), Quiet::NotYet(60 * MS));
        assert_eq!(c.look(t, t0 + 1_110 * MS), Quiet::Complete);
        let p = c.pending.remove(&t).unwrap();
        assert_eq!(p.notify, "b", "the root's sender is told");
        assert_eq!(p.spans.len(), 3);
        assert!(c.reported.contains_key(&t));
    }

    #[test]
    fn rates_are_written_as_the_course_writes_them() {
        assert_eq!(percent(0.01), "1%");
        assert_eq!(percent(0.5), "50%");
        assert_eq!(percent(0.005), "0.5%");
        assert_eq!(percent(1.0 / 3.0), "33.3333%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn followed_ids_are_bounded_per_trace_and_in_all() {
        let t0 = Instant::now();
        let mut c = Collector {
            max_followed: 1 << 20,
            ..Collector::default()
        };
        let t = TraceId::from_u128(7);
        for i in 0..(MAX_FOLLOWED_PER_TRACE as u64 + 10) {
            c.note(t, "t", "a", &data(i + 2, Some(1)), t0);
        }
        let p = c.pending.get(&t).unwrap();
        assert_eq!(p.spans.len(), MAX_FOLLOWED_PER_TRACE);
        assert_eq!(c.not_followed, 10);
        assert_eq!(
            c.followed,
            MAX_FOLLOWED_PER_TRACE + 1,
            "spans and the missing parent"
        );
        // Many big pending traces: the oldest are forgotten past the cap.
        for k in 0..200u128 {
            for i in 0..9_000u64 {
                c.note(
                    TraceId::from_u128(100 + k),
                    "t",
                    "a",
                    &data(i + 2, Some(1)),
                    t0,
                );
            }
            assert!(c.followed <= c.max_followed);
        }
        assert!(c.forgotten_for_size > 0);
        assert_eq!(c.followed, recount(&c), "the running count is exact");
    }

    #[test]
    fn pending_traces_are_bounded() {
        let t0 = Instant::now();
        let mut c = Collector::default();
        for i in 0..(MAX_PENDING as u128 + 5) {
            c.note(TraceId::from_u128(i + 1), "t", "a", &data(2, Some(1)), t0);
        }
        assert_eq!(c.pending.len(), MAX_PENDING);
        assert_eq!(c.pending.evicted(), 5);
        assert_eq!(c.followed, recount(&c), "evicted traces leave the count");
        assert!(!c.pending.contains_key(&TraceId::from_u128(1)));
    }
}
