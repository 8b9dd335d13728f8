//! Two services traced end to end, exported with tracer-core's one-call
//! OTLP setup (the `OTEL_*` environment).
//!
//! ```text
//! http-services [demo]                      both services on loopback, a few requests, exit
//! http-services backend ADDR                the backend alone, until Ctrl-C
//! http-services frontend ADDR BACKEND_URL   the frontend alone, calling BACKEND_URL
//! ```
//!
//! Run as two processes, each exports as its own service (`backend`,
//! `frontend`, or `OTEL_SERVICE_NAME`) to the collector the environment
//! names:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 http-services backend 127.0.0.1:3001 &
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 http-services frontend 127.0.0.1:3000 http://127.0.0.1:3001 &
//! curl 127.0.0.1:3000/checkout/42
//! ```
//!
//! The demo runs both in one process (one service, `http-services`), sends
//! requests through the frontend with a traced client, and prints each
//! request's trace id. With no collector named (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) and no `TRACER_EXPORT_FILE`, it
//! writes the spans to `http-services.jsonl` (OTLP JSON, one request a line).

use http_body_util::{BodyExt, Empty};
use std::env;
use std::net::SocketAddr;
use std::process::ExitCode;
use tower::ServiceExt;
use tracer_core::otlp::{Builder, Guard};
use tracer_core::{global, Tracer};

const USAGE: &str = "usage: http-services [demo | backend ADDR | frontend ADDR BACKEND_URL]";

/// tracer-core's one-call setup, from the `OTEL_*` environment, with this
/// program's defaults for what the environment leaves unset.
fn setup(service: &str, default_file: Option<&str>) -> Result<Guard, String> {
    let mut builder = Builder::from_env().map_err(|e| e.to_string())?;
    let named = env::var_os("OTEL_SERVICE_NAME").is_some()
        || env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|a| a.contains("service.name="));
    if !named {
        builder = builder.service_name(service);
    }
    let somewhere = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "TRACER_EXPORT_FILE",
    ]
    .iter()
    .any(|v| env::var_os(v).is_some());
    if let (false, Some(file)) = (somewhere, default_file) {
        eprintln!(
            "http-services: spans go to {file} (set OTEL_EXPORTER_OTLP_ENDPOINT for a collector)"
        );
        builder = builder.export_file(file);
    }
    builder.install().map_err(|e| e.to_string())
}

fn parse_addr(arg: Option<String>) -> Result<SocketAddr, String> {
    let arg = arg.ok_or(USAGE)?;
    arg.parse().map_err(|e| format!("{arg}: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = env::args().skip(1);
    let role = args.next();
    let result = match role.as_deref() {
        None | Some("demo") => demo().await,
        Some("backend") => match parse_addr(args.next()) {
            Ok(addr) => run_alone("backend", addr, None).await,
            Err(e) => Err(e),
        },
        Some("frontend") => match (parse_addr(args.next()), args.next()) {
            (Ok(addr), Some(backend)) => run_alone("frontend", addr, Some(backend)).await,
            (Err(e), _) => Err(e),
            (_, None) => Err(USAGE.to_owned()),
        },
        Some(_) => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-services: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One service, until Ctrl-C; the guard then delivers what is queued.
async fn run_alone(service: &str, addr: SocketAddr, backend: Option<String>) -> Result<(), String> {
    let _guard = setup(service, None)?;
    let tracer = global::tracer().clone();
    let router = match backend {
        Some(url) => {
            let uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
            http_services::frontend(tracer, uri)
        }
        None => http_services::backend(tracer),
    };
    let (bound, _server) = http_services::serve(router, addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    eprintln!("http-services: {service} on http://{bound}; Ctrl-C to stop");
    tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Both services in this process, and a few requests through the frontend.
async fn demo() -> Result<(), String> {
    let guard = setup("http-services", Some("http-services.jsonl"))?;
    let tracer: Tracer = global::tracer().clone();
    let (back, front) = http_services::serve_both(tracer.clone(), tracer.clone())
        .await
        .map_err(|e| e.to_string())?;
    println!("backend on http://{back}, frontend on http://{front}");
    // The caller traces its requests too: its CLIENT span is each trace's root.
    let client = http_services::client(tracer);
    for path in [
        "/checkout/42",
        "/proxy/broken",
        "/proxy/fail",
        "/proxy/missing",
    ] {
        let request = axum::http::Request::get(format!("http://{front}{path}"))
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let response = client
            .clone()
            .oneshot(request)
            .await
            .map_err(|e| e.to_string())?;
        let trace = response
            .body()
            .span()
            .map(|s| s.context().trace_id().to_hex())
            .unwrap_or_default();
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        println!(
            "GET {path} -> {status} {:?} trace {trace}",
            String::from_utf8_lossy(&body)
        );
    }
    // Let the servers end their spans (a SERVER span ends once its
    // response is written), then deliver.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    for (signal, stats) in guard.shutdown() {
        println!("{signal}: {stats:?}");
    }
    Ok(())
}
