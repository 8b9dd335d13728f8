//! Both services on loopback, real HTTP between them, spans read from
//! in-memory exporters (one per service): the trace across the two, status
//! codes and errors, incoming context (valid, invalid, unsampled), and 100
//! requests at once.

use axum::body::Bytes;
use axum::http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracer_core::{InMemoryExporter, Sampler, SpanData, SpanKind, Status, Tracer, Value};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

struct Stack {
    front: SocketAddr,
    back: SocketAddr,
    front_spans: Arc<InMemoryExporter>,
    back_spans: Arc<InMemoryExporter>,
    /// An untraced client, as a browser or curl would be.
    http: Client<HttpConnector, Empty<Bytes>>,
}

async fn stack(sampler: Sampler) -> Stack {
    let front_spans = Arc::new(InMemoryExporter::new());
    let back_spans = Arc::new(InMemoryExporter::new());
    let (back, front) = http_services::serve_both(
        Tracer::new(sampler.clone(), front_spans.clone()),
        Tracer::new(sampler, back_spans.clone()),
    )
    .await
    .expect("both services bound");
    Stack {
        front,
        back,
        front_spans,
        back_spans,
        http: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Stack {
    /// GETs `path` from the frontend with these headers: status and body.
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut request = Request::get(format!("http://{}{path}", self.front));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .http
            .request(request.body(Empty::new()).unwrap())
            .await
            .expect("the frontend answers");
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The frontend's and the backend's spans, once there are `front` and
    /// `back` of them (a SERVER span ends once its response is written,
    /// which may be after the caller has read it).
    async fn spans(&self, front: usize, back: usize) -> (Vec<SpanData>, Vec<SpanData>) {
        (
            collect(&self.front_spans, front).await,
            collect(&self.back_spans, back).await,
        )
    }
}

/// Exactly `n` spans from `mem`: waits up to 10 s for them, then 50 ms
/// more to see that no other comes.
async fn collect(mem: &InMemoryExporter, n: usize) -> Vec<SpanData> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut spans = Vec::new();
    while spans.len() < n && Instant::now() < deadline {
        spans.extend(mem.take());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    spans.extend(mem.take());
    assert_eq!(spans.len(), n, "{spans:#?}");
    spans
}

fn of_kind(spans: &[SpanData], kind: SpanKind) -> &SpanData {
    let mut found = spans.iter().filter(|s| s.kind == kind);
    let span = found.next().unwrap_or_else(|| panic!("no {kind} span"));
    assert!(found.next().is_none(), "one {kind} span");
    span
}

fn string(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn int(v: i64) -> Value {
    Value::I64(v)
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attribute(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_both_services() {
    let s = stack(Sampler::AlwaysOn).await;
    let (status, body) = s.get("/checkout/42", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "order for item 42")
    );
    let (front, back) = s.spans(2, 1).await;
    let server = of_kind(&front, SpanKind::Server);
    let client = of_kind(&front, SpanKind::Client);
    let backend = of_kind(&back, SpanKind::Server);

    // One trace, a chain: frontend SERVER -> frontend CLIENT -> backend SERVER.
    let trace = server.context.trace_id();
    assert!(trace.is_valid());
    assert_eq!(server.parent_span_id, None, "no traceparent came: a root");
    assert_eq!(client.context.trace_id(), trace);
    assert_eq!(backend.context.trace_id(), trace);
    assert_eq!(client.parent_span_id, Some(server.context.span_id()));
    assert_eq!(backend.parent_span_id, Some(client.context.span_id()));
    // Each ends after what it waited for.
    assert!(client.end_unix_nanos <= server.end_unix_nanos);
    assert!(server.start_unix_nanos <= client.start_unix_nanos);
    assert!(client.start_unix_nanos <= backend.start_unix_nanos);

    assert_eq!(server.name, "GET /checkout/{id}");
    assert_eq!(attr(server, "http.route"), Some(&string("/checkout/{id}")));
    assert_eq!(attr(server, "url.path"), Some(&string("/checkout/42")));
    assert_eq!(attr(server, "http.request.method"), Some(&string("GET")));
    assert_eq!(attr(server, "url.scheme"), Some(&string("http")));
    assert_eq!(attr(server, "server.address"), Some(&string("127.0.0.1")));
    assert_eq!(
        attr(server, "server.port"),
        Some(&int(s.front.port().into()))
    );
    assert_eq!(attr(server, "http.response.status_code"), Some(&int(200)));

    assert_eq!(client.name, "GET");
    let url = format!("http://{}/items/42", s.back);
    assert_eq!(attr(client, "url.full"), Some(&string(&url)));
    assert_eq!(attr(client, "server.address"), Some(&string("127.0.0.1")));
    assert_eq!(
        attr(client, "server.port"),
        Some(&int(s.back.port().into()))
    );
    assert_eq!(attr(client, "http.response.status_code"), Some(&int(200)));

    assert_eq!(backend.name, "GET /items/{id}");
    assert_eq!(attr(backend, "http.route"), Some(&string("/items/{id}")));
    assert_eq!(attr(backend, "url.path"), Some(&string("/items/42")));
    assert_eq!(attr(backend, "http.response.status_code"), Some(&int(200)));
    for span in [server, client, backend] {
        assert_eq!(span.status, Status::Unset, "{}", span.name);
        assert_eq!(attr(span, "error.type"), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_route_fails_every_span_of_the_call() {
    let s = stack(Sampler::AlwaysOn).await;
    let (status, body) = s.get("/proxy/broken", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "broken on purpose")
    );
    let (front, back) = s.spans(2, 1).await;
    let backend = of_kind(&back, SpanKind::Server);
    assert_eq!(backend.name, "GET /broken");
    for span in [
        of_kind(&front, SpanKind::Server),
        of_kind(&front, SpanKind::Client),
        backend,
    ] {
        assert_eq!(
            attr(span, "http.response.status_code"),
            Some(&int(500)),
            "{}",
            span.name
        );
        assert_eq!(
            attr(span, "error.type"),
            Some(&string("500")),
            "{}",
            span.name
        );
        assert!(matches!(span.status, Status::Error(_)), "{}", span.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_service_records_its_error_type() {
    let s = stack(Sampler::AlwaysOn).await;
    let (status, body) = s.get("/proxy/fail", &[]).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "HandleError's answer"
    );
    assert_eq!(body, "the inventory is unreachable");
    let (front, back) = s.spans(2, 1).await;
    let backend = of_kind(&back, SpanKind::Server);
    assert_eq!(backend.name, "GET /fail");
    assert_eq!(attr(backend, "http.route"), Some(&string("/fail")));
    assert_eq!(
        attr(backend, "error.type"),
        Some(&string("http_services::BackendError"))
    );
    assert_eq!(
        backend.status,
        Status::Error("the inventory is unreachable".into())
    );
    assert_eq!(backend.events.len(), 1);
    assert_eq!(backend.events[0].name, "exception");
    assert_eq!(
        attr(backend, "http.response.status_code"),
        None,
        "the layer saw an error, not a response"
    );
    // The frontend saw the 500 HandleError made of it.
    let client = of_kind(&front, SpanKind::Client);
    assert_eq!(attr(client, "http.response.status_code"), Some(&int(500)));
    assert_eq!(attr(client, "error.type"), Some(&string("500")));
    assert_eq!(backend.parent_span_id, Some(client.context.span_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_is_an_error_for_the_client_only() {
    let s = stack(Sampler::AlwaysOn).await;
    let (status, body) = s.get("/proxy/missing/thing", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "no such thing")
    );
    let (front, back) = s.spans(2, 1).await;
    // The backend's fallback: no route, so the path names the span.
    let backend = of_kind(&back, SpanKind::Server);
    assert_eq!(backend.name, "GET /missing/thing");
    assert_eq!(attr(backend, "http.route"), None);
    let server = of_kind(&front, SpanKind::Server);
    assert_eq!(server.name, "GET /proxy/{*path}");
    for span in [server, backend] {
        assert_eq!(attr(span, "http.response.status_code"), Some(&int(404)));
        assert_eq!(
            attr(span, "error.type"),
            None,
            "a server's 4xx is the caller's fault"
        );
        assert_eq!(span.status, Status::Unset);
    }
    let client = of_kind(&front, SpanKind::Client);
    assert_eq!(attr(client, "http.response.status_code"), Some(&int(404)));
    assert_eq!(attr(client, "error.type"), Some(&string("404")));
    assert!(matches!(client.status, Status::Error(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_traceparent_is_joined_with_its_tracestate() {
    let s = stack(Sampler::AlwaysOn).await;
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let (status, echoed) = s
        .get(
            "/proxy/echo",
            &[
                ("traceparent", &incoming),
                ("tracestate", "congo=t61rcWkgMzE"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (front, back) = s.spans(2, 1).await;
    let server = of_kind(&front, SpanKind::Server);
    let client = of_kind(&front, SpanKind::Client);
    assert_eq!(server.context.trace_id().to_hex(), TRACE);
    assert_eq!(server.parent_span_id.unwrap().to_hex(), PARENT);
    assert_eq!(
        of_kind(&back, SpanKind::Server).context.trace_id().to_hex(),
        TRACE
    );
    // What the backend received: the trace, the CLIENT span as parent,
    // sampled, and the vendor state passed on.
    let (traceparent, tracestate) = echoed.split_once('\n').unwrap();
    assert_eq!(
        traceparent,
        format!("00-{TRACE}-{}-01", client.context.span_id().to_hex())
    );
    assert_eq!(tracestate, "congo=t61rcWkgMzE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_traceparent_restarts_the_trace() {
    let s = stack(Sampler::AlwaysOn).await;
    for bad in [
        format!("00-{TRACE}-0000000000000000-01"), // parent id all zero
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()), // not lowercase
        "ff-whatever".to_owned(),
    ] {
        let (status, echoed) = s
            .get(
                "/proxy/echo",
                &[("traceparent", &bad), ("tracestate", "congo=1")],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let (front, back) = s.spans(2, 1).await;
        let server = of_kind(&front, SpanKind::Server);
        assert_eq!(server.parent_span_id, None, "{bad}: a new root");
        let trace = server.context.trace_id();
        assert_ne!(trace.to_hex(), TRACE);
        assert_eq!(of_kind(&back, SpanKind::Server).context.trace_id(), trace);
        let (traceparent, tracestate) = echoed.split_once('\n').unwrap();
        assert!(traceparent.starts_with(&format!("00-{}-", trace.to_hex())));
        assert_eq!(tracestate, "", "the tracestate went with its traceparent");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsampled_request_records_nothing_and_propagates_flags_00() {
    // The default sampler follows the caller's decision.
    let s = stack(Sampler::default()).await;
    let incoming = format!("00-{TRACE}-{PARENT}-00");
    let (status, echoed) = s.get("/proxy/echo", &[("traceparent", &incoming)]).await;
    assert_eq!(status, StatusCode::OK);
    let (traceparent, _) = echoed.split_once('\n').unwrap();
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields[1], TRACE, "the same trace: {traceparent}");
    assert_ne!(
        fields[2], PARENT,
        "the frontend's CLIENT span is the parent"
    );
    assert_eq!(fields[3], "00", "still unsampled");
    let (front, back) = s.spans(0, 0).await;
    assert!(front.is_empty() && back.is_empty());

    // A root the sampler drops: a new trace, sampled bit clear (the
    // Level 2 random-trace-id bit, 02, is set: the id is ours and random).
    let s = stack(Sampler::AlwaysOff).await;
    let (_, echoed) = s.get("/proxy/echo", &[]).await;
    let (traceparent, _) = echoed.split_once('\n').unwrap();
    assert!(traceparent.ends_with("-02"), "{traceparent}");
    assert!(s.spans(0, 0).await.0.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_requests_at_once_are_a_hundred_separate_traces() {
    let s = Arc::new(stack(Sampler::AlwaysOn).await);
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.get(&format!("/checkout/{i}"), &[]).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("order for item {i}"));
    }
    let (front, back) = s.spans(200, 100).await;
    let by_id: HashMap<_, _> = front.iter().map(|sp| (sp.context.span_id(), sp)).collect();
    let path = |sp: &SpanData| {
        attr(sp, "url.path")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned()
    };
    let mut traces = HashSet::new();
    for backend in &back {
        assert_eq!(backend.kind, SpanKind::Server);
        // The backend's parent is a CLIENT span of the same trace ...
        let parent = backend.parent_span_id.expect("a parent");
        let client = *by_id
            .get(&parent)
            .unwrap_or_else(|| panic!("{}: its parent is not a frontend span", backend.name));
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.context.trace_id(), backend.context.trace_id());
        // ... whose parent is the frontend SERVER span of that trace ...
        let parent = client.parent_span_id.expect("a parent");
        let server = *by_id
            .get(&parent)
            .unwrap_or_else(|| panic!("a CLIENT span's parent is not a frontend span"));
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.context.trace_id(), backend.context.trace_id());
        assert_eq!(server.parent_span_id, None);
        // ... for the same request: /checkout/{i} called /items/{i}.
        let i = path(backend).strip_prefix("/items/").unwrap().to_owned();
        assert_eq!(path(server), format!("/checkout/{i}"));
        let url = attr(client, "url.full").and_then(Value::as_str).unwrap();
        assert!(url.ends_with(&format!("/items/{i}")), "{url}");
        assert!(
            traces.insert(backend.context.trace_id()),
            "one backend span a trace"
        );
    }
    assert_eq!(traces.len(), 100);
}
