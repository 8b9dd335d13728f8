//! The sidecar: trace context read from every incoming message, without
//! handler code.

use crate::codec::Head;
use serde_json::value::RawValue;
use tracer_core::propagation::{self, ExtractError, TRACEPARENT, TRACESTATE};
use tracer_core::SpanContext;

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
