//! Log-trace correlation: `log` stores an entry indexed by trace id and
//! service; `search_logs` finds entries by any mix of filters.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::sync::Arc;
use tracer_node::stores::{LogEntry, LogQuery};
use tracer_node::{handler, Ctx, Error};

fn default_service() -> Cow<'static, str> {
    Cow::Borrowed("service")
}

/// `log {message, trace_id?, span_id?, service = "service", level?, attributes?}`.
/// Strings are borrowed from the message when they have no escapes: each is
/// copied once, into the store.
#[derive(Deserialize)]
pub struct LogRequest<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(default, borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(default = "default_service", borrow)]
    service: Cow<'a, str>,
    #[serde(default, borrow)]
    level: Option<Cow<'a, str>>,
    #[serde(default)]
    attributes: Option<Box<RawValue>>,
}

/// `log_ok`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "log_ok")]
pub struct LogOk {}

/// Stores a log entry. Ids are kept as sent. A log without `trace_id` that
/// arrived with trace context (`traceparent`) is correlated with the span
/// the sidecar opened for it.
#[handler("log")]
pub fn log(ctx: &mut Ctx<'_>, req: LogRequest<'_>) -> Result<LogOk, Error> {
    let attributes = match req.attributes {
        Some(raw) if raw.get().trim_start().starts_with('{') => Some(Arc::from(raw)),
        Some(_) => return Err(Error::bad_field("attributes", "must be a JSON object")),
        None => None,
    };
    let (mut trace_id, mut span_id) = (req.trace_id, req.span_id);
    if trace_id.is_none() && ctx.incoming().is_some() {
        if let Some(span) = ctx.span() {
            trace_id = Some(Cow::Owned(span.context().trace_id().to_hex()));
            span_id = span_id.or_else(|| Some(Cow::Owned(span.context().span_id().to_hex())));
        }
    }
    let entry = {
        let mut logs = ctx.logs();
        let entry = LogEntry {
            service: logs.intern_service(&req.service),
            message: Arc::from(&*req.message),
            trace_id: trace_id.as_deref().map(|t| logs.intern_trace(t)),
            span_id: span_id.as_deref().map(Arc::from),
            level: req.level.as_deref().map(|l| logs.intern_level(l)),
            attributes,
        };
        // Refused whole rather than half-stored, or stored at the cost of
        // every other entry.
        if !logs.fits(&entry) {
            return Err(Error::bad_field(
                "message",
                format!(
                    "a log of {} bytes is larger than the log store's share of the memory budget ({} bytes, TRACER_MAX_MEMORY)",
                    entry.bytes(),
                    logs.max_bytes()
                ),
            ));
        }
        entry
    };
    ctx.push_log(entry);
    Ok(LogOk {})
}

fn default_limit() -> usize {
    1000
}

/// `search_logs {trace_id?, service?, level?, contains?, limit = 1000}`.
#[derive(Deserialize)]
pub struct SearchLogs {
    #[serde(default)]
    trace_id: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default = "default_limit")]
    limit: usize,
}

/// `search_results {logs}`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "search_results")]
pub struct SearchResults {
    logs: Vec<LogEntry>,
}

/// Entries matching every given filter, oldest first, at most `limit`.
#[handler("search_logs")]
pub fn search_logs(ctx: &mut Ctx<'_>, req: SearchLogs) -> Result<SearchResults, Error> {
    let logs = ctx.logs();
    let found = logs.search(&LogQuery {
        trace_id: req.trace_id.as_deref(),
        service: req.service.as_deref(),
        level: req.level.as_deref(),
        contains: req.contains.as_deref(),
        limit: req.limit,
    });
    Ok(SearchResults {
        logs: found.into_iter().cloned().collect(),
    })
}
