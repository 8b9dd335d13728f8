//! The service-mesh sidecar's view of one hop: for an incoming request's
//! headers, the span the sidecar makes and the headers it sends downstream,
//! by the W3C Trace Context processing model.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracer_core::propagation::{self, Traceparent};
use tracer_core::{Sampler, SpanKind};
use tracer_node::{handler, headers_from_json, Ctx, Error};

/// `proxy_request {headers}`.
#[derive(Deserialize)]
pub struct ProxyRequest {
    headers: Box<RawValue>,
}

/// The headers sent downstream.
#[derive(Serialize)]
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

/// `proxy_forward {headers, span}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "proxy_forward")]
pub struct ProxyForward {
    headers: Forwarded,
    span: ProxySpan,
}

/// A valid, single `traceparent` is continued (its `tracestate` kept within
/// the member and size limits); a missing, invalid or duplicated one restarts
/// the trace and drops `tracestate`.
#[handler("proxy_request", own_span)]
pub fn proxy_request(ctx: &mut Ctx<'_>, req: ProxyRequest) -> Result<ProxyForward, Error> {
    let headers = headers_from_json(&req.headers).ok_or_else(|| {
        Error::bad_field(
            "headers",
            "must be an object of strings or a list of [name, value] string pairs",
        )
    })?;
    let parent = propagation::extract(&headers).ok();
    let rate = ctx.sampling_rate()?;
    let sampler = rate.map(|r| Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(r))));
    let mut builder = ctx
        .tracer()
        .span_builder("proxy")
        .kind(SpanKind::Server)
        .parent_or_root(parent.clone())
        .attribute("service.name", ctx.me().to_owned());
    if let Some(s) = &sampler {
        builder = builder.sampler(s);
    }
    let span = builder.start();
    let sc = span.context().clone();
    let mut out: Vec<(String, String)> = Vec::new();
    propagation::inject(&sc, &mut out);
    let tracestate = out
        .iter()
        .find(|(k, _)| k == propagation::TRACESTATE)
        .map(|(_, v)| v.clone());
    Ok(ProxyForward {
        headers: Forwarded {
            traceparent: Traceparent::format(&sc),
            tracestate,
        },
        span: ProxySpan {
            trace_id: sc.trace_id().to_hex(),
            span_id: sc.span_id().to_hex(),
            parent_span_id: parent.map(|p| p.span_id().to_hex()),
            sampled: sc.is_sampled(),
        },
    })
}
