//! Fault injection for test suites, served only when the node starts with
//! `TRACER_DEBUG_HANDLERS=1`: `debug_panic` panics inside a handler, to
//! prove that the node answers error 13 and keeps what it holds.

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
