//! The server layer: a SERVER span per request, continuing the caller's trace.

use super::{
    method_name, protocol_version, record_method, split_host_port, tracer_or_global,
    ResponseFuture, TracedBody,
};
use crate::propagation;
use crate::span::{Span, SpanKind};
use crate::tracer::Tracer;
use http::header::{HOST, USER_AGENT};
use http::{Request, Response};
use std::borrow::Cow;
use std::fmt;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Names the route template a request matched (`/users/{id}`), for the span
/// name and `http.route`: what the framework routed by, which the layer
/// cannot see for itself.
///
/// Implemented by every `Fn(&Request<B>) -> Option<Cow<'_, str>> + Clone`,
/// such as a plain `fn` reading the framework's request extension (see
/// [`ServerLayer::route`]), and by [`NoRoute`].
pub trait RouteFn<B>: Clone {
    /// The route of `request`, if known.
    fn route<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>>;
}

impl<B, F> RouteFn<B> for F
where
    F: Fn(&Request<B>) -> Option<Cow<'_, str>> + Clone,
{
    #[inline]
    fn route<'r>(&self, request: &'r Request<B>) -> Option<Cow<'r, str>> {
        self(request)
    }
}

/// No route hook: spans are named after the request's path.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoute;

impl<B> RouteFn<B> for NoRoute {
    #[inline]
    fn route<'r>(&self, _request: &'r Request<B>) -> Option<Cow<'r, str>> {
        None
    }
}

/// A [`Layer`] that traces the requests of an HTTP server: see the
/// [module documentation](super) for what it records.
///
/// The span is named `"{method} {route}"` when a [route](Self::route) is
/// known, else `"{method} {path}"`.
#[derive(Clone)]
pub struct ServerLayer<R = NoRoute> {
    tracer: Option<Tracer>,
    route: R,
}

impl ServerLayer {
    /// A layer recording with the process-wide tracer, naming spans after
    /// the request path.
    pub fn new() -> Self {
        ServerLayer {
            tracer: None,
            route: NoRoute,
        }
    }
}

impl Default for ServerLayer {
    fn default() -> Self {
        ServerLayer::new()
    }
}

impl<R> ServerLayer<R> {
    /// Records with `tracer` (its sampler decides) instead of the
    /// process-wide tracer.
    pub fn tracer(mut self, tracer: Tracer) -> Self {
        self.tracer = Some(tracer);
        self
    }

    /// Names spans after the route the framework matched, given by `route`
    /// (also recorded as `http.route`); a request for which it returns
    /// `None` is named after its path. With axum (whose `Router::layer`
    /// runs the layer after routing, with the route in the request's
    /// extensions):
    ///
    /// ```ignore
    /// fn matched_path(req: &Request<axum::body::Body>) -> Option<Cow<'_, str>> {
    ///     req.extensions().get::<axum::extract::MatchedPath>().map(|p| p.as_str().into())
    /// }
    /// let app = Router::new()
    ///     .route("/users/{id}", get(user))
    ///     .layer(ServerLayer::new().route(matched_path));
    /// ```
    pub fn route<F>(self, route: F) -> ServerLayer<F> {
        ServerLayer {
            tracer: self.tracer,
            route,
        }
    }
}

impl<R> fmt::Debug for ServerLayer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("tracer", &self.tracer)
            .field("route", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R: Clone> Layer<S> for ServerLayer<R> {
    type Service = ServerService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerService {
            inner,
            tracer: self.tracer.clone(),
            route: self.route.clone(),
        }
    }
}

/// The service [`ServerLayer`] makes: the inner service, traced.
#[derive(Clone)]
pub struct ServerService<S, R = NoRoute> {
    inner: S,
    tracer: Option<Tracer>,
    route: R,
}

impl<S, R> ServerService<S, R> {
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

impl<S: fmt::Debug, R> fmt::Debug for ServerService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerService")
            .field("inner", &self.inner)
            .field("tracer", &self.tracer)
            .field("route", &std::any::type_name::<R>())
            .finish()
    }
}

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for ServerService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    R: RouteFn<ReqBody>,
{
    type Response = Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // No valid traceparent (none, two, or one that does not parse):
        // a new trace, whatever span may be current on this thread.
        let parent = propagation::extract(request.headers()).ok();
        let mut span = tracer_or_global(&self.tracer)
            .span_builder(method_name(request.method()))
            .kind(SpanKind::Server)
            .parent_or_root(parent)
            .start();
        if span.is_recording() {
            describe_request(&mut span, &request, &self.route);
        }
        let future = {
            let _current = span.enter();
            self.inner.call(request)
        };
        ResponseFuture::new(future, span, false)
    }
}

/// The name and request attributes of a recording SERVER span.
#[inline(never)]
fn describe_request<B>(span: &mut Span, request: &Request<B>, route: &impl RouteFn<B>) {
    let method = method_name(request.method());
    let uri = request.uri();
    let route = route.route(request);
    let target = route.as_deref().unwrap_or(uri.path());
    span.update_name(format!("{method} {target}"));
    record_method(span, request.method());
    span.set_attribute("url.path", uri.path().to_owned());
    if let Some(query) = uri.query() {
        span.set_attribute("url.query", query.to_owned());
    }
    // An origin-form target (HTTP/1.1) has no scheme, and whether the
    // connection was TLS is not in the request: `http` unless the URI
    // says otherwise.
    let scheme: Cow<'static, str> = match uri.scheme_str() {
        None | Some("http") => "http".into(),
        Some("https") => "https".into(),
        Some(other) => other.to_owned().into(),
    };
    span.set_attribute("url.scheme", scheme);
    if let Some(route) = route {
        span.set_attribute("http.route", route.into_owned());
    }
    // HTTP/2's `:authority` is the URI's; HTTP/1.1 sends `Host`.
    let authority = uri
        .authority()
        .map(|a| a.as_str().rsplit('@').next().unwrap_or_default())
        .or_else(|| request.headers().get(HOST).and_then(|h| h.to_str().ok()));
    if let Some(authority) = authority {
        let (host, port) = split_host_port(authority);
        if !host.is_empty() {
            span.set_attribute("server.address", host.to_owned());
        }
        if let Some(port) = port {
            span.set_attribute("server.port", port);
        }
    }
    if let Some(version) = protocol_version(request.version()) {
        span.set_attribute("network.protocol.version", version);
    }
    if let Some(agent) = request
        .headers()
        .get(USER_AGENT)
        .and_then(|h| h.to_str().ok())
    {
        span.set_attribute("user_agent.original", agent.to_owned());
    }
}
