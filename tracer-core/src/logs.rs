//! Log records, and where they go: the same processor/exporter design as
//! spans (OpenTelemetry's logs SDK: a `LogRecordProcessor` feeding a
//! `LogExporter`).

use crate::attributes::KeyValue;
use crate::ids::{SpanId, TraceId};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One log record, correlated with a trace when it was written in one.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// When it was written, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The service that wrote it (a resource's `service.name`).
    pub service: Arc<str>,
    /// The level as written (`"INFO"`, `"error"`...), if any.
    pub level: Option<Cow<'static, str>>,
    /// The message.
    pub body: Arc<str>,
    /// The trace it was written in.
    pub trace_id: Option<TraceId>,
    /// The span it was written in.
    pub span_id: Option<SpanId>,
    /// Further attributes.
    pub attributes: Vec<KeyValue>,
}

/// Receives every log record as it is written.
pub trait LogProcessor: Send + Sync {
    /// Called once per record.
    fn emit(&self, record: LogRecord);
    /// Exports whatever is buffered.
    fn force_flush(&self) {}
}

impl<P: LogProcessor + ?Sized> LogProcessor for Arc<P> {
    fn emit(&self, record: LogRecord) {
        (**self).emit(record);
    }
    fn force_flush(&self) {
        (**self).force_flush();
    }
}

/// Both processors get every record (the first a copy).
impl<A: LogProcessor, B: LogProcessor> LogProcessor for (A, B) {
    fn emit(&self, record: LogRecord) {
        self.0.emit(record.clone());
        self.1.emit(record);
    }
    fn force_flush(&self) {
        self.0.force_flush();
        self.1.force_flush();
    }
}

/// `None` drops every record: a processor that is switched off.
impl<P: LogProcessor> LogProcessor for Option<P> {
    fn emit(&self, record: LogRecord) {
        if let Some(p) = self {
            p.emit(record);
        }
    }
    fn force_flush(&self) {
        if let Some(p) = self {
            p.force_flush();
        }
    }
}

/// Keeps every record, for tests and embedding.
impl LogProcessor for Mutex<Vec<LogRecord>> {
    fn emit(&self, record: LogRecord) {
        self.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }
}

/// Where a batch processor sends log records: a backend, a file.
pub trait LogExporter: Send + Sync {
    /// Takes a batch: move out what is kept; the caller clears the batch
    /// afterwards and reuses its memory.
    fn export(&self, batch: &mut Vec<LogRecord>);
    /// The processor is shutting down and must be done by `deadline`: an
    /// exporter that retries stops retrying then.
    fn shutdown(&self, _deadline: Instant) {}
}

impl<E: LogExporter + ?Sized> LogExporter for Arc<E> {
    fn export(&self, batch: &mut Vec<LogRecord>) {
        (**self).export(batch);
    }
    fn shutdown(&self, deadline: Instant) {
        (**self).shutdown(deadline);
    }
}

/// Keeps every exported record.
impl LogExporter for Mutex<Vec<LogRecord>> {
    fn export(&self, batch: &mut Vec<LogRecord>) {
        self.lock().unwrap_or_else(|e| e.into_inner()).append(batch);
    }
}
