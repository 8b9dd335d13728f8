//! Where finished spans go.

use crate::span::SpanData;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Receives every finished, sampled span, in the manner of OpenTelemetry's
/// span processors.
pub trait SpanProcessor: Send + Sync {
    /// Called once per span, when it ends.
    fn on_end(&self, span: SpanData);

    /// Called once per span, when it ends, with the span still in the
    /// `Span` that recorded it: a processor that keeps spans can move it
    /// straight to where it keeps them. The default takes it and calls
    /// [`on_end`](Self::on_end).
    #[inline]
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        if let Some(span) = slot.take() {
            self.on_end(span);
        }
    }
    /// Exports whatever is buffered.
    fn force_flush(&self) {}

    /// Whether the processor would keep this span: a fan-out asks before
    /// it copies a span for it. The default is yes.
    #[inline]
    fn accepts(&self, _span: &SpanData) -> bool {
        true
    }
}

/// Both processors get every span (the first a copy, the second the span
/// itself): a tracer with a store and an exporter, as an OpenTelemetry
/// provider holds a list of processors.
impl<A: SpanProcessor, B: SpanProcessor> SpanProcessor for (A, B) {
    fn on_end(&self, span: SpanData) {
        self.on_end_in(&mut Some(span));
    }
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        if let Some(span) = slot.as_ref().filter(|s| self.0.accepts(s)) {
            self.0.on_end(span.clone());
        }
        self.1.on_end_in(slot);
    }
    fn force_flush(&self) {
        self.0.force_flush();
        self.1.force_flush();
    }
    fn accepts(&self, span: &SpanData) -> bool {
        self.0.accepts(span) || self.1.accepts(span)
    }
}

/// `None` drops every span: a processor that is switched off.
impl<P: SpanProcessor> SpanProcessor for Option<P> {
    fn on_end(&self, span: SpanData) {
        if let Some(p) = self {
            p.on_end(span);
        }
    }
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        if let Some(p) = self {
            p.on_end_in(slot);
        }
    }
    fn force_flush(&self) {
        if let Some(p) = self {
            p.force_flush();
        }
    }
    fn accepts(&self, span: &SpanData) -> bool {
        self.as_ref().is_some_and(|p| p.accepts(span))
    }
}

/// Drops every span.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopProcessor;

impl SpanProcessor for NoopProcessor {
    fn on_end(&self, _span: SpanData) {}
    fn accepts(&self, _span: &SpanData) -> bool {
        false
    }
}

impl<P: SpanProcessor + ?Sized> SpanProcessor for Arc<P> {
    fn on_end(&self, span: SpanData) {
        (**self).on_end(span);
    }
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        (**self).on_end_in(slot);
    }
    fn force_flush(&self) {
        (**self).force_flush();
    }
    fn accepts(&self, span: &SpanData) -> bool {
        (**self).accepts(span)
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

    /// Drops every span collected so far and keeps the room they took, so
    /// that the next spans are kept without growing the store again (as
    /// OpenTelemetry's `InMemorySpanExporter::reset` does; benchmarks clear
    /// it between samples).
    pub fn clear(&self) {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// How many spans it holds.
    pub fn len(&self) -> usize {
        self.spans.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds no span.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

/// Where processors send finished spans: a backend, a file, a store.
pub trait SpanExporter: Send + Sync {
    /// Takes a batch of finished spans: move out (`drain`, `append`) what
    /// is kept. The caller clears the batch afterwards and reuses its
    /// memory, so steady-state export allocates nothing.
    fn export(&self, batch: &mut Vec<SpanData>);
    /// The processor is shutting down and must be done by `deadline`: an
    /// exporter that retries stops retrying then.
    fn shutdown(&self, _deadline: Instant) {}
}

impl<E: SpanExporter + ?Sized> SpanExporter for Arc<E> {
    fn export(&self, batch: &mut Vec<SpanData>) {
        (**self).export(batch);
    }
    fn shutdown(&self, deadline: Instant) {
        (**self).shutdown(deadline);
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&self, batch: &mut Vec<SpanData>) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(batch);
    }
}

/// Drops every batch: the reporter of a benchmark, or tracing switched off
/// at the far end.
#[derive(Clone, Copy, Debug, Default)]
pub struct DropExporter;

impl SpanExporter for DropExporter {
    fn export(&self, _batch: &mut Vec<SpanData>) {}
}

/// Exports every span as it ends, on the thread that ends it
/// (OpenTelemetry's simple processor).
#[derive(Debug)]
pub struct SimpleProcessor<E> {
    exporter: E,
}

impl<E: SpanExporter> SimpleProcessor<E> {
    /// A processor exporting to `exporter`.
    pub fn new(exporter: E) -> Self {
        SimpleProcessor { exporter }
    }
}

impl<E: SpanExporter> SpanProcessor for SimpleProcessor<E> {
    fn on_end(&self, span: SpanData) {
        self.exporter.export(&mut vec![span]);
    }
}

pub use batch::{
    BatchConfig, BatchLogProcessor, BatchProcessor, Exportable, IntoExporter, ProcessorStats,
};

mod batch;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Sampler, Tracer};
    use std::sync::Arc;

    #[test]
    fn an_in_memory_exporter_clears_and_keeps_its_room() {
        let mem = Arc::new(InMemoryExporter::new());
        let tracer = Tracer::new(Sampler::AlwaysOn, mem.clone());
        for _ in 0..100 {
            tracer.start("s");
        }
        assert_eq!(mem.len(), 100);
        let room = mem.spans.lock().unwrap().capacity();
        mem.clear();
        assert!(mem.is_empty());
        assert_eq!(mem.spans.lock().unwrap().capacity(), room);
        tracer.start("after");
        assert_eq!(mem.take().len(), 1);
    }
}
