//! Where finished spans go.

use crate::span::SpanData;
use std::sync::{Arc, Mutex};

/// Receives every finished, sampled span, in the manner of OpenTelemetry's
/// span processors.
pub trait SpanProcessor: Send + Sync {
    /// Called once per span, when it ends.
    fn on_end(&self, span: SpanData);
    /// Exports whatever is buffered.
    fn force_flush(&self) {}
}

/// Drops every span.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopProcessor;

impl SpanProcessor for NoopProcessor {
    fn on_end(&self, _span: SpanData) {}
}

impl<P: SpanProcessor + ?Sized> SpanProcessor for Arc<P> {
    fn on_end(&self, span: SpanData) {
        (**self).on_end(span);
    }
    fn force_flush(&self) {
        (**self).force_flush();
    }
}

/// Keeps finished spans in memory, for tests and for embedding.
#[derive(Debug, Default)]
pub struct InMemoryExporter {
    spans: Mutex<Vec<SpanData>>,
}

impl InMemoryExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every span collected so far.
    pub fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl SpanProcessor for InMemoryExporter {
    fn on_end(&self, span: SpanData) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(span);
    }
}
