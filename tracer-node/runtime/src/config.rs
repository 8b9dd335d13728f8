//! Start-up settings, from the environment.

use std::env;
use tracer_core::{LogStore, StoreLimits};

/// Longest input line, in bytes. `manual_instrument` takes up to 1 MiB of
/// code, which JSON escaping can grow several times.
pub const DEFAULT_MAX_LINE: usize = 8 << 20;

/// The node's settings. Every cap has a default and an environment variable.
#[derive(Clone, Debug)]
pub struct Config {
    /// `TRACER_MAX_LOGS`: log entries kept.
    pub max_logs: usize,
    /// `TRACER_MAX_TRACES`: traces kept.
    pub max_traces: usize,
    /// `TRACER_MAX_SPANS_PER_TRACE`: spans kept per trace.
    pub max_spans_per_trace: usize,
    /// `TRACER_MAX_LINE`: longest input line in bytes.
    pub max_line: usize,
    /// `TRACER_DEBUG_HANDLERS=1`: serve the fault-injection messages
    /// (`debug_panic`) that test suites use.
    pub debug_handlers: bool,
}

impl Default for Config {
    fn default() -> Self {
        let limits = StoreLimits::default();
        Config {
            max_logs: LogStore::DEFAULT_CAP,
            max_traces: limits.max_traces,
            max_spans_per_trace: limits.max_spans_per_trace,
            max_line: DEFAULT_MAX_LINE,
            debug_handlers: false,
        }
    }
}

fn positive(name: &str, default: usize) -> Result<usize, String> {
    match env::var(name) {
        Err(env::VarError::NotPresent) => Ok(default),
        Err(env::VarError::NotUnicode(_)) => Err(format!("{name}: not valid UTF-8")),
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}={v:?}: expected a positive whole number")),
        },
    }
}

impl Config {
    /// Reads the environment; a bad value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        let d = Config::default();
        let debug = match env::var("TRACER_DEBUG_HANDLERS").as_deref() {
            Err(_) | Ok("") | Ok("0") | Ok("false") => false,
            Ok("1") | Ok("true") => true,
            Ok(other) => {
                return Err(format!(
                    "TRACER_DEBUG_HANDLERS={other:?}: expected 1, true, 0 or false"
                ))
            }
        };
        Ok(Config {
            max_logs: positive("TRACER_MAX_LOGS", d.max_logs)?,
            max_traces: positive("TRACER_MAX_TRACES", d.max_traces)?,
            max_spans_per_trace: positive("TRACER_MAX_SPANS_PER_TRACE", d.max_spans_per_trace)?,
            max_line: positive("TRACER_MAX_LINE", d.max_line)?,
            debug_handlers: debug,
        })
    }
}
