//! A `log` crate bridge: records logged while a span is current are stored
//! with that span's trace and span ids.

use crate::current;
use crate::logs::{LogEntry, LogStore};
use std::sync::{Arc, Mutex};

/// A [`log::Log`] that stores every enabled record in a [`LogStore`], with
/// the current span's ids, then passes it on to a wrapped logger.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use tracer_core::{InMemoryExporter, LogBridge, LogQuery, LogStore, Sampler, Tracer};
///
/// let store = Arc::new(Mutex::new(LogStore::new(1000)));
/// LogBridge::new(store.clone(), "checkout", log::LevelFilter::Info).install().unwrap();
/// let tracer = Tracer::new(Sampler::AlwaysOn, InMemoryExporter::new());
/// let span = tracer.start("charge").entered();
/// log::info!("charged {} cents", 1250);
/// let trace = span.context().trace_id().to_hex();
/// drop(span);
/// let logs = store.lock().unwrap();
/// let found = logs.search(&LogQuery { trace_id: Some(&trace), ..LogQuery::default() });
/// assert_eq!(&*found[0].message, "charged 1250 cents");
/// ```
pub struct LogBridge {
    store: Arc<Mutex<LogStore>>,
    service: Arc<str>,
    level: log::LevelFilter,
    next: Option<Box<dyn log::Log>>,
}

impl LogBridge {
    /// Stores records at `level` and above as logged by `service`.
    pub fn new(store: Arc<Mutex<LogStore>>, service: &str, level: log::LevelFilter) -> Self {
        LogBridge {
            store,
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
            let entry = LogEntry {
                service: self.service.clone(),
                message: record.args().to_string().into(),
                trace_id: ctx.as_ref().map(|c| c.trace_id().to_hex().into()),
                span_id: ctx.as_ref().map(|c| c.span_id().to_hex().into()),
                level: Some(record.level().as_str().into()),
                attributes: None,
            };
            // A poisoned store still holds good entries: keep using it.
            self.store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(entry);
        }
        if let Some(next) = &self.next {
            if next.enabled(record.metadata()) {
                next.log(record);
            }
        }
    }

    fn flush(&self) {
        if let Some(next) = &self.next {
            next.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryExporter, LogQuery, Sampler, Tracer};
    use log::Log;

    #[test]
    fn records_carry_the_current_span() {
        let store = Arc::new(Mutex::new(LogStore::new(10)));
        let bridge = LogBridge::new(store.clone(), "checkout", log::LevelFilter::Info);
        let tracer = Tracer::new(Sampler::AlwaysOn, InMemoryExporter::new());
        let span = tracer.start("op").entered();
        let trace = span.context().trace_id().to_hex();
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
        let s = store.lock().unwrap();
        let in_trace = s.search(&LogQuery {
            trace_id: Some(&trace),
            ..Default::default()
        });
        assert_eq!(in_trace.len(), 1);
        assert_eq!(&*in_trace[0].message, "charged 42");
        assert_eq!(in_trace[0].level.as_deref(), Some("INFO"));
        assert_eq!(s.len(), 2, "debug is below the level");
        assert_eq!(s.search(&LogQuery::default())[1].trace_id, None);
    }
}
