//! Two HTTP services traced end to end by tracer-core's tower layers:
//! `frontend` answers the outside world and calls `backend` over HTTP.
//!
//! - Both are axum routers with [`ServerLayer`], which names each SERVER
//!   span after the route axum matched ([`matched_path`]).
//! - The frontend calls the backend through hyper-util's client wrapped in
//!   [`ClientLayer`] ([`Client`]): a CLIENT span per call, its context in
//!   the request's `traceparent`.
//!
//! So a request to the frontend is one trace: the frontend's SERVER span,
//! its CLIENT span, and the backend's SERVER span under that.
//!
//! The backend's routes:
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /items/{id}` | 200, `item {id}` |
//! | `GET /broken` | 500 from the handler |
//! | `GET /fail` | the service fails ([`BackendError`]); axum's `HandleError` turns that into a 500 |
//! | `GET /echo` | 200, the `traceparent` and `tracestate` it received, one a line |
//! | anything else | 404 |
//!
//! The frontend's: `GET /checkout/{id}` (calls `/items/{id}`) and
//! `GET /proxy/{*path}` (calls `/{path}` and answers what the backend did).

use axum::body::{Body, Bytes};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{MatchedPath, Path, State};
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tracer_core::tower::{ClientLayer, ClientService, ServerLayer};
use tracer_core::Tracer;

/// The route axum matched (`/items/{id}`), for the SERVER span's name and
/// `http.route`. Axum puts it in the request's extensions before it calls
/// a route's service, which is where `Router::layer` puts the layer.
pub fn matched_path(request: &Request<Body>) -> Option<Cow<'_, str>> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| Cow::Borrowed(p.as_str()))
}

/// The route hook's type, [`matched_path`] as a plain `fn`.
type RouteHook = for<'r> fn(&'r Request<Body>) -> Option<Cow<'r, str>>;

/// The server layer both services use.
fn server_layer(tracer: Tracer) -> ServerLayer<RouteHook> {
    ServerLayer::new()
        .tracer(tracer)
        .route(matched_path as RouteHook)
}

/// The error of the backend's failing route.
#[derive(Debug)]
pub struct BackendError(&'static str);

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BackendError {}

/// The backend, its spans recorded with `tracer`.
pub fn backend(tracer: Tracer) -> Router {
    let traced = server_layer(tracer);
    // A service that fails, rather than answering with an error status:
    // the layer sits right around it, so it sees the error, and
    // `HandleError` (outside) turns it into the 500 that axum requires.
    let failing = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|e: BackendError| async move {
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }))
        .layer(traced.clone())
        .service_fn(|_: Request<Body>| async {
            Err::<Response<Body>, _>(BackendError("the inventory is unreachable"))
        });
    Router::new()
        .route("/items/{id}", get(item))
        .route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken on purpose") }),
        )
        .route("/echo", get(echo))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such thing") })
        // Every route above, and the fallback: after routing, so that
        // `MatchedPath` is there.
        .layer(traced)
        // Added after `layer`, so traced by its own layer only.
        .route_service("/fail", failing)
}

async fn item(Path(id): Path<u32>) -> String {
    format!("item {id}")
}

async fn echo(headers: HeaderMap) -> String {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    format!("{}\n{}", header("traceparent"), header("tracestate"))
}

/// hyper-util's client, traced: a CLIENT span per request, its context
/// injected into the request's headers.
pub type Client = ClientService<hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>>;

/// A traced client recording with `tracer`.
pub fn client(tracer: Tracer) -> Client {
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    ClientLayer::new().tracer(tracer).layer(http)
}

#[derive(Clone)]
struct Frontend {
    client: Client,
    backend: Uri,
}

impl Frontend {
    /// GETs `path` from the backend: its status and body, or 502 when it
    /// cannot be reached. Reading the body to its end ends the CLIENT span.
    async fn call(&self, path: &str) -> (StatusCode, String) {
        let uri = format!("{}{}", self.backend.to_string().trim_end_matches('/'), path);
        let request = Request::get(uri)
            .body(Empty::new())
            .expect("a valid request");
        let response = match self.client.clone().oneshot(request).await {
            Ok(r) => r,
            Err(e) => return (StatusCode::BAD_GATEWAY, format!("backend: {e}")),
        };
        let status = response.status();
        match response.into_body().collect().await {
            Ok(body) => (
                status,
                String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            ),
            Err(e) => (StatusCode::BAD_GATEWAY, format!("backend body: {e}")),
        }
    }
}

/// The frontend, calling the backend at `backend` (`http://host:port`),
/// its spans recorded with `tracer`.
pub fn frontend(tracer: Tracer, backend: Uri) -> Router {
    let state = Frontend {
        client: client(tracer.clone()),
        backend,
    };
    Router::new()
        .route("/checkout/{id}", get(checkout))
        .route("/proxy/{*path}", get(proxy))
        .with_state(state)
        .layer(server_layer(tracer))
}

async fn checkout(State(front): State<Frontend>, Path(id): Path<u32>) -> (StatusCode, String) {
    // Some work before the call (a cart to load, say): other requests run
    // on this thread meanwhile, and when this resumes its own SERVER span
    // is current again, so the CLIENT span below is its child.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    match front.call(&format!("/items/{id}")).await {
        (StatusCode::OK, item) => (StatusCode::OK, format!("order for {item}")),
        (status, why) => (StatusCode::BAD_GATEWAY, format!("backend {status}: {why}")),
    }
}

async fn proxy(State(front): State<Frontend>, Path(path): Path<String>) -> (StatusCode, String) {
    front.call(&format!("/{path}")).await
}

/// Serves `router` on `addr` (port 0: any free port) in a task of its own;
/// returns the address bound and the task.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("http-services: server on {bound} stopped: {e}");
        }
    });
    Ok((bound, task))
}

/// Both services on loopback, ports chosen by the system: the backend's
/// address, then the frontend's.
pub async fn serve_both(
    frontend_tracer: Tracer,
    backend_tracer: Tracer,
) -> std::io::Result<(SocketAddr, SocketAddr)> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let (back, _) = serve(backend(backend_tracer), loopback).await?;
    let backend_uri: Uri = format!("http://{back}").parse().expect("a valid URI");
    let (front, _) = serve(frontend(frontend_tracer, backend_uri), loopback).await?;
    Ok((back, front))
}
