//! Auto-instrumentation: the node keeps a call chain of services; an
//! `http_request` flows down it and every instrumented service makes a
//! SERVER span, without a line of tracing code in the services themselves.
//! The interceptor is a `#[traced]` service function.

mod cluster;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tracer_core::{current, SpanContext};
use tracer_node::stores::LogEntry;
use tracer_node::{handler, headers_from_json, traced, Ctx, Error};

/// The longest call chain the node keeps; a request recurses once per hop.
pub const MAX_CHAIN: usize = 256;

#[derive(Debug)]
struct Service {
    name: String,
    auto: bool,
}

/// The node's call chain, in order.
#[derive(Debug, Default)]
struct Chain {
    services: Vec<Service>,
}

fn yes() -> bool {
    true
}

/// `instrument_service {services: [string], auto: bool = true}`.
#[derive(Deserialize)]
pub struct InstrumentService {
    services: Vec<String>,
    #[serde(default = "yes")]
    auto: bool,
}

/// `instrument_service_ok {services}`: the whole chain.
#[derive(Serialize)]
#[serde(tag = "type", rename = "instrument_service_ok")]
pub struct InstrumentServiceOk {
    services: Vec<String>,
}

/// Appends services to the call chain; a known service keeps its place and
/// takes the new `auto` flag.
#[handler("instrument_service")]
pub fn instrument_service(
    ctx: &mut Ctx<'_>,
    req: InstrumentService,
) -> Result<InstrumentServiceOk, Error> {
    if req.services.is_empty() {
        return Err(Error::bad_field(
            "services",
            "must list at least one service",
        ));
    }
    if req.services.iter().any(|s| s.is_empty()) {
        return Err(Error::bad_field(
            "services",
            "service names must be non-empty strings",
        ));
    }
    let chain = ctx.state::<Chain>();
    let new = req
        .services
        .iter()
        .filter(|n| !chain.services.iter().any(|s| &s.name == *n))
        .count();
    if chain.services.len() + new > MAX_CHAIN {
        return Err(Error::bad_field(
            "services",
            format!("the call chain holds at most {MAX_CHAIN} services"),
        ));
    }
    for name in req.services {
        match chain.services.iter_mut().find(|s| s.name == name) {
            Some(s) => s.auto = req.auto,
            None => chain.services.push(Service {
                name,
                auto: req.auto,
            }),
        }
    }
    Ok(InstrumentServiceOk {
        services: chain.services.iter().map(|s| s.name.clone()).collect(),
    })
}

fn get() -> String {
    "GET".to_owned()
}

/// The longest request path taken, in bytes (what common HTTP servers
/// take before they answer 414).
pub const MAX_PATH: usize = 8 << 10;

/// The longest method taken, in bytes.
pub const MAX_METHOD: usize = 64;

/// `http_request {path, method = "GET", headers?}`.
#[derive(Deserialize)]
pub struct HttpRequest {
    path: String,
    #[serde(default = "get")]
    method: String,
    #[serde(default)]
    headers: Option<Box<RawValue>>,
    /// With a chain across nodes: how long to wait for the rest of it.
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `trace_complete {trace_id, services, span_count}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "trace_complete")]
pub struct TraceComplete {
    trace_id: String,
    services: Vec<String>,
    span_count: usize,
}

/// The ids of one span, as `http_response` shows them.
#[derive(Serialize)]
pub struct SpanRef {
    trace_id: String,
    span_id: String,
    parent_span_id: Option<String>,
}

/// `http_response {span}` (no call chain).
#[derive(Serialize)]
#[serde(tag = "type", rename = "http_response")]
pub struct HttpResponse {
    span: SpanRef,
}

/// Reply of `http_request`: a whole trace with a chain, one span without.
#[derive(Serialize)]
#[serde(untagged)]
pub enum HttpReply {
    /// With a call chain.
    Trace(TraceComplete),
    /// Without one.
    Response(HttpResponse),
    /// Across nodes: sent later, when the chain is through.
    Deferred(tracer_node::Deferred),
}

/// Writes one log entry per service span of a trace (the protocol's entry:
/// service, message, trace id), in call order.
fn log_hops(
    ctx: &mut Ctx<'_>,
    trace: Option<tracer_core::TraceId>,
    name: &str,
    spell: impl Fn(tracer_core::TraceId) -> String,
) {
    let Some(trace) = trace else { return };
    let mut hops: Vec<(u64, String, tracer_core::SpanId)> = {
        let store = ctx.traces();
        store
            .get(trace)
            .map(|t| {
                t.spans()
                    .iter()
                    .filter(|s| s.kind == tracer_core::SpanKind::Server && s.name == name)
                    .filter_map(|s| {
                        let svc = s.attribute("service.name")?.as_str()?.to_owned();
                        Some((s.start_unix_nanos, svc, s.context.span_id()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    hops.sort_by_key(|h| h.0);
    for (_, service, span) in hops {
        let service = ctx.logs().intern_service(&service);
        ctx.push_log_in(
            LogEntry {
                service,
                message: name.into(),
                trace_id: Some(spell(trace).into()),
                span_id: None,
                level: None,
                attributes: None,
            },
            Some(span),
        );
    }
}

/// A span a service made on the request's way.
struct Hop {
    service: String,
    context: SpanContext,
    parent: Option<SpanContext>,
}

/// One instrumented service handling the request: a SERVER span around its
/// work, which is passing the request on down the chain.
#[traced(
    kind = server,
    name = format!("{} {}", req.method, req.path),
    skip_all,
    fields(
        service.name = service.to_owned(),
        http.request.method = req.method.clone(),
        url.path = req.path.clone()
    ),
    parent = parent.clone()
)]
fn serve(
    service: &str,
    rest: &[Service],
    req: &HttpRequest,
    parent: Option<SpanContext>,
    hops: &mut Vec<Hop>,
) {
    let me = current().expect("#[traced] makes the span current");
    hops.push(Hop {
        service: service.to_owned(),
        context: me.clone(),
        parent,
    });
    forward(rest, req, Some(me), hops);
}

/// Passes the request through uninstrumented services to the next
/// instrumented one.
fn forward(rest: &[Service], req: &HttpRequest, parent: Option<SpanContext>, hops: &mut Vec<Hop>) {
    if let Some(i) = rest.iter().position(|s| s.auto) {
        serve(&rest[i].name, &rest[i + 1..], req, parent, hops);
    }
}

/// Serves an HTTP request through the call chain (or as this node alone),
/// continuing the trace of a valid `traceparent` in `headers`.
#[handler("http_request", always_reply, own_span)]
pub fn http_request(ctx: &mut Ctx<'_>, req: HttpRequest) -> Result<HttpReply, Error> {
    if req.path.len() > MAX_PATH {
        // As an HTTP server answers 414: each span of the chain would hold
        // the path twice (its name and `url.path`).
        return Err(Error::bad_field(
            "path",
            format!(
                "{} bytes is longer than the {MAX_PATH} a request path may be",
                req.path.len()
            ),
        ));
    }
    if req.method.len() > MAX_METHOD {
        return Err(Error::bad_field(
            "method",
            format!("longer than the {MAX_METHOD} bytes a method may be"),
        ));
    }
    if let Some(h) = &req.headers {
        if headers_from_json(h).is_none() {
            return Err(Error::bad_field(
                "headers",
                "must be an object of strings or a list of [name, value] string pairs",
            ));
        }
    }
    let parent = ctx.incoming().cloned();
    // A continued trace keeps the spelling the client sent (W3C hex); a new
    // one is written as a UUID.
    let spell = |c: &SpanContext| {
        if parent.is_some() {
            c.trace_id().to_hex()
        } else {
            c.trace_id().to_uuid_string()
        }
    };
    let mut hops = Vec::new();
    let dest = ctx.dest().map(str::to_owned);
    let me = ctx.me().to_owned();
    let chain = ctx.state::<Chain>();
    let with_chain = !chain.services.is_empty();
    if with_chain {
        let entry = dest.and_then(|d| chain.services.iter().position(|s| s.name == d));
        let route = &chain.services[entry.unwrap_or(0)..];
        let names: Vec<String> = route
            .iter()
            .filter(|s| s.auto)
            .map(|s| s.name.clone())
            .collect();
        if names.iter().any(|n| cluster::is_peer(ctx, n)) {
            // The chain crosses nodes: real messages, a reply when it is through.
            let to = ctx.defer();
            let budget = cluster::budget(req.timeout_ms);
            let done =
                cluster::finish_entry(to, parent.is_some(), req.method.clone(), req.path.clone());
            cluster::run_route(ctx, names, req.method, req.path, parent, budget, done);
            return Ok(HttpReply::Deferred(tracer_node::Deferred {}));
        }
        let chain = ctx.state::<Chain>();
        let route = &chain.services[entry.unwrap_or(0)..];
        forward(route, &req, parent.clone(), &mut hops);
    } else {
        serve(&me, &[], &req, parent.clone(), &mut hops);
    }

    let message = format!("{} {}", req.method, req.path);
    {
        for hop in &hops {
            let service = ctx.logs().intern_service(&hop.service);
            ctx.push_log_in(
                LogEntry {
                    service,
                    message: message.as_str().into(),
                    trace_id: Some(spell(&hop.context).into()),
                    // The protocol's entry is exactly service, message and trace id.
                    span_id: None,
                    level: None,
                    attributes: None,
                },
                Some(hop.context.span_id()),
            );
        }
    }

    if with_chain {
        let trace_id = hops
            .first()
            .map(|h| spell(&h.context))
            .or_else(|| parent.as_ref().map(|p| p.trace_id().to_hex()))
            .unwrap_or_else(|| tracer_core::TraceId::random().to_uuid_string());
        Ok(HttpReply::Trace(TraceComplete {
            trace_id,
            span_count: hops.len(),
            services: hops.into_iter().map(|h| h.service).collect(),
        }))
    } else {
        let hop = hops.pop().expect("serve makes exactly one span");
        Ok(HttpReply::Response(HttpResponse {
            span: SpanRef {
                trace_id: spell(&hop.context),
                span_id: hop.context.span_id().to_hex(),
                parent_span_id: hop.parent.map(|p| p.span_id().to_hex()),
            },
        }))
    }
}
