//! Automatic spans for HTTP services and clients built on
//! [`tower`](https://docs.rs/tower) and the [`http`] crate's types (feature
//! `tower`): axum, hyper, tonic, and any `tower::Service<http::Request<B>>`.
//!
//! - [`ServerLayer`] wraps a server: per request, the W3C context is
//!   extracted from the `traceparent`/`tracestate` headers, a SERVER span
//!   named `"{method} {route}"` is opened (a child of the caller's span, or
//!   a new trace's root when there is no valid `traceparent`), kept current
//!   while the service's future runs, and ended when the response body has
//!   been sent to its end or dropped ([`TracedBody`]).
//! - [`ClientLayer`] wraps a client: per outgoing request, a CLIENT span
//!   named `"{method}"`, a child of the current span, whose context is
//!   injected into the request's headers; it ends with the response body.
//!
//! Both take their spans from a [`Tracer`] (by default the
//! process-wide one, [`global::tracer`](crate::global::tracer), looked up
//! per request, so a layer can be built before the tracer is installed)
//! and ask its sampler. An unsampled request costs a context extraction, a
//! span id and an injection: no attribute, name or other string is built,
//! and the unsampled context (`traceparent` flags `00`) still goes
//! downstream, so that the services after this one decide alike.
//!
//! The attributes are OpenTelemetry's HTTP semantic conventions (stable,
//! v1.23 and later):
//!
//! | attribute | server | client |
//! | --- | --- | --- |
//! | `http.request.method` (`_OTHER` for a method outside RFC 9110 and PATCH, the original in `http.request.method_original`) | yes | yes |
//! | `url.path`, `url.query` (when there is one), `url.scheme` | yes | |
//! | `url.full` (credentials redacted) | | yes |
//! | `http.route` (when a [route](ServerLayer::route) is known) | yes | |
//! | `server.address`, `server.port` (from the URI's authority, else the `Host` header) | yes | yes |
//! | `network.protocol.version`, `user_agent.original` | yes | |
//! | `http.response.status_code` | yes | yes |
//! | `error.type`: the status code for a 5xx (a client: 4xx too), the error's type name for a service or body error | yes | yes |
//!
//! Span status is ERROR on a 5xx response (a client's also on a 4xx, as the
//! conventions ask) and on an error of the service or of the body, which is
//! also recorded as an `exception` event.
//!
//! # Example
//!
//! A hand-written service, so that no framework is needed; with axum, it
//! is `Router::new().route(...).layer(ServerLayer::new().route(matched_path))`
//! (see [`ServerLayer::route`]).
//!
//! ```
//! use std::convert::Infallible;
//! use std::future::{ready, Future, Ready};
//! use std::sync::Arc;
//! use std::task::{Context, Poll, Waker};
//! use http::{Request, Response, StatusCode};
//! use tower_layer::Layer;
//! use tower_service::Service;
//! use tracer_core::tower::ServerLayer;
//! use tracer_core::{InMemoryExporter, Sampler, SpanKind, Tracer};
//!
//! struct Hello;
//! impl Service<Request<String>> for Hello {
//!     type Response = Response<String>;
//!     type Error = Infallible;
//!     type Future = Ready<Result<Response<String>, Infallible>>;
//!     fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
//!         Poll::Ready(Ok(()))
//!     }
//!     fn call(&mut self, req: Request<String>) -> Self::Future {
//!         // The SERVER span is current here and while the future runs.
//!         assert!(tracer_core::current().is_some());
//!         ready(Ok(Response::new(format!("hello {}", req.uri().path()))))
//!     }
//! }
//!
//! let spans = Arc::new(InMemoryExporter::new());
//! let tracer = Tracer::new(Sampler::AlwaysOn, spans.clone());
//! let mut service = ServerLayer::new().tracer(tracer).layer(Hello);
//!
//! let request = Request::get("/users/7")
//!     .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
//!     .body(String::new())
//!     .unwrap();
//! let mut call = std::pin::pin!(service.call(request));
//! let mut cx = Context::from_waker(Waker::noop());
//! let Poll::Ready(Ok(response)) = call.as_mut().poll(&mut cx) else { unreachable!() };
//! assert_eq!(response.status(), StatusCode::OK);
//! drop(response); // the body was sent (or dropped): the span ends
//!
//! let span = spans.take().pop().unwrap();
//! assert_eq!(span.name, "GET /users/7"); // no route known: the path
//! assert_eq!(span.kind, SpanKind::Server);
//! assert_eq!(span.context.trace_id().to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert_eq!(span.parent_span_id.unwrap().to_hex(), "00f067aa0ba902b7");
//! assert_eq!(span.attribute("http.response.status_code"), Some(&200_i64.into()));
//! ```

mod body;
mod client;
mod future;
mod headers;
mod server;

pub use body::TracedBody;
pub use client::{ClientLayer, ClientService};
pub use future::ResponseFuture;
pub use server::{NoRoute, RouteFn, ServerLayer, ServerService};

use crate::span::{Span, Status};
use crate::tracer::Tracer;
use http::{Method, StatusCode, Version};
use std::borrow::Cow;
use std::fmt;

/// The tracer a layer was given, else the process-wide one (looked up when
/// a request comes, not when the layer is built).
fn tracer_or_global(tracer: &Option<Tracer>) -> &Tracer {
    match tracer {
        Some(t) => t,
        None => crate::global::tracer(),
    }
}

/// The semantic-convention name of a method: the nine of RFC 9110 and
/// RFC 5789 (`PATCH`); any other is `None` (`_OTHER`).
fn known_method(method: &Method) -> Option<&'static str> {
    Some(match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => return None,
    })
}

/// The span name before the sampling decision (and of an unsampled span):
/// the method, or `HTTP` for one outside the conventions' list. Static, so
/// that an unsampled span builds no string.
fn method_name(method: &Method) -> &'static str {
    known_method(method).unwrap_or("HTTP")
}

/// `http.request.method` (and `http.request.method_original` for `_OTHER`).
fn record_method(span: &mut Span, method: &Method) {
    match known_method(method) {
        Some(m) => span.set_attribute("http.request.method", m),
        None => {
            span.set_attribute("http.request.method", "_OTHER");
            span.set_attribute("http.request.method_original", method.as_str().to_owned());
        }
    }
}

/// `network.protocol.version` as the conventions spell it.
fn protocol_version(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

/// A `host[:port]` (a `Host` header, an authority without credentials)
/// split in two; an IPv6 literal loses its brackets.
fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (s, None),
        };
    }
    match s.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (s, None),
        },
        None => (s, None),
    }
}

/// `http.response.status_code`, and for a failure `error.type` (the code)
/// and status ERROR. A server fails on 5xx; a client on 4xx too
/// (semantic conventions, "Status").
fn record_status(span: &mut Span, status: StatusCode, client: bool) {
    if !span.is_recording() {
        return;
    }
    span.set_attribute("http.response.status_code", status.as_u16());
    if status.is_server_error() || (client && status.is_client_error()) {
        span.set_attribute("error.type", status.as_str().to_owned());
        // The conventions leave the description empty when the status
        // code says it all.
        span.set_status(Status::Error(Cow::Borrowed("")));
    }
}

/// An error of a service or a body: `error.type` is the error's type name,
/// and an `exception` event with its message; status ERROR.
fn record_error<E: fmt::Display>(span: &mut Span, error: &E) {
    if span.is_recording() {
        span.set_attribute("error.type", std::any::type_name::<E>());
        span.record_error(error);
    }
}

#[cfg(test)]
mod tests;
