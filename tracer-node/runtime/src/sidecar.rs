//! The sidecar: tracing injected at the network layer, without handler
//! code. Every incoming message's trace context is read here and handled
//! inside a SERVER span; every message a handler sends to a cluster peer
//! leaves inside a CLIENT span whose context is injected into its body.
//!
//! The rule that keeps user data apart: a message that carries trace
//! context joins the caller's trace (its spans are user data, stored with
//! that trace); a message without context gets a new root SERVER span that
//! is the node's own telemetry, as an Envoy sidecar's spans are: exported
//! when export is on, never stored ([`SpanContext::is_self_telemetry`]).

use crate::codec::Head;
use crate::error::Error;
use serde_json::value::RawValue;
use tracer_core::propagation::{self, ExtractError, Traceparent, TRACEPARENT, TRACESTATE};
use tracer_core::{Sampler, Span, SpanContext, SpanKind, Tracer};

/// Attribute names the sidecar writes (OpenTelemetry semantic conventions).
pub mod attr {
    /// The service a span belongs to.
    pub const SERVICE_NAME: &str = "service.name";
    /// The RPC system: `maelstrom`.
    pub const RPC_SYSTEM: &str = "rpc.system";
    /// The message type.
    pub const RPC_METHOD: &str = "rpc.method";
    /// Where a CLIENT span's message went.
    pub const DESTINATION: &str = "messaging.destination.name";
}

/// Headers as the wire gives them: an object of string values, or a list of
/// `[name, value]` string pairs whose names may repeat. Anything else is
/// `None`: malformed headers carry no context.
pub fn headers_from_json(raw: &RawValue) -> Option<Vec<(String, String)>> {
    use serde_json::Value;
    match serde_json::from_str::<Value>(raw.get()).ok()? {
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                _ => None,
            })
            .collect(),
        Value::Array(items) => items
            .into_iter()
            .map(|pair| match pair {
                Value::Array(mut kv) if kv.len() == 2 => match (kv.pop(), kv.pop()) {
                    (Some(Value::String(v)), Some(Value::String(k))) => Some((k, v)),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn string(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok())
}

/// The trace context a message carries: `body.traceparent`/`tracestate`,
/// else the same names inside `body.headers`. `Err` says why there is none
/// (missing, duplicated, invalid): the message then starts a new trace.
pub(crate) fn incoming_context(head: &Head<'_>) -> Result<SpanContext, ExtractError> {
    if let Some(tp) = string(head.traceparent) {
        let mut carrier = vec![(TRACEPARENT.to_owned(), tp)];
        if let Some(ts) = string(head.tracestate) {
            carrier.push((TRACESTATE.to_owned(), ts));
        }
        return propagation::extract(&carrier);
    }
    match head.headers.and_then(headers_from_json) {
        Some(headers) => propagation::extract(&headers),
        None => Err(ExtractError::Missing),
    }
}

/// The envelope's `sampling_rate` (the course sends it beside `body`): a
/// number from 0 to 1. The one place it is read.
pub fn sampling_rate(raw: Option<&RawValue>) -> Result<Option<f64>, Error> {
    let Some(raw) = raw else { return Ok(None) };
    match serde_json::from_str::<f64>(raw.get()) {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(Some(r)),
        Ok(_) => Err(Error::bad_field("sampling_rate", "must be between 0 and 1")),
        Err(_) => Err(Error::bad_field("sampling_rate", "must be a number")),
    }
}

/// What a SERVER span is opened for.
pub(crate) struct Server<'a> {
    /// The span's name: the message type the handler serves.
    pub(crate) name: &'static str,
    /// The service answering (the envelope's `dest`, else the node).
    pub(crate) service: &'a str,
    /// The caller's context; `None` opens a root.
    pub(crate) parent: Option<SpanContext>,
    /// Whether a root is the node's own telemetry (a message without
    /// context) rather than a user's trace (a request a handler serves for
    /// a user, like `proxy_request`'s HTTP request).
    pub(crate) own_root: bool,
    /// A sampling rate the message asked for (parent-based).
    pub(crate) rate: Option<f64>,
    /// Whether the node's own telemetry goes anywhere (export is on): when
    /// it does not, such a span is not recorded at all, only propagated.
    pub(crate) telemetry_exported: bool,
}

/// Opens the SERVER span of an incoming message.
pub(crate) fn server_span(tracer: &Tracer, s: Server<'_>) -> Span {
    let own = s.parent.is_none() && s.own_root;
    let sampler = match s.rate {
        _ if own && !s.telemetry_exported => Some(Sampler::AlwaysOff),
        Some(r) => Some(Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(r)))),
        None => None,
    };
    let mut b = tracer
        .span_builder(s.name)
        .kind(SpanKind::Server)
        .parent_or_root(s.parent);
    if own {
        b = b.self_telemetry();
    }
    if let Some(sampler) = &sampler {
        b = b.sampler(sampler);
    }
    let mut span = b.start();
    // Attributes only for a span that records: an unrecorded one (the
    // node's own telemetry with export off) costs no allocation.
    if span.is_recording() {
        span.set_attribute(attr::RPC_SYSTEM, "maelstrom");
        span.set_attribute(attr::RPC_METHOD, s.name);
        span.set_attribute(attr::SERVICE_NAME, s.service.to_owned());
    }
    span
}

/// Opens a CLIENT span named `name` for a call to `dest`, child of the
/// current span, and returns it with the headers that carry its context
/// (the sidecar's sends, and the downstream calls of `proxy_request`).
pub(crate) fn client_span(
    tracer: &Tracer,
    name: &'static str,
    service: &str,
    dest: &str,
) -> (Span, Injected) {
    let span = tracer
        .span_builder(name)
        .kind(SpanKind::Client)
        .attribute(attr::DESTINATION, dest.to_owned())
        .attribute(attr::SERVICE_NAME, service.to_owned())
        .start();
    let injected = inject(span.context());
    (span, injected)
}

/// The W3C headers of a context: none for an invalid context, `tracestate`
/// only when there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Injected {
    /// The `traceparent` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The `tracestate` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// The headers that carry `ctx` downstream.
pub fn inject(ctx: &SpanContext) -> Injected {
    if !ctx.is_valid() {
        return Injected::default();
    }
    let state = ctx.trace_state();
    Injected {
        traceparent: Some(Traceparent::format(ctx)),
        tracestate: (!state.is_empty()).then(|| state.header()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracer_core::InMemoryExporter;

    #[test]
    fn a_message_without_context_is_the_nodes_own_telemetry_and_its_children_too() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let server = server_span(
            &tracer,
            Server {
                name: "log",
                service: "n1",
                parent: None,
                own_root: true,
                rate: None,
                telemetry_exported: true,
            },
        );
        assert!(server.context().is_self_telemetry());
        let _g = tracer_core::attach(server.context().clone());
        let (client, headers) = client_span(&tracer, "send", "n1", "n2");
        assert!(client.context().is_self_telemetry(), "inherited");
        assert!(headers.traceparent.is_some());
        let joined = server_span(
            &tracer,
            Server {
                name: "log",
                service: "n1",
                parent: Some(server.context().clone().with_self_telemetry(false)),
                own_root: true,
                rate: None,
                telemetry_exported: true,
            },
        );
        assert!(
            !joined.context().is_self_telemetry(),
            "context came with it"
        );
    }

    #[test]
    fn own_telemetry_is_not_recorded_when_nothing_exports_it() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let span = server_span(
            &tracer,
            Server {
                name: "stats",
                service: "n1",
                parent: None,
                own_root: true,
                rate: None,
                telemetry_exported: false,
            },
        );
        assert!(!span.is_recording());
        assert!(span.context().is_valid(), "still propagated");
        drop(span);
        assert!(mem.take().is_empty());
    }

    #[test]
    fn the_sampling_rate_is_checked_once_here() {
        let raw = |s: &str| RawValue::from_string(s.to_owned()).unwrap();
        assert_eq!(sampling_rate(None).unwrap(), None);
        assert_eq!(sampling_rate(Some(&raw("0.01"))).unwrap(), Some(0.01));
        assert!(sampling_rate(Some(&raw("2")))
            .unwrap_err()
            .text
            .contains("sampling_rate"));
        assert!(sampling_rate(Some(&raw("\"x\"")))
            .unwrap_err()
            .text
            .contains("must be a number"));
    }
}
