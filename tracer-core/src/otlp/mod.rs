//! Export to any OpenTelemetry collector, and the one call that sets a
//! service up (feature `otlp`).
//!
//! - [`init`] reads the `OTEL_*` environment the way the OpenTelemetry SDKs
//!   do, installs the process-wide tracer (which `#[traced]` uses), the
//!   `log` bridge and, with the `tracing` feature, a `tracing` subscriber,
//!   and returns a [`Guard`] that delivers what is queued, within the flush
//!   deadline, when it is dropped. [`Builder`] does the same from code.
//! - Underneath is the one export pipeline, the same in a service and in
//!   `tracer-node`: each signal's [`BatchProcessor`](crate::BatchProcessor)
//!   feeds an [`OtlpExporter`], which encodes a batch (`http/protobuf`, the
//!   specification's default, or `http/json`; gzip on request), sends it to
//!   a [`Sink`] ([`HttpSink`], or [`FileSink`] for JSON lines on disk),
//!   retries with backoff (honouring `Retry-After`) and counts what it
//!   drops ([`ExportStats`]).
//!
//! ```no_run
//! #[tracer_core::traced]
//! fn handle(order: u32) -> u32 {
//!     order * 2
//! }
//!
//! fn main() -> Result<(), tracer_core::otlp::Error> {
//!     // OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_SERVICE_NAME, ... (or the defaults)
//!     let _guard = tracer_core::otlp::init()?;
//!     handle(21);
//!     log::info!("handled"); // a log record with the trace's ids
//!     Ok(())
//! } // the guard delivers what is queued
//! ```

pub mod config;
mod encode;
mod export;
pub mod proto;
mod setup;

pub use config::{Config, Error, Protocol, Wire};
pub use encode::{
    by_service, encode_logs, encode_logs_proto, encode_spans, encode_spans_proto, SERVICE_NAME,
};
pub use export::{
    BatchSettings, Encoder, ExportStats, FileSink, HttpSink, OtlpExporter, Pipeline, Sent, Signal,
    Sink,
};
pub use setup::{init, Builder, Guard};
