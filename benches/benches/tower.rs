//! The cost of tracing an HTTP request in a tower service: tracer-core's
//! `ServerLayer` against no layer and against tower-http's `TraceLayer`
//! with tracing-opentelemetry over the OpenTelemetry SDK.
//!
//! `cargo bench -p tracer-benches --bench tower`
//!
//! Each iteration is one request through the service, called directly (no
//! socket): `call` on the ready service, the future polled to its end, the
//! response body read to its end and dropped, so that every span has
//! ended. The request is built outside the timing.
//!
//! - `server_plain`: the service alone, the floor.
//! - `server_tracer`: `tracer_core::tower::ServerLayer`, the default
//!   (parent-based) sampler, a simple processor into an in-memory exporter
//!   (as `tracer_in_memory` in the `compare` bench).
//! - `server_tower_http_otel`: `tower_http::trace::TraceLayer::new_for_http()`
//!   (its default span, request/response events and failure classifier),
//!   its span given the incoming W3C parent (OpenTelemetry's
//!   `TraceContextPropagator`, `OpenTelemetrySpanExt::set_parent`), through
//!   `tracing-opentelemetry` into the SDK with a parent-based sampler and a
//!   simple exporter to memory.
//!
//! Each runs `sampled` (the request's `traceparent` has flags `01`, so
//! both stacks record) and `unsampled` (flags `00`: both follow the
//! caller and record nothing, but still propagate).
//!
//! `client_plain` and `client_tracer` time the same for an outgoing request
//! through `ClientLayer` (a CLIENT span under a current SERVER span,
//! `traceparent` injected).

use http::{Request, Response};
use std::cell::RefCell;
use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::{pin, Pin};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use tower::{Layer, Service};
use tracer_core::tower::{ClientLayer, ServerLayer};
use tracer_core::{InMemoryExporter, Sampler, SimpleProcessor, Tracer};

fn main() {
    // Let tracer's span clock settle (see the `compare` bench).
    tracer_core::now_unix_nanos();
    std::thread::sleep(std::time::Duration::from_millis(20));
    tracer_core::now_unix_nanos();
    divan::main();
}

const CASES: &[&str] = &["sampled", "unsampled"];

fn traceparent(case: &str) -> &'static str {
    match case {
        "sampled" => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        _ => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
    }
}

/// What a browser sends, give or take.
fn request(case: &str) -> Request<String> {
    Request::get("/users/42?fields=name")
        .header("host", "api.example:8080")
        .header("user-agent", "bench/1.0")
        .header("accept", "application/json")
        .header("traceparent", traceparent(case))
        .body(String::new())
        .unwrap()
}

/// The service being traced: answers at once.
#[derive(Clone, Copy)]
struct Hello;

impl Service<Request<String>> for Hello {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<String>) -> Self::Future {
        ready(Ok(Response::new(String::from("hello"))))
    }
}

/// Polls a future that needs no waking to its end.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// One request: call, response, body read to its end, all dropped.
fn one<S, B>(service: &RefCell<S>, request: Request<String>)
where
    S: Service<Request<String>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut service = service.borrow_mut();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let response = block_on(service.call(request)).unwrap();
    let mut body = response.into_body();
    while let Poll::Ready(Some(frame)) = Pin::new(&mut body).poll_frame(&mut cx) {
        frame.unwrap();
    }
}

#[divan::bench]
fn server_plain(bencher: divan::Bencher<'_, '_>) {
    let service = RefCell::new(Hello);
    bencher
        .with_inputs(|| request("sampled"))
        .bench_local_values(|req| one(&service, req));
}

fn tracer_in_memory() -> &'static (Tracer, Arc<InMemoryExporter>) {
    static T: OnceLock<(Tracer, Arc<InMemoryExporter>)> = OnceLock::new();
    T.get_or_init(|| {
        let mem = Arc::new(InMemoryExporter::new());
        let t = Tracer::new(Sampler::default(), SimpleProcessor::new(mem.clone()));
        (t, mem)
    })
}

#[divan::bench(args = CASES)]
fn server_tracer(bencher: divan::Bencher<'_, '_>, case: &str) {
    let (tracer, mem) = tracer_in_memory();
    let service = RefCell::new(ServerLayer::new().tracer(tracer.clone()).layer(Hello));
    bencher
        .with_inputs(|| {
            mem.take();
            request(case)
        })
        .bench_local_values(|req| one(&service, req));
    let kept = mem.take().len();
    assert_eq!(kept > 0, case == "sampled", "{case}: {kept} spans");
}

type OtelStack = (
    opentelemetry_sdk::trace::SdkTracerProvider,
    opentelemetry_sdk::trace::InMemorySpanExporter,
    tracing::Dispatch,
);

fn otel() -> &'static OtelStack {
    static P: OnceLock<OtelStack> = OnceLock::new();
    P.get_or_init(|| {
        use opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt;
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(
                opentelemetry_sdk::trace::Sampler::AlwaysOn,
            )))
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("bench");
        let dispatch = tracing::Dispatch::new(
            tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
        );
        (provider, exporter, dispatch)
    })
}

/// OpenTelemetry's view of an `http::HeaderMap`.
struct Headers<'a>(&'a http::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// tower-http's default span, with the caller's context as its parent.
fn make_span(request: &Request<String>) -> tracing::Span {
    use opentelemetry::propagation::TextMapPropagator;
    use tower_http::trace::MakeSpan;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tower_http::trace::DefaultMakeSpan::new().make_span(request);
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&Headers(request.headers()));
    let _ = span.set_parent(parent);
    span
}

#[divan::bench(args = CASES)]
fn server_tower_http_otel(bencher: divan::Bencher<'_, '_>, case: &str) {
    let (_, exporter, dispatch) = otel();
    let _default = tracing::dispatcher::set_default(dispatch);
    let layer = tower_http::trace::TraceLayer::new_for_http()
        .make_span_with(make_span as fn(&Request<String>) -> tracing::Span);
    let service = RefCell::new(layer.layer(Hello));
    bencher
        .with_inputs(|| {
            exporter.reset();
            request(case)
        })
        .bench_local_values(|req| one(&service, req));
    let kept = exporter.get_finished_spans().unwrap().len();
    assert_eq!(kept > 0, case == "sampled", "{case}: {kept} spans");
}

fn outgoing() -> Request<String> {
    Request::get("http://backend.internal:8080/items/42")
        .body(String::new())
        .unwrap()
}

#[divan::bench]
fn client_plain(bencher: divan::Bencher<'_, '_>) {
    let service = RefCell::new(Hello);
    bencher
        .with_inputs(outgoing)
        .bench_local_values(|req| one(&service, req));
}

#[divan::bench(args = CASES)]
fn client_tracer(bencher: divan::Bencher<'_, '_>, case: &str) {
    let (tracer, mem) = tracer_in_memory();
    let service = RefCell::new(ClientLayer::new().tracer(tracer.clone()).layer(Hello));
    // The handler's SERVER span, current around each call.
    let parent = tracer_core::propagation::extract(request(case).headers()).unwrap();
    let server = tracer
        .span_builder("GET /users/{id}")
        .parent(parent)
        .start();
    let _current = server.enter();
    bencher
        .with_inputs(|| {
            mem.take();
            outgoing()
        })
        .bench_local_values(|req| one(&service, req));
}
