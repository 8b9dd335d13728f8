//! Fault injection for test suites, served only when the node starts with
//! `TRACER_DEBUG_HANDLERS=1`: `debug_panic` panics inside a handler, to
//! prove that the node answers error 13 and keeps what it holds;
//! `debug_log` writes through the `log` crate, as a plugin's own logging does.

use serde::{Deserialize, Serialize};
use tracer_node::{handler, Ctx, Error};

/// `debug_panic {}`.
#[derive(Deserialize)]
pub struct DebugPanic {}

/// Never sent: the handler panics.
#[derive(Serialize)]
#[serde(tag = "type", rename = "debug_panic_ok")]
pub struct DebugPanicOk {}

/// Panics on purpose (only with `TRACER_DEBUG_HANDLERS=1`).
#[handler("debug_panic")]
pub fn debug_panic(ctx: &mut Ctx<'_>, _req: DebugPanic) -> Result<DebugPanicOk, Error> {
    if !ctx.config().debug_handlers {
        return Err(Error::not_supported(
            "debug_panic is served only when the node runs with TRACER_DEBUG_HANDLERS=1",
        ));
    }
    panic!("debug_panic: a panic requested by the client");
}

/// `debug_log {message, level?}`.
#[derive(Deserialize)]
pub struct DebugLog {
    message: String,
    #[serde(default)]
    level: Option<String>,
}

/// `debug_log_ok`.
#[derive(Serialize)]
#[serde(tag = "type", rename = "debug_log_ok")]
pub struct DebugLogOk {}

/// Writes `message` through the `log` crate, from inside the handler (so
/// inside the sidecar's span): what a plugin's own logging does. Lets test
/// suites follow `log`-crate records into the store and the export (only
/// with `TRACER_DEBUG_HANDLERS=1`).
#[handler("debug_log")]
pub fn debug_log(ctx: &mut Ctx<'_>, req: DebugLog) -> Result<DebugLogOk, Error> {
    if !ctx.config().debug_handlers {
        return Err(Error::not_supported(
            "debug_log is served only when the node runs with TRACER_DEBUG_HANDLERS=1",
        ));
    }
    let level = match req.level.as_deref().unwrap_or("info") {
        l if l.eq_ignore_ascii_case("error") => log::Level::Error,
        l if l.eq_ignore_ascii_case("warn") => log::Level::Warn,
        l if l.eq_ignore_ascii_case("info") => log::Level::Info,
        other => {
            return Err(Error::bad_field(
                "level",
                format!("{other:?} is not one of error, warn, info"),
            ))
        }
    };
    log::log!(level, "{}", req.message);
    Ok(DebugLogOk {})
}
