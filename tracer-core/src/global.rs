//! The process-wide tracer that `#[traced]` uses.

use crate::tracer::Tracer;
use std::sync::OnceLock;

static GLOBAL: OnceLock<Tracer> = OnceLock::new();

/// Installs the process-wide tracer. It can be set once; a second call
/// returns the tracer it was given back.
pub fn set_tracer(tracer: Tracer) -> Result<(), Tracer> {
    GLOBAL.set(tracer)
}

/// The process-wide tracer; a no-op tracer (context only, nothing recorded)
/// until one is installed.
#[inline]
pub fn tracer() -> &'static Tracer {
    GLOBAL.get_or_init(Tracer::noop)
}

/// Whether `tracer` is the installed process-wide tracer.
#[inline]
pub(crate) fn is_global(tracer: &Tracer) -> bool {
    GLOBAL.get().is_some_and(|g| g.ptr_eq(tracer))
}
