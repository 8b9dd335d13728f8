//! The service-mesh sidecar's view of one hop: for an incoming request's
//! headers, the span the sidecar makes and the headers it sends downstream,
//! by the W3C Trace Context processing model.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracer_core::propagation;
use tracer_node::{handler, headers_from_json, Ctx, Error};

/// Downstream calls one `proxy_request` may ask headers for, at most.
pub const MAX_OUTBOUND: u64 = 64;

fn one() -> serde_json::Value {
    serde_json::Value::from(1)
}

/// `proxy_request {headers, outbound = 1}`.
#[derive(Deserialize)]
pub struct ProxyRequest {
    headers: Box<RawValue>,
    /// How many downstream calls the service makes (a positive integer up
    /// to [`MAX_OUTBOUND`]); read as JSON to name the field when it is not.
    #[serde(default = "one")]
    outbound: serde_json::Value,
}

/// The headers sent downstream.
#[derive(Serialize, Clone)]
pub struct Forwarded {
    traceparent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tracestate: Option<String>,
}

/// The sidecar's span.
#[derive(Serialize)]
pub struct ProxySpan {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
    sampled: bool,
}

/// `proxy_forward {headers, span, outbound}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "proxy_forward")]
pub struct ProxyForward {
    /// The headers of the first downstream call (`outbound[0]`).
    headers: Forwarded,
    span: ProxySpan,
    /// The headers of each downstream call, from a CLIENT span of its own.
    outbound: Vec<Forwarded>,
}

/// A valid, single `traceparent` is continued (its `tracestate` kept within
/// the member and size limits); a missing, invalid or duplicated one restarts
/// the trace and drops `tracestate`. The SERVER span is the incoming
/// request's; each of the `outbound` downstream calls gets a CLIENT span of
/// its own, child of it, and the headers that carry that span.
#[handler("proxy_request", own_span)]
pub fn proxy_request(ctx: &mut Ctx<'_>, req: ProxyRequest) -> Result<ProxyForward, Error> {
    let headers = headers_from_json(&req.headers).ok_or_else(|| {
        Error::bad_field(
            "headers",
            "must be an object of strings or a list of [name, value] string pairs",
        )
    })?;
    let outbound = req
        .outbound
        .as_u64()
        .filter(|n| (1..=MAX_OUTBOUND).contains(n))
        .ok_or_else(|| {
            Error::bad_field(
                "outbound",
                format!("must be a whole number from 1 to {MAX_OUTBOUND}"),
            )
        })?;
    let parent = propagation::extract(&headers).ok();
    let span = ctx.server_span("proxy", parent.clone())?;
    let sc = span.context().clone();
    let calls: Vec<Forwarded> = {
        let _current = tracer_core::attach(sc.clone());
        (0..outbound)
            .map(|_| {
                let (client, injected) = ctx.client_span("proxy outbound", "downstream");
                drop(client); // the call is the service's: its span ends here
                Forwarded {
                    traceparent: injected.traceparent.unwrap_or_default(),
                    tracestate: injected.tracestate,
                }
            })
            .collect()
    };
    drop(span);
    Ok(ProxyForward {
        headers: calls[0].clone(),
        span: ProxySpan {
            trace_id: sc.trace_id().to_hex(),
            span_id: sc.span_id().to_hex(),
            parent_span_id: parent.map(|p| p.span_id().to_hex()),
            sampled: sc.is_sampled(),
        },
        outbound: calls,
    })
}
