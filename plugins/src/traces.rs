//! Reading stored traces back: `get_trace`.

use serde::{Deserialize, Serialize};
use tracer_core::{serialize_attributes, KeyValue, SpanData, TraceId};
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

impl From<&SpanData> for SpanOut {
    fn from(s: &SpanData) -> Self {
        SpanOut {
            span_id: s.context.span_id().to_hex(),
            parent_span_id: s.parent_span_id.map(|p| p.to_hex()),
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
                .map(|l| LinkOut {
                    trace_id: l.context.trace_id().to_hex(),
                    span_id: l.context.span_id().to_hex(),
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

/// A stored trace, by either spelling of its id; unknown ids are error 20.
#[handler("get_trace")]
pub fn get_trace(ctx: &mut Ctx<'_>, req: GetTrace) -> Result<Trace, Error> {
    let not_found = || Error::key_does_not_exist(format!("trace {:?} is not stored", req.trace_id));
    let id = TraceId::parse(&req.trace_id).ok_or_else(not_found)?;
    let store = ctx.traces();
    let trace = store.get(id).ok_or_else(not_found)?;
    Ok(Trace {
        trace_id: req.trace_id.clone(),
        duration_us: trace.duration_nanos() / 1_000,
        spans: trace.tree_order().into_iter().map(SpanOut::from).collect(),
    })
}
