//! `tracer-core`: spans, context propagation, sampling, and the pipeline
//! that takes finished spans and log records to exporters, for end-to-end
//! tracing; usable on its own or inside the `tracer-node` runtime.
//!
//! Features (one dependency serves a service):
//! - `macros` (default): `#[traced]`, a span per call of the function it
//!   annotates.
//! - `otlp`: `tracer_core::otlp`, the OTLP exporters (HTTP, protobuf or
//!   JSON, gzip; the export file) and `otlp::init`, the one call that sets
//!   a service up from the `OTEL_*` environment.
//! - `tracing`: `tracer_core::tracing::TracerLayer`, tokio-rs/tracing spans
//!   and events recorded with tracer.
//! - `tower`: `tracer_core::tower`, server and client layers for HTTP
//!   services.
//!
//! ```
//! use std::sync::Arc;
//! use tracer_core::{InMemoryExporter, Sampler, SpanKind, Tracer};
//!
//! let exporter = Arc::new(InMemoryExporter::new());
//! let tracer = Tracer::new(Sampler::AlwaysOn, exporter.clone());
//!
//! let root = tracer.span_builder("GET /users").kind(SpanKind::Server).start().entered();
//! {
//!     let mut child = tracer.start("load user"); // child of the current span
//!     child.set_attribute("db.system", "postgresql");
//! } // dropping a span ends it
//! let trace_id = root.context().trace_id();
//! drop(root);
//!
//! let spans = exporter.take();
//! assert_eq!(spans.len(), 2);
//! assert!(spans.iter().all(|s| s.context.trace_id() == trace_id));
//! assert_eq!(spans[0].parent_span_id, Some(spans[1].context.span_id()));
//! ```

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod attributes;
mod clock;
mod context;
mod current;
pub mod global;
mod ids;
mod log_bridge;
mod logs;
mod processor;
pub mod propagation;
mod sampling;
mod span;
mod tracer;

pub use attributes::{serialize_map as serialize_attributes, Array, Key, KeyValue, Value};
pub use clock::now_unix_nanos;
pub use context::{SpanContext, TraceFlags};
pub use current::{
    attach, current, ContextGuard, EnteredSpan, FutureExt, Instrumented, WithContext,
};
pub use ids::{SpanId, TraceId};
pub use log_bridge::LogBridge;
pub use logs::{LogExporter, LogProcessor, LogRecord};
pub use processor::{
    BatchConfig, BatchLogProcessor, BatchProcessor, DropExporter, Exportable, InMemoryExporter,
    IntoExporter, NoopProcessor, ProcessorStats, SimpleProcessor, SpanExporter, SpanProcessor,
};
pub use propagation::{TraceState, Traceparent};
pub use sampling::Sampler;
pub use span::{Event, Link, Span, SpanData, SpanKind, Status};
pub use tracer::{SpanBuilder, Tracer};

/// Traces the function it annotates: a span per call, named after the
/// function, a child of the current span, current while the body runs
/// (across `.await` too). See [`tracer_macros::traced`] for its arguments.
#[cfg(feature = "macros")]
pub use tracer_macros::traced;

#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

/// Re-exported for the macros' generated code.
#[doc(hidden)]
pub mod __private {
    pub use std::format;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn unsampled_spans_propagate_without_recording() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOff, mem.clone());
        let root = tracer.start("root").entered();
        let child = tracer.start("child");
        assert!(!child.is_recording());
        assert_eq!(child.context().trace_id(), root.context().trace_id());
        assert!(!child.context().is_sampled());
        drop(child);
        drop(root);
        assert!(mem.take().is_empty());
    }

    #[test]
    fn span_api_records_what_it_is_given() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let other = tracer.start("other");
        let other_ctx = other.context().clone();
        drop(other);
        let mut span = tracer
            .span_builder("op")
            .kind(SpanKind::Client)
            .attribute("a", 1_i64)
            .link(other_ctx.clone(), vec![])
            .start_time(1_000)
            .start();
        span.set_attribute("a", 2_i64);
        span.set_attribute("b", vec![true, false]);
        span.add_event_at("retry", 1_500, vec![KeyValue::new("attempt", 2_i64)]);
        span.record_exception("io::Error", "connection reset", Some("at main.rs:1"));
        span.set_status(Status::Ok);
        span.set_status(Status::Error("late".into()));
        span.update_name("op2");
        span.end_at(2_000);
        span.end_at(9_000);
        assert!(!span.is_recording());
        drop(span);
        let mut spans = mem.take();
        let s = spans.pop().unwrap();
        assert_eq!(s.name, "op2");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.attribute("a"), Some(&Value::I64(2)));
        assert_eq!(s.attributes.len(), 2);
        assert_eq!(s.duration_nanos(), 1_000);
        assert_eq!(s.events.len(), 2);
        assert_eq!(s.events[1].name, "exception");
        assert_eq!(s.events[1].attributes[0].key, "exception.type");
        assert_eq!(s.status, Status::Ok, "Ok is final");
        assert_eq!(s.links[0].context, other_ctx);
    }

    #[test]
    fn explicit_parent_and_root() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let a = tracer.start("a").entered();
        let b = tracer.span_builder("b").root().start();
        assert_ne!(b.context().trace_id(), a.context().trace_id());
        let c = tracer.span_builder("c").parent(b.context().clone()).start();
        assert_eq!(c.context().trace_id(), b.context().trace_id());
    }

    #[test]
    fn root_in_a_known_trace() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let t = TraceId::from_u128(42);
        let _outer = tracer.start("outer").entered();
        drop(tracer.span_builder("r").root_in(t).start());
        let r = mem.take().pop().unwrap();
        assert_eq!(r.context.trace_id(), t);
        assert_eq!(
            r.parent_span_id, None,
            "a root, not a child of the current span"
        );
    }

    #[test]
    fn context_crosses_threads() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        let root = tracer.start("root").entered();
        let ctx = root.context().clone();
        let t2 = tracer.clone();
        let child_parent = std::thread::spawn(move || {
            let _g = attach(ctx);
            let child = t2.start("child");
            child.context().trace_id()
        })
        .join()
        .unwrap();
        assert_eq!(child_parent, root.context().trace_id());
    }
}
