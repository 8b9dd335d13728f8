//! Reading stored traces back: `get_trace`, `get_span`.

use serde::{Deserialize, Serialize};
use tracer_core::{serialize_attributes, KeyValue, SpanData};
use tracer_node::stores;
use tracer_node::stores::{StoredTrace, TraceStore};
use tracer_node::{handler, Ctx, Error};

/// `get_trace {trace_id}`.
#[derive(Deserialize)]
pub struct GetTrace {
    trace_id: String,
}

/// An event of a span.
#[derive(Serialize)]
pub struct EventOut {
    name: String,
    time_us: u64,
    #[serde(serialize_with = "serialize_attributes")]
    attributes: Vec<KeyValue>,
}

/// A link of a span.
#[derive(Serialize)]
pub struct LinkOut {
    trace_id: String,
    span_id: String,
}

/// One span of a trace.
#[derive(Serialize)]
pub struct SpanOut {
    span_id: String,
    parent_span_id: Option<String>,
    name: String,
    service: Option<String>,
    kind: &'static str,
    start_us: u64,
    duration_us: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_message: Option<String>,
    #[serde(serialize_with = "serialize_attributes")]
    attributes: Vec<KeyValue>,
    events: Vec<EventOut>,
    links: Vec<LinkOut>,
}

impl SpanOut {
    /// A span of `trace`, its ids spelled as clients gave them (a link to a
    /// trace or span not stored, or never named, is spelled in hex).
    fn new(s: &SpanData, trace: &StoredTrace, store: &TraceStore) -> Self {
        SpanOut {
            span_id: trace.spell_span(s.context.span_id()),
            parent_span_id: s.parent_span_id.map(|p| trace.spell_span(p)),
            name: s.name.to_string(),
            service: s
                .attribute("service.name")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            kind: s.kind.as_str(),
            start_us: s.start_unix_nanos / 1_000,
            duration_us: s.duration_nanos() / 1_000,
            status: s.status.as_str(),
            status_message: match &s.status {
                tracer_core::Status::Error(m) => Some(m.to_string()),
                _ => None,
            },
            attributes: s.attributes.clone(),
            events: s
                .events
                .iter()
                .map(|e| EventOut {
                    name: e.name.to_string(),
                    time_us: e.time_unix_nanos / 1_000,
                    attributes: e.attributes.clone(),
                })
                .collect(),
            links: s
                .links
                .iter()
                .map(|l| {
                    let (tid, sid) = (l.context.trace_id(), l.context.span_id());
                    let linked = store.get(tid);
                    LinkOut {
                        trace_id: linked
                            .and_then(StoredTrace::name)
                            .map_or_else(|| tid.to_hex(), str::to_owned),
                        span_id: linked.map_or_else(|| sid.to_hex(), |t| t.spell_span(sid)),
                    }
                })
                .collect(),
        }
    }
}

/// `trace {trace_id, duration_us, spans}`, spans in tree order.
#[derive(Serialize)]
#[serde(tag = "type", rename = "trace")]
pub struct Trace {
    trace_id: String,
    duration_us: u64,
    spans: Vec<SpanOut>,
}

/// A stored trace, by either spelling of its id (or exactly the opaque
/// string a client named it with); unknown ids are error 20.
#[handler("get_trace")]
pub fn get_trace(ctx: &mut Ctx<'_>, req: GetTrace) -> Result<Trace, Error> {
    let store = ctx.traces();
    let (_, trace) = store.find(&req.trace_id).ok_or_else(|| {
        Error::key_does_not_exist(format!("trace {:?} is not stored", req.trace_id))
    })?;
    Ok(Trace {
        trace_id: req.trace_id.clone(),
        duration_us: trace.duration_nanos() / 1_000,
        spans: trace
            .tree_order()
            .into_iter()
            .map(|s| SpanOut::new(s, trace, &store))
            .collect(),
    })
}

/// `get_span {span_id}`.
#[derive(Deserialize)]
pub struct GetSpan {
    span_id: String,
}

/// `span {trace_id, <the fields of one span of trace>}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "span")]
pub struct SpanReply {
    trace_id: String,
    #[serde(flatten)]
    span: SpanOut,
}

/// A stored (ended) span by id, with its trace's id as clients spell it;
/// unknown ids are error 20. A span id reused across traces finds the
/// latest.
#[handler("get_span")]
pub fn get_span(ctx: &mut Ctx<'_>, req: GetSpan) -> Result<SpanReply, Error> {
    let store = ctx.traces();
    let (trace_id, trace, span) = store
        .find_span(stores::span_id_for(&req.span_id))
        .ok_or_else(|| {
            Error::key_does_not_exist(format!("span {:?} is not stored", req.span_id))
        })?;
    Ok(SpanReply {
        trace_id: store.spell(trace_id),
        span: SpanOut::new(span, trace, &store),
    })
}
