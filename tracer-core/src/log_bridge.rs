//! A `log` crate bridge: records logged while a span is current carry that
//! span's trace and span ids into the log pipeline.

use crate::clock::now_unix_nanos;
use crate::current;
use crate::logs::{LogProcessor, LogRecord};
use std::sync::Arc;

/// A [`log::Log`] that emits every enabled record to a [`LogProcessor`],
/// with the current span's ids, then passes it on to a wrapped logger.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tracer_core::{InMemoryExporter, LogBridge, LogRecord, Sampler, Tracer};
///
/// let records = Arc::new(Mutex::new(Vec::<LogRecord>::new()));
/// LogBridge::new(records.clone(), "checkout", log::LevelFilter::Info).install().unwrap();
/// let tracer = Tracer::new(Sampler::AlwaysOn, InMemoryExporter::new());
/// let span = tracer.start("charge").entered();
/// log::info!("charged {} cents", 1250);
/// let trace = span.context().trace_id();
/// drop(span);
/// let records = records.lock().unwrap();
/// assert_eq!(&*records[0].body, "charged 1250 cents");
/// assert_eq!(records[0].trace_id, Some(trace));
/// ```
pub struct LogBridge {
    processor: Box<dyn LogProcessor>,
    service: Arc<str>,
    level: log::LevelFilter,
    next: Option<Box<dyn log::Log>>,
}

impl LogBridge {
    /// Emits records at `level` and above as written by `service`.
    pub fn new(
        processor: impl LogProcessor + 'static,
        service: &str,
        level: log::LevelFilter,
    ) -> Self {
        LogBridge {
            processor: Box::new(processor),
            service: Arc::from(service),
            level,
            next: None,
        }
    }

    /// Passes every record on to `next` as well.
    pub fn wrapping(mut self, next: Box<dyn log::Log>) -> Self {
        self.next = Some(next);
        self
    }

    /// Installs the bridge as the `log` crate's logger.
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        let level = self.level;
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(level);
        Ok(())
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level || self.next.as_ref().is_some_and(|n| n.enabled(metadata))
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= self.level {
            let ctx = current::current().filter(|c| c.is_valid());
            self.processor.emit(LogRecord {
                time_unix_nanos: now_unix_nanos(),
                service: self.service.clone(),
                level: Some(record.level().as_str().into()),
                body: record.args().to_string().into(),
                trace_id: ctx.as_ref().map(|c| c.trace_id()),
                span_id: ctx.as_ref().map(|c| c.span_id()),
                attributes: Vec::new(),
            });
        }
        if let Some(next) = &self.next {
            if next.enabled(record.metadata()) {
                next.log(record);
            }
        }
    }

    fn flush(&self) {
        self.processor.force_flush();
        if let Some(next) = &self.next {
            next.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryExporter, Sampler, Tracer};
    use log::Log;
    use std::sync::Mutex;

    #[test]
    fn records_carry_the_current_span() {
        let records = Arc::new(Mutex::new(Vec::<LogRecord>::new()));
        let bridge = LogBridge::new(records.clone(), "checkout", log::LevelFilter::Info);
        let tracer = Tracer::new(Sampler::AlwaysOn, InMemoryExporter::new());
        let span = tracer.start("op").entered();
        let ctx = span.context().clone();
        bridge.log(
            &log::Record::builder()
                .args(format_args!("charged {}", 42))
                .level(log::Level::Info)
                .build(),
        );
        bridge.log(
            &log::Record::builder()
                .args(format_args!("noise"))
                .level(log::Level::Debug)
                .build(),
        );
        drop(span);
        bridge.log(
            &log::Record::builder()
                .args(format_args!("after"))
                .level(log::Level::Warn)
                .build(),
        );
        let r = records.lock().unwrap();
        assert_eq!(r.len(), 2, "debug is below the level");
        assert_eq!(&*r[0].body, "charged 42");
        assert_eq!(r[0].level.as_deref(), Some("INFO"));
        assert_eq!(r[0].trace_id, Some(ctx.trace_id()));
        assert_eq!(r[0].span_id, Some(ctx.span_id()));
        assert_eq!(&*r[0].service, "checkout");
        assert_eq!(r[1].trace_id, None, "no span was current");
    }
}
