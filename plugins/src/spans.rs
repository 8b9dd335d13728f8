//! Remote-driven spans, for clients that are not Rust: `create_span`,
//! `span_event`, `span_link`, `span_end` and `span_error` drive a span of the
//! node's tracer from the wire; ended spans go to the trace store like any
//! other. Also `parse_traceparent`, for clients without a W3C parser.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use tracer_core::propagation::Traceparent;
use tracer_core::{
    now_unix_nanos, KeyValue, Span, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId,
    TraceState, Value,
};
use tracer_node::stores;
use tracer_node::{handler, BoundedMap, Ctx, Error};

/// Spans open at once; past it the oldest open span is ended by the node.
pub const MAX_OPEN: usize = 10_000;
/// Ended span ids remembered, to answer "already ended" (22) rather than
/// "unknown" (20).
pub const MAX_ENDED: usize = 100_000;
/// Attributes per request, events per span, links per span (OpenTelemetry's
/// default span limits).
pub const MAX_PER_SPAN: usize = 128;

/// A span a client opened and has not ended.
struct Open {
    span: Span,
    start_nanos: u64,
    /// Who gets notices about the span.
    creator: Option<String>,
    /// The trace id as the client gave it (`None`: the node made the trace).
    trace_name: Option<String>,
    /// The parent id as the client gave it, when it is not 16 hex digits.
    parent_name: Option<(SpanId, String)>,
    events: usize,
    links: usize,
}

/// The plugin's state: open spans and the ids of ended ones, both bounded
/// (oldest first).
struct Spans {
    open: BoundedMap<SpanId, Open>,
    /// Ended spans; `true` for those the node ended because too many were
    /// open.
    ended: BoundedMap<SpanId, bool>,
}

impl Default for Spans {
    fn default() -> Self {
        Spans {
            open: BoundedMap::new(MAX_OPEN),
            ended: BoundedMap::new(MAX_ENDED),
        }
    }
}

impl Spans {
    /// The oldest open span, taken out to be ended, when the cap is reached.
    fn evict_oldest(&mut self) -> Option<Open> {
        if self.open.len() < MAX_OPEN {
            return None;
        }
        let (id, open) = self.open.pop_oldest()?;
        self.ended.insert(id, true);
        Some(open)
    }

    fn add(&mut self, id: SpanId, open: Open) {
        self.open.insert(id, open);
    }

    /// The open span, or why there is none: 22 for an ended one, 20 for an
    /// unknown one.
    fn get_mut(&mut self, spelled: &str) -> Result<&mut Open, Error> {
        let id = stores::span_id_for(spelled);
        if self.open.contains_key(&id) {
            return Ok(self.open.get_mut(&id).expect("just checked"));
        }
        Err(self.not_open(id, spelled))
    }

    /// Takes an open span out to end it, remembering that it ended.
    fn take(&mut self, spelled: &str) -> Result<(SpanId, Open), Error> {
        let id = stores::span_id_for(spelled);
        match self.open.remove(&id) {
            Some(open) => {
                self.ended.insert(id, false);
                Ok((id, open))
            }
            None => Err(self.not_open(id, spelled)),
        }
    }

    fn not_open(&self, id: SpanId, spelled: &str) -> Error {
        match self.ended.get(&id) {
            Some(true) => Error::precondition_failed(format!(
                "span {spelled:?} was ended by the node: more than {MAX_OPEN} spans were open"
            )),
            Some(false) => {
                Error::precondition_failed(format!("span {spelled:?} has already ended"))
            }
            None => Error::key_does_not_exist(format!("span {spelled:?} is not open or known")),
        }
    }
}
/// An attribute value from JSON: strings, booleans, numbers, and arrays of
/// one of those (integers and floats mixed make floats), read by serde.
fn attribute_value(v: Json) -> Option<Value> {
    Value::deserialize(v).ok()
}

/// The `attributes` of a request as span attributes.
fn attributes(attrs: Option<Map<String, Json>>) -> Result<Vec<KeyValue>, Error> {
    let attrs = attrs.unwrap_or_default();
    if attrs.len() > MAX_PER_SPAN {
        return Err(Error::bad_field(
            "attributes",
            format!("at most {MAX_PER_SPAN} attributes"),
        ));
    }
    attrs
        .into_iter()
        .map(|(k, v)| match attribute_value(v) {
            Some(value) => Ok(KeyValue::new(k, value)),
            None => Err(Error::bad_field(
                &format!("attributes.{k}"),
                "must be a string, number, boolean, or an array of one of those",
            )),
        })
        .collect()
}

/// A required string field that must not be empty.
fn non_empty(field: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::bad_field(field, "must not be empty"));
    }
    Ok(())
}

/// A client's trace id: any non-empty string but the all-zero id.
fn client_trace_id(field: &str, spelled: &str) -> Result<TraceId, Error> {
    non_empty(field, spelled)?;
    let id = stores::trace_id_for(spelled);
    if !id.is_valid() {
        return Err(Error::bad_field(field, "the all-zero trace id is invalid"));
    }
    Ok(id)
}

fn remote(trace_id: TraceId, span_id: SpanId) -> SpanContext {
    SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::EMPTY,
    )
}

/// `create_span {name, kind?, trace_id?, parent_span_id?, attributes?}`.
#[derive(Deserialize)]
pub struct CreateSpan {
    name: String,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    parent_span_id: Option<String>,
    #[serde(default)]
    attributes: Option<Map<String, Json>>,
}

/// `span_created {span_id, kind}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_created")]
pub struct SpanCreated {
    span_id: String,
    kind: &'static str,
}

/// Opens a span. Its trace: the client's `trace_id`, else the trace of the
/// open or stored span `parent_span_id` names, else a new one.
#[handler("create_span")]
pub fn create_span(ctx: &mut Ctx<'_>, req: CreateSpan) -> Result<SpanCreated, Error> {
    non_empty("name", &req.name)?;
    let kind = match &req.kind {
        None => SpanKind::Internal,
        Some(k) => SpanKind::parse(k).ok_or_else(|| {
            Error::bad_field(
                "kind",
                format!("{k:?} is not one of INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER"),
            )
        })?,
    };
    let given_trace = match &req.trace_id {
        Some(t) => Some(client_trace_id("trace_id", t)?),
        None => None,
    };
    let parent = match &req.parent_span_id {
        Some(p) => {
            non_empty("parent_span_id", p)?;
            Some(stores::span_id_for(p))
        }
        None => None,
    };
    let attrs = attributes(req.attributes)?;

    // The parent's trace, when the parent is open here or stored.
    let parent_trace = match parent {
        Some(p) if given_trace.is_none() => {
            let open = ctx
                .state::<Spans>()
                .open
                .get(&p)
                .map(|o| (o.span.context().trace_id(), o.trace_name.clone()));
            open.or_else(|| {
                let store = ctx.traces();
                let (tid, trace, _) = store.find_span(p)?;
                Some((tid, trace.name().map(str::to_owned)))
            })
        }
        _ => None,
    };
    let (trace, trace_name) = match (given_trace, parent_trace) {
        (Some(t), _) => (Some(t), req.trace_id.clone()),
        (None, Some((t, name))) => (Some(t), name),
        (None, None) => (None, None),
    };

    let tracer = ctx.tracer().clone();
    let start_nanos = now_unix_nanos();
    let mut builder = tracer
        .span_builder(req.name)
        .kind(kind)
        .attributes(attrs)
        .start_time(start_nanos);
    builder = match (trace, parent) {
        (Some(t), Some(p)) => builder.parent(remote(t, p)),
        (Some(t), None) => builder.root_in(t),
        // An unknown parent outside any known trace: a new trace that
        // still records the parent the client named.
        (None, Some(p)) => builder.parent(SpanContext::new(
            TraceId::random(),
            p,
            // A trace id made here is random (W3C Level 2's random flag).
            TraceFlags::SAMPLED.with_random(true),
            true,
            TraceState::EMPTY,
        )),
        (None, None) => builder.root(),
    };
    let span = builder.start();
    let id = span.context().span_id();
    let parent_name = req
        .parent_span_id
        .zip(parent)
        .map(|(name, pid)| (pid, name));
    let open = Open {
        span,
        start_nanos,
        creator: ctx.src().map(str::to_owned),
        trace_name,
        parent_name,
        events: 0,
        links: 0,
    };
    let state = ctx.state::<Spans>();
    let evicted = state.evict_oldest();
    state.add(id, open);
    if let Some(old) = evicted {
        ctx.count_drop("spans.ended_by_node", 1);
        finish(ctx, old, now_unix_nanos());
    }
    Ok(SpanCreated {
        span_id: id.to_hex(),
        kind: kind.as_str(),
    })
}

/// `span_event {span_id, event, attributes?}`.
#[derive(Deserialize)]
pub struct SpanEvent {
    span_id: String,
    event: String,
    #[serde(default)]
    attributes: Option<Map<String, Json>>,
}

/// `span_event_ok`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_event_ok")]
pub struct SpanEventOk {}

/// Adds an event, timed now, to an open span.
#[handler("span_event")]
pub fn span_event(ctx: &mut Ctx<'_>, req: SpanEvent) -> Result<SpanEventOk, Error> {
    non_empty("event", &req.event)?;
    let attrs = attributes(req.attributes)?;
    let open = ctx.state::<Spans>().get_mut(&req.span_id)?;
    if open.events >= MAX_PER_SPAN {
        return Err(Error::precondition_failed(format!(
            "span {:?} already holds {MAX_PER_SPAN} events",
            req.span_id
        )));
    }
    open.events += 1;
    open.span.add_event(req.event, attrs);
    Ok(SpanEventOk {})
}

/// `span_link {span_id, trace_id, linked_span_id}`.
#[derive(Deserialize)]
pub struct SpanLink {
    span_id: String,
    trace_id: String,
    linked_span_id: String,
}

/// `span_link_ok`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_link_ok")]
pub struct SpanLinkOk {}

/// Links an open span to a span of any trace (known here or not).
#[handler("span_link")]
pub fn span_link(ctx: &mut Ctx<'_>, req: SpanLink) -> Result<SpanLinkOk, Error> {
    let trace = client_trace_id("trace_id", &req.trace_id)?;
    non_empty("linked_span_id", &req.linked_span_id)?;
    let linked = stores::span_id_for(&req.linked_span_id);
    let open = ctx.state::<Spans>().get_mut(&req.span_id)?;
    if open.links >= MAX_PER_SPAN {
        return Err(Error::precondition_failed(format!(
            "span {:?} already holds {MAX_PER_SPAN} links",
            req.span_id
        )));
    }
    open.links += 1;
    open.span.add_link(remote(trace, linked), vec![]);
    Ok(SpanLinkOk {})
}

/// `span_complete {span_id, duration_us, status, error?}`: the reply to
/// `span_end` and `span_error`, and the notice to the span's creator.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span_complete")]
pub struct SpanComplete {
    span_id: String,
    duration_us: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Ends a span (no store lock may be held: ending stores it) and records
/// what the client said about its ids. Returns the duration in nanoseconds.
fn finish(ctx: &mut Ctx<'_>, mut open: Open, end_nanos: u64) -> u64 {
    let end_nanos = end_nanos.max(open.start_nanos);
    let ctx_ids = open.span.context().clone();
    open.span.end_at(end_nanos);
    let mut store = ctx.traces();
    let trace = ctx_ids.trace_id();
    if let Some(name) = &open.trace_name {
        store.name_trace(trace, name);
    }
    if let Some((pid, name)) = &open.parent_name {
        store.name_span(trace, *pid, name);
    }
    end_nanos - open.start_nanos
}

/// Ends an open span after `apply` set its outcome; replies to the requester
/// and, when someone else created the span, tells the creator too.
fn end_span(
    ctx: &mut Ctx<'_>,
    spelled: &str,
    status: Status,
    apply: impl FnOnce(&mut Span),
) -> Result<SpanComplete, Error> {
    let (id, mut open) = ctx.state::<Spans>().take(spelled)?;
    apply(&mut open.span);
    let creator = open.creator.clone();
    let duration = finish(ctx, open, now_unix_nanos());
    let complete = SpanComplete {
        span_id: id.to_hex(),
        duration_us: duration / 1_000,
        status: status.as_str(),
        error: match status {
            Status::Error(m) => Some(m.into_owned()),
            _ => None,
        },
    };
    if let Some(c) = creator {
        if ctx.src() != Some(c.as_str()) {
            ctx.send(&c, &complete);
        }
    }
    Ok(complete)
}

/// `span_end {span_id, status?, description?}`.
#[derive(Deserialize)]
pub struct SpanEnd {
    span_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// Ends a span with status `OK`, `ERROR` (with `description` as its
/// message) or `UNSET` (the default), in any case.
#[handler("span_end", always_reply)]
pub fn span_end(ctx: &mut Ctx<'_>, req: SpanEnd) -> Result<SpanComplete, Error> {
    let status = match req
        .status
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("UNSET") => Status::Unset,
        Some("OK") => Status::Ok,
        Some("ERROR") => Status::Error(Cow::Owned(req.description.unwrap_or_default())),
        Some(_) => {
            return Err(Error::bad_field(
                "status",
                format!(
                    "{:?} is not one of OK, ERROR, UNSET",
                    req.status.unwrap_or_default()
                ),
            ))
        }
    };
    let set = status.clone();
    end_span(ctx, &req.span_id, status, |span| span.set_status(set))
}

/// `span_error {span_id, error}`.
#[derive(Deserialize)]
pub struct SpanError {
    span_id: String,
    error: String,
}

/// Records the error as an exception event, sets status ERROR, ends the span.
#[handler("span_error", always_reply)]
pub fn span_error(ctx: &mut Ctx<'_>, req: SpanError) -> Result<SpanComplete, Error> {
    let status = Status::Error(Cow::Owned(req.error.clone()));
    end_span(ctx, &req.span_id, status, |span| {
        span.record_exception("error", &req.error, None)
    })
}

/// `parse_traceparent {traceparent}`.
#[derive(Deserialize)]
pub struct ParseTraceparent {
    traceparent: String,
}

/// `parse_ok {trace_id, parent_span_id, sampled}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "parse_ok")]
pub struct ParseOk {
    trace_id: String,
    parent_span_id: String,
    sampled: bool,
}

/// Parses a W3C `traceparent`; error 12 says which part is wrong. The
/// body's `traceparent` is what to parse, not the message's context: the
/// handler opens no sidecar span (`own_span`), so parsing a header never
/// adds spans to the trace it names.
#[handler("parse_traceparent", own_span)]
pub fn parse_traceparent(_ctx: &mut Ctx<'_>, req: ParseTraceparent) -> Result<ParseOk, Error> {
    let tp = Traceparent::parse(&req.traceparent).map_err(|e| Error::malformed(e.to_string()))?;
    Ok(ParseOk {
        trace_id: tp.trace_id.to_hex(),
        parent_span_id: tp.parent_id.to_hex(),
        sampled: tp.flags.is_sampled(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn attribute_values_from_json() {
        let ok = |v: Json| attribute_value(v).unwrap();
        assert_eq!(ok(json!("x")), Value::from("x"));
        assert_eq!(ok(json!(3)), Value::I64(3));
        assert_eq!(ok(json!(1.5)), Value::F64(1.5));
        assert_eq!(ok(json!([1, 2])), Value::from(vec![1_i64, 2]));
        assert_eq!(ok(json!([1, 2.5])), Value::from(vec![1.0, 2.5]));
        assert_eq!(ok(json!([true])), Value::from(vec![true]));
        assert_eq!(
            ok(json!([])),
            Value::Array(tracer_core::Array::String(vec![]))
        );
        assert!(attribute_value(json!(null)).is_none());
        assert!(attribute_value(json!({"a": 1})).is_none());
        assert!(attribute_value(json!([1, "a"])).is_none());
    }

    #[test]
    fn bad_attributes_name_their_key() {
        let mut m = Map::new();
        m.insert("good".into(), json!(1));
        m.insert("bad".into(), json!({"nested": true}));
        let e = attributes(Some(m)).unwrap_err();
        assert!(e.text.contains("`attributes.bad`"), "{}", e.text);
    }
}
