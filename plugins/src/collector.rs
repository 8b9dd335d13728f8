//! The collector role: other services report finished spans with `span`;
//! the node samples them consistently by trace id, stores them in its trace
//! store, and tells the client that sent a trace's root span when the trace
//! is complete (`trace_complete`). Spans of a trace already reported
//! complete update the stored trace.
//!
//! The node has no timer, so "complete" is judged lazily: on every `span`
//! message, each trace whose root is in, whose spans reference no missing
//! parent, and which received no span for [`QUIET_MS`] is reported.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use tracer_core::{
    now_unix_nanos, KeyValue, Sampler, SpanContext, SpanData, SpanId, SpanKind, Status, TraceFlags,
    TraceId, TraceState, TraceStore,
};
use tracer_node::{handler, Ctx, Error};

/// How long a trace must go without a new span before it is complete.
pub const QUIET_MS: u64 = 100;
/// Traces followed until complete; past it the oldest is forgotten (its
/// spans stay stored; it gets no notice).
pub const MAX_PENDING: usize = 10_000;
/// Traces remembered as reported, to recognize late spans.
pub const MAX_REPORTED: usize = 100_000;

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
    last_nanos: u64,
}

impl Pending {
    fn is_complete(&self) -> bool {
        self.has_root && self.missing.is_empty()
    }
}

/// The plugin's state, bounded: traces in progress and traces reported.
#[derive(Default)]
struct Collector {
    pending: HashMap<TraceId, Pending>,
    /// (trace, arrival) in arrival order; an entry whose trace received a
    /// later span is stale and skipped.
    arrivals: VecDeque<(TraceId, u64)>,
    reported: HashSet<TraceId>,
    reported_order: VecDeque<TraceId>,
    forgotten: u64,
}

impl Collector {
    fn mark_reported(&mut self, id: TraceId) {
        if self.reported.insert(id) {
            self.reported_order.push_back(id);
        }
        while self.reported_order.len() > MAX_REPORTED {
            if let Some(old) = self.reported_order.pop_front() {
                self.reported.remove(&old);
            }
        }
    }

    /// Records a span of a trace not yet reported.
    fn note(&mut self, id: TraceId, name: &str, from: &str, span: &SpanData, now: u64) {
        if !self.pending.contains_key(&id) && self.pending.len() >= MAX_PENDING {
            self.forget_oldest();
        }
        let p = self.pending.entry(id).or_insert_with(|| Pending {
            name: name.to_owned(),
            notify: from.to_owned(),
            spans: HashSet::new(),
            missing: HashSet::new(),
            has_root: false,
            last_nanos: now,
        });
        let sid = span.context.span_id();
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
        p.last_nanos = now;
        self.arrivals.push_back((id, now));
        if self.arrivals.len() > 2 * MAX_PENDING {
            let pending = &self.pending;
            self.arrivals
                .retain(|(id, at)| pending.get(id).is_some_and(|p| p.last_nanos == *at));
        }
    }

    fn forget_oldest(&mut self) {
        while let Some((id, at)) = self.arrivals.pop_front() {
            if self.pending.get(&id).is_some_and(|p| p.last_nanos == at) {
                self.pending.remove(&id);
                self.forgotten += 1;
                return;
            }
        }
    }

    /// Traces quiet since `now - QUIET_MS` and complete, taken out as
    /// reported. A quiet incomplete trace waits for its next span.
    fn take_complete(&mut self, now: u64) -> Vec<(TraceId, Pending)> {
        let cutoff = now.saturating_sub(QUIET_MS * 1_000_000);
        let mut done = Vec::new();
        while let Some(&(id, at)) = self.arrivals.front() {
            if at > cutoff {
                break;
            }
            self.arrivals.pop_front();
            let current = self.pending.get(&id).is_some_and(|p| p.last_nanos == at);
            if current && self.pending[&id].is_complete() {
                let p = self.pending.remove(&id).expect("just checked");
                self.mark_reported(id);
                done.push((id, p));
            }
        }
        done
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
    sampling_rate: Option<f64>,
}

/// `span_accepted {trace_id, span_id, sampled, reason?, action?}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_accepted")]
pub struct SpanAccepted {
    trace_id: String,
    span_id: String,
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

/// The sampling rate: the body's, else the envelope's, else 1.
fn sampling_rate(ctx: &Ctx<'_>, body: Option<f64>) -> Result<f64, Error> {
    let rate = match body {
        Some(r) => r,
        None => match ctx.envelope("sampling_rate") {
            Some(raw) => serde_json::from_str::<f64>(raw.get())
                .map_err(|_| Error::bad_field("sampling_rate", "must be a number"))?,
            None => 1.0,
        },
    };
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::bad_field("sampling_rate", "must be between 0 and 1"));
    }
    Ok(rate)
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
    let duration = req.duration_us.unwrap_or(0).saturating_mul(1_000);
    let start = match req.start_us {
        Some(us) => us.saturating_mul(1_000),
        None => now.saturating_sub(duration),
    };
    Ok(SpanData {
        context: SpanContext::new(
            trace,
            TraceStore::span_id_for(&req.span_id),
            TraceFlags::SAMPLED,
            true,
            TraceState::EMPTY,
        ),
        parent_span_id: req.parent_span_id.as_deref().map(TraceStore::span_id_for),
        name: Cow::Owned(req.name.clone().unwrap_or_else(|| req.service.clone())),
        kind,
        start_unix_nanos: start,
        end_unix_nanos: start.saturating_add(duration),
        attributes: vec![KeyValue::new("service.name", req.service.clone())],
        events: vec![],
        links: vec![],
        status,
    })
}

/// Takes in a span from another service. Sampling keeps or drops whole
/// traces: the decision is a ratio of the trace id's bits (an opaque id's
/// stable hash), the same on every node.
#[handler("span")]
pub fn span(ctx: &mut Ctx<'_>, req: SpanIntake) -> Result<SpanAccepted, Error> {
    non_empty("trace_id", &req.trace_id)?;
    non_empty("span_id", &req.span_id)?;
    non_empty("service", &req.service)?;
    if let Some(p) = &req.parent_span_id {
        non_empty("parent_span_id", p)?;
    }
    let trace = TraceStore::trace_id_for(&req.trace_id);
    if !trace.is_valid() {
        return Err(Error::bad_field(
            "trace_id",
            "the all-zero trace id is invalid",
        ));
    }
    let rate = sampling_rate(ctx, req.sampling_rate)?;
    let now = now_unix_nanos();
    let data = span_data(&req, trace, now)?;
    let from = ctx.src().unwrap_or("client").to_owned();

    let mut reply = SpanAccepted {
        trace_id: req.trace_id.clone(),
        span_id: req.span_id.clone(),
        sampled: true,
        reason: None,
        action: None,
    };
    if !Sampler::TraceIdRatio(rate).should_sample(None, trace) {
        reply.sampled = false;
        reply.reason = Some(format!(
            "trace not sampled at rate {rate} (the decision follows the trace id)"
        ));
    } else {
        let sid = data.context.span_id();
        let parent = data.parent_span_id;
        let state = ctx.state::<Collector>();
        if state.reported.contains(&trace) {
            reply.action = Some("update_trace");
        } else {
            state.note(trace, &req.trace_id, &from, &data, now);
        }
        let exported = ctx.exports_spans().then(|| data.clone());
        let mut store = ctx.traces();
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
            reply.reason = Some(format!(
                "trace is full ({} spans kept per trace)",
                store.limits().max_spans_per_trace
            ));
        }
    }
    report_complete(ctx, now);
    Ok(reply)
}

/// Sends `trace_complete` for every trace that is complete and quiet.
fn report_complete(ctx: &mut Ctx<'_>, now: u64) {
    for (_, p) in ctx.state::<Collector>().take_complete(now) {
        let notice = TraceComplete {
            trace_id: p.name,
            span_count: p.spans.len(),
        };
        ctx.send(&p.notify, &notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    const MS: u64 = 1_000_000;

    #[test]
    fn complete_needs_root_no_missing_parent_and_quiet() {
        let mut c = Collector::default();
        let t = TraceId::from_u128(1);
        c.note(t, "t", "a", &data(2, Some(1)), 0);
        assert!(c.take_complete(500 * MS).is_empty(), "parent 1 missing");
        c.note(t, "t", "b", &data(1, None), 1_000 * MS);
        assert!(c.take_complete(1_050 * MS).is_empty(), "not quiet yet");
        let done = c.take_complete(1_100 * MS);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1.notify, "b", "the root's sender is told");
        assert_eq!(done[0].1.spans.len(), 2);
        assert!(c.reported.contains(&t));
        assert!(c.take_complete(5_000 * MS).is_empty(), "reported once");
    }

    #[test]
    fn a_new_span_restarts_the_quiet_period() {
        let mut c = Collector::default();
        let t = TraceId::from_u128(1);
        c.note(t, "t", "a", &data(1, None), 0);
        c.note(t, "t", "a", &data(2, Some(1)), 90 * MS);
        assert!(c.take_complete(150 * MS).is_empty());
        assert_eq!(c.take_complete(190 * MS).len(), 1);
    }

    #[test]
    fn pending_traces_are_bounded() {
        let mut c = Collector::default();
        for i in 0..(MAX_PENDING as u128 + 5) {
            c.note(
                TraceId::from_u128(i + 1),
                "t",
                "a",
                &data(2, Some(1)),
                i as u64,
            );
        }
        assert_eq!(c.pending.len(), MAX_PENDING);
        assert_eq!(c.forgotten, 5);
        assert!(!c.pending.contains_key(&TraceId::from_u128(1)));
    }
}
