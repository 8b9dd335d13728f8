//! The call chain across real node processes. When the chain names nodes of
//! the cluster (`init`'s `node_ids`), a request travels as `hop` messages:
//! each node makes its SERVER span as a child of the incoming
//! `traceparent` (the sidecar's context), runs the rest of the chain, and
//! answers `hop_ok` with the spans it holds of that trace; the entry node
//! assembles the trace. A hop that does not answer in time becomes an ERROR
//! span; its spans, when they come later, update the stored trace.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};
use std::time::Duration;
use tracer_core::{
    now_unix_nanos, KeyValue, Span, SpanContext, SpanData, SpanId, SpanKind, Status, TraceFlags,
    TraceId, TraceState, Value,
};
use tracer_node::{handler, BoundedMap, Ctx, Deferred, Error, ReplyTo};

/// How long the entry node waits for the rest of the chain, by default.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// The longest wait a request may ask for.
pub const MAX_TIMEOUT_MS: u64 = 60_000;

/// The time budget a request asks for, within bounds.
pub(super) fn budget(timeout_ms: Option<u64>) -> Duration {
    Duration::from_millis(timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS).min(MAX_TIMEOUT_MS))
}

/// A span on the wire between nodes.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WireSpan {
    trace_id: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    name: String,
    kind: String,
    start_unix_nano: u64,
    end_unix_nano: u64,
    status: String,
    #[serde(default)]
    status_message: Option<String>,
    #[serde(default)]
    attributes: Map<String, Json>,
}

impl WireSpan {
    fn from_data(s: &SpanData) -> Self {
        let attributes = s
            .attributes
            .iter()
            .filter_map(|kv| Some((kv.key.to_string(), serde_json::to_value(&kv.value).ok()?)))
            .collect();
        WireSpan {
            trace_id: s.context.trace_id().to_hex(),
            span_id: s.context.span_id().to_hex(),
            parent_span_id: s.parent_span_id.map(SpanId::to_hex),
            name: s.name.to_string(),
            kind: s.kind.as_str().to_owned(),
            start_unix_nano: s.start_unix_nanos,
            end_unix_nano: s.end_unix_nanos,
            status: s.status.as_str().to_owned(),
            status_message: match &s.status {
                Status::Error(m) => Some(m.to_string()),
                _ => None,
            },
            attributes,
        }
    }

    /// The span, or `None` when its ids are not W3C ids.
    fn into_data(self) -> Option<SpanData> {
        let trace = TraceId::from_hex(&self.trace_id)?;
        let span = SpanId::from_hex(&self.span_id)?;
        let attributes = self
            .attributes
            .into_iter()
            .filter_map(|(k, v)| Some(KeyValue::new(k, Value::deserialize(v).ok()?)))
            .collect();
        Some(SpanData {
            context: SpanContext::new(trace, span, TraceFlags::SAMPLED, true, TraceState::EMPTY),
            parent_span_id: self.parent_span_id.as_deref().and_then(SpanId::from_hex),
            name: self.name.into(),
            kind: SpanKind::parse(&self.kind).unwrap_or_default(),
            start_unix_nanos: self.start_unix_nano,
            end_unix_nanos: self.end_unix_nano.max(self.start_unix_nano),
            attributes,
            events: Vec::new(),
            links: Vec::new(),
            status: match self.status.as_str() {
                "OK" => Status::Ok,
                "ERROR" => Status::Error(self.status_message.unwrap_or_default().into()),
                _ => Status::Unset,
            },
        })
    }
}

/// `hop {path, method, services, timeout_ms?}`: run the rest of a chain.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename = "hop")]
pub struct Hop {
    path: String,
    method: String,
    services: Vec<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// `hop_ok {spans, services}`: what a hop and the hops after it made.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename = "hop_ok")]
pub struct HopOk {
    spans: Vec<WireSpan>,
    services: Vec<String>,
}

/// Whether `name` is another node of the cluster.
pub(super) fn is_peer(ctx: &Ctx<'_>, name: &str) -> bool {
    ctx.node_id() != Some(name) && ctx.node_ids().iter().any(|n| n == name)
}

/// What running a route came to.
pub(super) struct Outcome {
    /// The trace (`None` when no span was made).
    pub(super) trace: Option<TraceId>,
    /// Services that made a span, in call order (a missing hop included).
    pub(super) services: Vec<String>,
}

type Done = Box<dyn FnOnce(&mut Ctx<'_>, Outcome) + Send>;

fn server_span(
    ctx: &Ctx<'_>,
    service: &str,
    name: &str,
    method: &str,
    path: &str,
    parent: Option<SpanContext>,
) -> Span {
    ctx.tracer()
        .span_builder(name.to_owned())
        .kind(SpanKind::Server)
        .parent_or_root(parent)
        .attribute("service.name", service.to_owned())
        .attribute("http.request.method", method.to_owned())
        .attribute("url.path", path.to_owned())
        .start()
}

/// Runs `route` from here: local services make spans, one inside the
/// other; the first peer gets the rest as a `hop`. `done` runs when the
/// route is through, now or in the RPC's callback.
pub(super) fn run_route(
    ctx: &mut Ctx<'_>,
    route: Vec<String>,
    method: String,
    path: String,
    parent: Option<SpanContext>,
    budget: Duration,
    done: Done,
) {
    let name = format!("{method} {path}");
    let mut open: Vec<Span> = Vec::new();
    let mut services = Vec::new();
    let mut parent = parent;
    for (i, service) in route.iter().enumerate() {
        if !is_peer(ctx, service) {
            let span = server_span(ctx, service, &name, &method, &path, parent.clone());
            parent = Some(span.context().clone());
            open.push(span);
            services.push(service.clone());
            continue;
        }
        let peer = service.clone();
        let hop = Hop {
            path: path.clone(),
            method: method.clone(),
            services: route[i..].to_vec(),
            // The next node must answer before we give up on it.
            timeout_ms: Some((budget.as_millis() as u64) * 3 / 4),
        };
        // The hop's CLIENT span is a child of our last span.
        let _current = open.last().map(Span::enter);
        let started = now_unix_nanos();
        let dest = peer.clone();
        if let Some(t) = open
            .last()
            .map(|s| s.context().trace_id())
            .or(parent.as_ref().map(SpanContext::trace_id))
        {
            ctx.state::<Downstream>().by_trace.insert(t, dest.clone());
        }
        ctx.rpc(&dest, &hop, budget, move |ctx, reply| {
            let client = ctx.incoming().cloned();
            let trace = client.as_ref().map(SpanContext::trace_id);
            match reply.map_err(|e| e.to_string()).and_then(|body| {
                body.decode::<HopOk>()
                    .map_err(|_| format!("{peer} answered with something else than hop_ok"))
            }) {
                Ok(ok) => {
                    store(ctx, ok.spans, trace);
                    services.extend(ok.services);
                }
                Err(why) => {
                    // The missing hop, as the span it did not send.
                    let mut span = ctx
                        .tracer()
                        .span_builder(name.clone())
                        .kind(SpanKind::Server)
                        .parent_or_root(client)
                        .start_time(started)
                        .attribute("service.name", peer.clone())
                        .attribute("http.request.method", method.clone())
                        .attribute("url.path", path.clone())
                        .start();
                    span.set_status(Status::Error(why.into()));
                    drop(span);
                    services.push(peer);
                }
            }
            while let Some(mut s) = open.pop() {
                s.end();
            }
            done(ctx, Outcome { trace, services });
        });
        return;
    }
    let trace = open.first().map(|s| s.context().trace_id());
    while let Some(mut s) = open.pop() {
        s.end();
    }
    done(ctx, Outcome { trace, services });
}

/// Stores spans another node sent for the hop of `trace` (a late copy
/// replaces an earlier one). A peer is trusted only with what it was asked:
/// spans of any other trace are refused and counted.
fn store(ctx: &mut Ctx<'_>, spans: Vec<WireSpan>, trace: Option<TraceId>) {
    let mut refused = 0;
    {
        let mut store = ctx.traces();
        for s in spans.into_iter().filter_map(WireSpan::into_data) {
            if Some(s.context.trace_id()) == trace {
                store.upsert(s);
            } else {
                refused += 1;
            }
        }
    }
    if refused > 0 {
        ctx.count_drop("cluster.spans_of_another_trace", refused);
    }
}

/// The spans this node holds of a trace, for the node upstream.
fn held(ctx: &Ctx<'_>, trace: Option<TraceId>) -> Vec<WireSpan> {
    let store = ctx.traces();
    trace
        .and_then(|t| store.get(t))
        .map(|t| t.spans().iter().map(WireSpan::from_data).collect())
        .unwrap_or_default()
}

/// Where each trace's hop came from, so that spans arriving late can be
/// passed on upstream. Bounded, oldest first.
struct Upstream {
    by_trace: BoundedMap<TraceId, String>,
}

impl Upstream {
    const CAP: usize = 10_000;

    fn remember(&mut self, trace: TraceId, node: &str) {
        if !self.by_trace.contains_key(&trace) {
            self.by_trace.insert(trace, node.to_owned());
        }
    }
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            by_trace: BoundedMap::new(Self::CAP),
        }
    }
}

/// One node's part of a chain: its span, child of the caller's context,
/// then the rest of the chain; answers `hop_ok` with the spans it holds.
#[handler("hop", own_span)]
pub fn hop(ctx: &mut Ctx<'_>, req: Hop) -> Result<Deferred, Error> {
    if req.services.is_empty() {
        return Err(Error::bad_field(
            "services",
            "must name at least one service",
        ));
    }
    let parent = ctx.incoming().cloned();
    if let (Some(p), Some(src)) = (&parent, ctx.src().map(str::to_owned)) {
        ctx.state::<Upstream>().remember(p.trace_id(), &src);
    }
    let to = ctx.defer();
    let budget = budget(req.timeout_ms);
    run_route(
        ctx,
        req.services,
        req.method,
        req.path,
        parent,
        budget,
        Box::new(move |ctx, outcome| {
            let spans = held(ctx, outcome.trace);
            ctx.reply_to(
                &to,
                &HopOk {
                    spans,
                    services: outcome.services,
                },
            );
        }),
    );
    Ok(Deferred {})
}

/// `hop_ok_ack {}`: the answer to late spans passed on upstream.
#[derive(Serialize)]
#[serde(tag = "type", rename = "hop_ok_ack")]
pub struct HopOkAck {}

/// A `hop_ok` that came after its request timed out (or a copy passed on
/// from downstream): its spans update the stored trace and go on upstream.
#[handler("hop_ok")]
pub fn late_hop_ok(ctx: &mut Ctx<'_>, req: HopOk) -> Result<HopOkAck, Error> {
    // Only the node a hop went to may answer it late, for that hop's trace.
    let from = ctx.src().unwrap_or_default().to_owned();
    let trace = req
        .spans
        .iter()
        .find_map(|s| TraceId::from_hex(&s.trace_id))
        .filter(|t| ctx.state::<Downstream>().by_trace.get(t) == Some(&from));
    if trace.is_none() {
        ctx.count_drop("cluster.late_replies_refused", 1);
        return Ok(HopOkAck {});
    }
    let forward = HopOk {
        spans: req.spans.clone(),
        services: req.services,
    };
    store(ctx, req.spans, trace);
    let up = trace.and_then(|t| ctx.state::<Upstream>().by_trace.get(&t).cloned());
    if let Some(up) = up {
        ctx.send(&up, &forward);
    }
    Ok(HopOkAck {})
}

/// Where each trace's hop went, so that a late `hop_ok` is taken only from
/// that node. Bounded, oldest first.
struct Downstream {
    by_trace: BoundedMap<TraceId, String>,
}

impl Default for Downstream {
    fn default() -> Self {
        Downstream {
            by_trace: BoundedMap::new(Upstream::CAP),
        }
    }
}

/// Answers `http_request` at the entry node once the route is through.
pub(super) fn finish_entry(to: ReplyTo, spell_hex: bool, method: String, path: String) -> Done {
    Box::new(move |ctx, outcome| {
        let name = format!("{method} {path}");
        let trace = outcome.trace;
        let spelled = |t: TraceId| {
            if spell_hex {
                t.to_hex()
            } else {
                t.to_uuid_string()
            }
        };
        super::log_hops(ctx, trace, &name, spelled);
        let reply = super::TraceComplete {
            trace_id: trace.map_or_else(|| TraceId::random().to_uuid_string(), spelled),
            span_count: outcome.services.len(),
            services: outcome.services,
        };
        ctx.reply_to(&to, &reply);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_bounded() {
        assert_eq!(budget(None), Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(budget(Some(250)), Duration::from_millis(250));
        assert_eq!(
            budget(Some(u64::MAX)),
            Duration::from_millis(MAX_TIMEOUT_MS)
        );
    }

    #[test]
    fn wire_spans_round_trip() {
        let mem = std::sync::Arc::new(tracer_core::InMemoryExporter::new());
        let t = tracer_core::Tracer::new(tracer_core::Sampler::AlwaysOn, mem.clone());
        let mut s = t
            .span_builder("GET /x")
            .kind(SpanKind::Server)
            .attribute("service.name", "n2")
            .attribute("n", 3_i64)
            .start();
        s.set_status(Status::Error("boom".into()));
        drop(s);
        let data = mem.take().pop().unwrap();
        let wire: WireSpan =
            serde_json::from_str(&serde_json::to_string(&WireSpan::from_data(&data)).unwrap())
                .unwrap();
        let back = wire.into_data().unwrap();
        assert_eq!(back.context.trace_id(), data.context.trace_id());
        assert_eq!(back.context.span_id(), data.context.span_id());
        assert_eq!(back.kind, SpanKind::Server);
        assert_eq!(back.status, Status::Error("boom".into()));
        assert_eq!(back.attribute("n"), Some(&Value::I64(3)));
        assert_eq!(back.end_unix_nanos, data.end_unix_nanos);
    }
}
