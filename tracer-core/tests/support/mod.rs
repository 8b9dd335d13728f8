//! Shared by the test files: a subscriber with the layer over an in-memory
//! tracer.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use tracer_core::tracing::TracerLayer;
use tracer_core::{InMemoryExporter, LogRecord, Sampler, SpanData, Tracer};
use tracing_subscriber::layer::SubscriberExt;

pub struct Setup {
    pub tracer: Tracer,
    pub spans: Arc<InMemoryExporter>,
    pub logs: Arc<Mutex<Vec<LogRecord>>>,
}

impl Setup {
    pub fn new(sampler: Sampler) -> Setup {
        let spans = Arc::new(InMemoryExporter::new());
        Setup {
            tracer: Tracer::new(sampler, spans.clone()),
            spans,
            logs: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn dispatch(&self) -> tracing::Dispatch {
        tracing::Dispatch::new(
            tracing_subscriber::registry()
                .with(TracerLayer::new(self.tracer.clone()).with_logs(self.logs.clone(), "svc")),
        )
    }

    /// Runs `f` with the layer as this thread's subscriber.
    pub fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch(), f)
    }

    pub fn take(&self) -> Vec<SpanData> {
        self.spans.take()
    }
}

pub fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {spans:#?}"))
}
