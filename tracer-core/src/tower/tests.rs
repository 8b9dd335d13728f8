//! The layers over hand-written services, polled by hand: names,
//! attributes, status, parentage, the current span, and when spans end.

use super::*;
use crate::{current, InMemoryExporter, Sampler, SpanContext, SpanData, SpanKind, Value};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use tower_layer::Layer;
use tower_service::Service;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TP_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

fn tracer(sampler: Sampler) -> (Tracer, Arc<InMemoryExporter>) {
    let mem = Arc::new(InMemoryExporter::new());
    (Tracer::new(sampler, mem.clone()), mem)
}

/// Polls to completion with a waker that does nothing (the futures here
/// are ready on their second poll at the latest).
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Reads a body to its end, returning its data frames' count.
fn drain<B: Body + Unpin>(mut body: B) -> Result<usize, B::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    let mut frames = 0;
    loop {
        match Pin::new(&mut body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(_))) => frames += 1,
            Poll::Ready(Some(Err(e))) => return Err(e),
            Poll::Ready(None) => return Ok(frames),
            Poll::Pending => {}
        }
    }
}

/// What the handler saw of the current span: in `call`, and on each poll.
type Seen = Arc<Mutex<Vec<Option<SpanContext>>>>;

/// A future that is pending once, recording the current span on each poll.
struct Later<T> {
    value: Option<T>,
    polled: bool,
    seen: Seen,
}

impl<T: Unpin> Future for Later<T> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        self.seen.lock().unwrap().push(current());
        if !self.polled {
            self.polled = true;
            return Poll::Pending;
        }
        Poll::Ready(self.value.take().expect("polled after ready"))
    }
}

/// A service answering each request with `answer(request)`, one poll late.
#[derive(Clone)]
struct Handler<F> {
    answer: F,
    seen: Seen,
}

fn handler<F, B, E>(answer: F) -> Handler<F>
where
    F: FnMut(Request<String>) -> Result<Response<B>, E>,
{
    Handler {
        answer,
        seen: Seen::default(),
    }
}

impl<F, B, E> Service<Request<String>> for Handler<F>
where
    F: FnMut(Request<String>) -> Result<Response<B>, E>,
    B: Unpin,
    E: Unpin,
{
    type Response = Response<B>;
    type Error = E;
    type Future = Later<Result<Response<B>, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<String>) -> Self::Future {
        self.seen.lock().unwrap().push(current());
        Later {
            value: Some((self.answer)(request)),
            polled: false,
            seen: self.seen.clone(),
        }
    }
}

fn ok(body: &str) -> Result<Response<String>, Infallible> {
    Ok(Response::new(body.to_owned()))
}

fn status(code: u16) -> Result<Response<String>, Infallible> {
    let mut r = Response::new(String::new());
    *r.status_mut() = StatusCode::from_u16(code).unwrap();
    Ok(r)
}

fn get(uri: &str) -> http::request::Builder {
    Request::get(uri)
}

fn only(mem: &InMemoryExporter) -> SpanData {
    let mut spans = mem.take();
    assert_eq!(spans.len(), 1, "{spans:#?}");
    spans.pop().unwrap()
}

fn s(v: &str) -> Value {
    Value::String(v.to_owned().into())
}

fn route_of(req: &Request<String>) -> Option<std::borrow::Cow<'_, str>> {
    req.extensions()
        .get::<&'static str>()
        .map(|r| std::borrow::Cow::Borrowed(*r))
}

#[test]
fn a_server_span_continues_the_callers_trace_and_is_current_while_the_service_runs() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let inner = handler(|_| ok("hi"));
    let seen = inner.seen.clone();
    let mut svc = ServerLayer::new().tracer(t).layer(inner);
    let req = get("/users/7?full=1")
        .header("traceparent", TP)
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("host", "shop.example:8080")
        .header("user-agent", "curl/8")
        .body(String::new())
        .unwrap();
    assert!(current().is_none());
    let response = block_on(svc.call(req)).unwrap();
    assert!(current().is_none(), "nothing left current after the poll");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "call and two polls");
    let ctx = seen[0].clone().expect("current in call");
    assert!(seen.iter().all(|c| c.as_ref() == Some(&ctx)));
    assert!(mem.take().is_empty(), "the span ends with the body");
    assert_eq!(drain(response.into_body()).unwrap(), 1);

    let span = only(&mem);
    assert_eq!(span.context, ctx);
    assert_eq!(span.name, "GET /users/7");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(
        span.context.trace_id().to_hex(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(span.parent_span_id.unwrap().to_hex(), "00f067aa0ba902b7");
    assert_eq!(span.context.trace_state().header(), "congo=t61rcWkgMzE");
    assert_eq!(span.status, Status::Unset);
    for (k, v) in [
        ("http.request.method", s("GET")),
        ("url.path", s("/users/7")),
        ("url.query", s("full=1")),
        ("url.scheme", s("http")),
        ("server.address", s("shop.example")),
        ("server.port", Value::I64(8080)),
        ("network.protocol.version", s("1.1")),
        ("user_agent.original", s("curl/8")),
        ("http.response.status_code", Value::I64(200)),
    ] {
        assert_eq!(span.attribute(k), Some(&v), "{k}");
    }
    assert_eq!(span.attribute("http.route"), None);
    assert_eq!(span.attribute("error.type"), None);
}

#[test]
fn the_route_hook_names_the_span_and_sets_http_route() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new()
        .tracer(t)
        .route(route_of)
        .layer(handler(|_| ok("")));
    let mut req = Request::post("/users/7").body(String::new()).unwrap();
    req.extensions_mut().insert("/users/{id}");
    drop(block_on(svc.call(req)).unwrap());
    let span = only(&mem);
    assert_eq!(span.name, "POST /users/{id}");
    assert_eq!(span.attribute("http.route"), Some(&s("/users/{id}")));
    assert_eq!(span.attribute("url.path"), Some(&s("/users/7")));
    // The hook saying nothing: the path.
    drop(block_on(svc.call(get("/other").body(String::new()).unwrap())).unwrap());
    let span = only(&mem);
    assert_eq!(span.name, "GET /other");
    assert_eq!(span.attribute("http.route"), None);
}

#[test]
fn an_invalid_or_duplicated_traceparent_restarts_the_trace() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new()
        .tracer(t.clone())
        .layer(handler(|_| ok("")));
    // Even inside another span: a server span is a remote child or a root.
    let outer = t.start("outer").entered();
    for headers in [
        vec!["00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"],
        vec!["garbage"],
        vec![TP, TP],
    ] {
        let mut req = get("/").body(String::new()).unwrap();
        for h in headers {
            req.headers_mut()
                .append("traceparent", HeaderValue::from_static(h));
        }
        drop(block_on(svc.call(req)).unwrap());
        let span = only(&mem);
        assert_eq!(span.parent_span_id, None, "a root");
        assert_ne!(
            span.context.trace_id().to_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(span.context.trace_id(), outer.context().trace_id());
        assert!(
            span.context.flags().is_random(),
            "a trace this library made"
        );
    }
}

#[test]
fn server_errors_fail_the_span_client_errors_do_not() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut code = 0;
    let mut svc = ServerLayer::new().tracer(t).layer(handler(move |_| {
        code += 1;
        status([500, 503, 404, 302][code - 1])
    }));
    for (want, error) in [
        (500, Some("500")),
        (503, Some("503")),
        (404, None),
        (302, None),
    ] {
        drop(block_on(svc.call(get("/x").body(String::new()).unwrap())).unwrap());
        let span = only(&mem);
        assert_eq!(
            span.attribute("http.response.status_code"),
            Some(&Value::I64(want))
        );
        assert_eq!(span.attribute("error.type"), error.map(s).as_ref());
        let failed = matches!(span.status, Status::Error(_));
        assert_eq!(failed, error.is_some(), "{want}");
    }
}

#[derive(Debug)]
struct Overloaded;
impl fmt::Display for Overloaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many requests in flight")
    }
}

#[test]
fn a_service_error_is_recorded_and_ends_the_span() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new()
        .tracer(t)
        .layer(handler(|_| Err::<Response<String>, _>(Overloaded)));
    let err = block_on(svc.call(get("/x").body(String::new()).unwrap())).unwrap_err();
    assert_eq!(err.to_string(), "too many requests in flight");
    let span = only(&mem);
    let type_name = std::any::type_name::<Overloaded>();
    assert!(type_name.ends_with("tests::Overloaded"), "{type_name}");
    assert_eq!(span.attribute("error.type"), Some(&s(type_name)));
    assert_eq!(
        span.status,
        Status::Error("too many requests in flight".into())
    );
    assert_eq!(span.events[0].name, "exception");
    assert_eq!(span.attribute("http.response.status_code"), None);
}

/// A body of two frames, the second an error when `fail`.
struct Chunks {
    left: u8,
    fail: bool,
}

impl Body for Chunks {
    type Data = &'static [u8];
    type Error = Overloaded;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<&'static [u8]>, Overloaded>>> {
        Poll::Ready(match self.left {
            0 => None,
            1 if self.fail => {
                self.left = 0;
                Some(Err(Overloaded))
            }
            _ => {
                self.left -= 1;
                Some(Ok(Frame::data(&b"chunk"[..])))
            }
        })
    }
}

#[test]
fn the_span_ends_when_the_body_ends_or_fails_or_is_dropped() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut fail = false;
    let mut svc = ServerLayer::new().tracer(t).layer(handler(move |_| {
        let body = Chunks { left: 2, fail };
        fail = true;
        Ok::<_, Infallible>(Response::new(body))
    }));
    // To its end: the span is current while frames are polled, and ends
    // with the last.
    let mut body = block_on(svc.call(get("/a").body(String::new()).unwrap()))
        .unwrap()
        .into_body();
    let ctx = body.span().unwrap().context().clone();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(
        Pin::new(&mut body).poll_frame(&mut cx),
        Poll::Ready(Some(Ok(_)))
    ));
    assert!(mem.take().is_empty(), "one frame to go");
    assert_eq!(drain(&mut body).unwrap(), 1);
    let span = only(&mem);
    assert_eq!(span.context, ctx);
    assert_eq!(span.status, Status::Unset);
    drop(body);
    assert!(mem.take().is_empty(), "ended once");

    // Failing mid-stream.
    let body = block_on(svc.call(get("/b").body(String::new()).unwrap()))
        .unwrap()
        .into_body();
    assert!(drain(body).is_err());
    let span = only(&mem);
    assert_eq!(
        span.attribute("error.type"),
        Some(&s(std::any::type_name::<Overloaded>()))
    );
    assert!(matches!(span.status, Status::Error(_)));

    // Dropped unread.
    let response = block_on(svc.call(get("/c").body(String::new()).unwrap())).unwrap();
    assert!(mem.take().is_empty());
    drop(response);
    assert_eq!(only(&mem).name, "GET /c");
}

#[test]
fn a_dropped_future_ends_the_span() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new().tracer(t).layer(handler(|_| ok("")));
    let mut future = Box::pin(svc.call(get("/slow").body(String::new()).unwrap()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert!(mem.take().is_empty());
    drop(future);
    let span = only(&mem);
    assert_eq!(span.attribute("http.response.status_code"), None);
}

#[test]
fn an_unsampled_request_records_nothing_and_its_context_is_current() {
    let (t, mem) = tracer(Sampler::default()); // parent-based: follows the 00
    let inner = handler(|_| ok(""));
    let seen = inner.seen.clone();
    let mut svc = ServerLayer::new().tracer(t).route(route_of).layer(inner);
    let req = get("/users/7")
        .header("traceparent", TP_UNSAMPLED)
        .body(String::new())
        .unwrap();
    let response = block_on(svc.call(req)).unwrap();
    let body = response.into_body();
    let span = body.span().unwrap();
    assert!(!span.is_recording());
    assert_eq!(span.context().trace_id().to_hex(), TP[3..35]);
    drain(body).unwrap();
    assert!(mem.take().is_empty());
    let ctx = seen.lock().unwrap()[0].clone().unwrap();
    assert!(!ctx.is_sampled());
    assert_eq!(ctx.trace_id().to_hex(), TP[3..35]);
}

#[test]
fn methods_outside_the_list_are_other() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new().tracer(t).layer(handler(|_| ok("")));
    let req = Request::builder()
        .method("PURGE")
        .uri("/cache")
        .body(String::new())
        .unwrap();
    drop(block_on(svc.call(req)).unwrap());
    let span = only(&mem);
    assert_eq!(span.name, "HTTP /cache");
    assert_eq!(span.attribute("http.request.method"), Some(&s("_OTHER")));
    assert_eq!(
        span.attribute("http.request.method_original"),
        Some(&s("PURGE"))
    );
}

#[test]
fn the_server_address_comes_from_the_authority_else_the_host_header() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new().tracer(t).layer(handler(|_| ok("")));
    // uri, Host header, server.address, server.port, url.scheme
    type Case = (
        &'static str,
        Option<&'static str>,
        &'static str,
        Option<i64>,
        &'static str,
    );
    let cases: [Case; 4] = [
        (
            "https://api.example/x",
            Some("ignored:1"),
            "api.example",
            None,
            "https",
        ),
        ("/x", Some("[::1]:3000"), "::1", Some(3000), "http"),
        ("/x", Some("localhost"), "localhost", None, "http"),
        (
            "http://u:p@h.example:81/x",
            None,
            "h.example",
            Some(81),
            "http",
        ),
    ];
    for (uri, host, address, port, scheme) in cases {
        let mut req = get(uri).body(String::new()).unwrap();
        if let Some(h) = host {
            req.headers_mut()
                .insert("host", HeaderValue::from_static(h));
        }
        drop(block_on(svc.call(req)).unwrap());
        let span = only(&mem);
        assert_eq!(span.attribute("server.address"), Some(&s(address)), "{uri}");
        assert_eq!(span.attribute("server.port"), port.map(Value::I64).as_ref());
        assert_eq!(span.attribute("url.scheme"), Some(&s(scheme)));
    }
}

/// The requests a client sent.
type Sent = Arc<Mutex<Vec<Request<String>>>>;

/// A client that records the request it was given and answers `code`.
#[allow(clippy::type_complexity)]
fn client_inner(
    code: u16,
) -> (
    Handler<impl FnMut(Request<String>) -> Result<Response<String>, Infallible> + Clone>,
    Sent,
) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let h = handler(move |req: Request<String>| {
        log.lock().unwrap().push(req);
        status(code)
    });
    (h, sent)
}

#[test]
fn a_client_span_is_a_child_of_the_current_span_and_is_injected() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let (inner, sent) = client_inner(200);
    let seen = inner.seen.clone();
    let mut client = ClientLayer::new().tracer(t.clone()).layer(inner);
    let parent = t.start("handler").entered();
    let req = get("http://user:secret@backend.internal/items/7?x=1")
        .header(
            "traceparent",
            "00-00000000000000000000000000000001-0000000000000001-01",
        )
        .body(String::new())
        .unwrap();
    let response = block_on(client.call(req)).unwrap();
    let seen = seen.lock().unwrap().clone();
    let ctx = seen[0].clone().expect("the client span is current in call");
    assert!(seen.iter().all(|c| c.as_ref() == Some(&ctx)));
    drop(response);
    let span = only(&mem);
    assert_eq!(span.context, ctx);
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.name, "GET");
    assert_eq!(span.parent_span_id, Some(parent.context().span_id()));
    assert_eq!(span.context.trace_id(), parent.context().trace_id());
    let sent = sent.lock().unwrap();
    let tps: Vec<_> = sent[0].headers().get_all("traceparent").iter().collect();
    assert_eq!(tps.len(), 1, "replaced, not appended");
    assert_eq!(tps[0].to_str().unwrap(), crate::Traceparent::format(&ctx));
    for (k, v) in [
        ("http.request.method", s("GET")),
        (
            "url.full",
            s("http://REDACTED:REDACTED@backend.internal/items/7?x=1"),
        ),
        ("server.address", s("backend.internal")),
        ("server.port", Value::I64(80)),
        ("http.response.status_code", Value::I64(200)),
    ] {
        assert_eq!(span.attribute(k), Some(&v), "{k}");
    }
    assert_eq!(span.status, Status::Unset);
}

#[test]
fn a_client_fails_on_4xx_and_5xx() {
    for (code, failed) in [(404, true), (503, true), (201, false)] {
        let (t, mem) = tracer(Sampler::AlwaysOn);
        let (inner, _) = client_inner(code);
        let mut client = ClientLayer::new().tracer(t).layer(inner);
        let req = get("https://api.example:8443/")
            .body(String::new())
            .unwrap();
        drop(block_on(client.call(req)).unwrap());
        let span = only(&mem);
        assert_eq!(span.attribute("server.port"), Some(&Value::I64(8443)));
        assert_eq!(matches!(span.status, Status::Error(_)), failed, "{code}");
        let want = failed.then(|| s(&code.to_string()));
        assert_eq!(span.attribute("error.type"), want.as_ref());
    }
}

#[test]
fn a_client_error_is_recorded() {
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut client = ClientLayer::new()
        .tracer(t)
        .layer(handler(|_| Err::<Response<String>, _>(Overloaded)));
    let req = Request::put("http://a/").body(String::new()).unwrap();
    assert!(block_on(client.call(req)).is_err());
    let span = only(&mem);
    assert_eq!(span.name, "PUT");
    assert_eq!(
        span.attribute("error.type"),
        Some(&s(std::any::type_name::<Overloaded>()))
    );
    assert_eq!(span.events.len(), 1);
}

#[test]
fn an_unsampled_client_records_nothing_and_propagates_flags_00() {
    let (t, mem) = tracer(Sampler::default());
    let (inner, sent) = client_inner(200);
    let mut client = ClientLayer::new().tracer(t).layer(inner);
    let remote =
        crate::propagation::extract(&vec![("traceparent".to_owned(), TP_UNSAMPLED.to_owned())])
            .unwrap();
    let _g = crate::attach(remote);
    let req = get("http://backend/").body(String::new()).unwrap();
    drop(block_on(client.call(req)).unwrap());
    assert!(mem.take().is_empty());
    let sent = sent.lock().unwrap();
    let tp = sent[0].headers()["traceparent"].to_str().unwrap();
    assert!(tp.starts_with(&TP[..36]), "same trace: {tp}");
    assert!(tp.ends_with("-00"), "unsampled: {tp}");
    assert_ne!(&tp[36..52], &TP[36..52], "a span of its own");
}

#[test]
fn server_then_client_chain_in_one_trace() {
    // A server whose handler calls a client: the CLIENT span is the
    // SERVER span's child, and its traceparent names the CLIENT span.
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let (inner, sent) = client_inner(200);
    let client = ClientLayer::new().tracer(t.clone()).layer(inner);
    let mut server = ServerLayer::new()
        .tracer(t)
        .layer(handler(move |_req: Request<String>| {
            let mut c = client.clone();
            let r = block_on(c.call(get("http://b/").body(String::new()).unwrap()));
            drop(r);
            ok("")
        }));
    drop(block_on(server.call(get("/front").body(String::new()).unwrap())).unwrap());
    let spans = mem.take();
    let (client, server) = (&spans[0], &spans[1]);
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, Some(server.context.span_id()));
    assert_eq!(client.context.trace_id(), server.context.trace_id());
    let tp = sent.lock().unwrap()[0].headers()["traceparent"].clone();
    assert_eq!(
        tp.to_str().unwrap(),
        crate::Traceparent::format(&client.context)
    );
}

#[test]
fn the_span_ends_with_the_last_frame_when_the_body_says_so() {
    // A `String` body is at its end once its one frame is out: the span
    // ends then, without waiting for a last poll (which hyper never makes).
    let (t, mem) = tracer(Sampler::AlwaysOn);
    let mut svc = ServerLayer::new()
        .tracer(t)
        .layer(handler(|_| ok("all of it")));
    let mut body = block_on(svc.call(get("/").body(String::new()).unwrap()))
        .unwrap()
        .into_body();
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(
        Pin::new(&mut body).poll_frame(&mut cx),
        Poll::Ready(Some(Ok(_)))
    ));
    assert!(body.is_end_stream());
    assert!(body.span().is_none());
    assert_eq!(only(&mem).name, "GET /");
}
