//! The client layer: a CLIENT span per outgoing request, its context
//! injected into the request.

use super::TracedBody;
use super::{method_name, record_method, split_host_port, tracer_or_global, ResponseFuture};
use crate::propagation;
use crate::span::{Span, SpanKind};
use crate::tracer::Tracer;
use http::header::HOST;
use http::{Request, Response};
use std::fmt;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// A [`Layer`] that traces the requests an HTTP client sends: see the
/// [module documentation](super) for what it records.
///
/// Each request gets a CLIENT span, a child of the span current when the
/// request is made (`call`), whose context is written into the request's
/// `traceparent` and `tracestate` headers (replacing any there), sampled or
/// not. The span is named `"{method}"`, as the semantic conventions ask of
/// a client, which knows no route template (`"HTTP"` for a method outside
/// their list); the URL is in `url.full`. It ends when the response body
/// has been read to its end or dropped, or when the request fails.
///
/// With hyper-util's client:
///
/// ```ignore
/// let client = tower::ServiceBuilder::new()
///     .layer(ClientLayer::new())
///     .service(hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientLayer {
    tracer: Option<Tracer>,
}

impl ClientLayer {
    /// A layer recording with the process-wide tracer.
    pub fn new() -> Self {
        ClientLayer { tracer: None }
    }

    /// Records with `tracer` (its sampler decides) instead of the
    /// process-wide tracer.
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientService {
            inner,
            tracer: self.tracer.clone(),
        }
    }
}

/// The service [`ClientLayer`] makes: the inner client, traced.
#[derive(Clone, Debug)]
pub struct ClientService<S> {
    inner: S,
    tracer: Option<Tracer>,
}

impl<S> ClientService<S> {
    /// The service inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The service inside, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The service inside, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let mut span = tracer_or_global(&self.tracer)
            .span_builder(method_name(request.method()))
            .kind(SpanKind::Client)
            .start();
        if span.is_recording() {
            describe_request(&mut span, &request);
        }
        propagation::inject(span.context(), request.headers_mut());
        let future = {
            let _current = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, true)
    }
}

/// The request attributes of a recording CLIENT span.
#[inline(never)]
fn describe_request<B>(span: &mut Span, request: &Request<B>) {
    record_method(span, request.method());
    let uri = request.uri();
    let scheme = uri.scheme_str().unwrap_or("http");
    // An absolute URI names the server; a relative one leaves it to `Host`.
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()))
        .unwrap_or_default();
    // `url.full` must not carry credentials (semantic conventions, `url.full`).
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((_, host_port)) => ("REDACTED:REDACTED@", host_port),
        None => ("", authority),
    };
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    span.set_attribute(
        "url.full",
        format!("{scheme}://{credentials}{host_port}{path_and_query}"),
    );
    let (host, port) = split_host_port(host_port);
    if !host.is_empty() {
        span.set_attribute("server.address", host.to_owned());
    }
    let port = port.or(match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    });
    if let Some(port) = port {
        span.set_attribute("server.port", port);
    }
}
