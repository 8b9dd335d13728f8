//! Start-up settings, from the environment.

use crate::stores::{LogStore, StoreLimits};
use std::env;
use tracer_core::otlp::config::{positive, Lookup};

/// The default memory budget of the stores: 256 MiB, a small machine's
/// share.
pub const DEFAULT_MAX_MEMORY: usize = 256 << 20;

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
    /// `TRACER_MAX_MEMORY`: the bytes the node's data may hold: 45 % for
    /// the trace store, 45 % for the log store, 10 % for bookkeeping (see
    /// [`Config::trace_bytes`]).
    pub max_memory: usize,
    /// `TRACER_DEBUG_HANDLERS=1`: serve the fault-injection messages
    /// (`debug_panic`) that test suites use.
    pub debug_handlers: bool,
    /// Export to the OpenTelemetry ecosystem, and the node's sampler
    /// (`OTEL_*`, read by tracer-core's OTLP setup).
    pub export: tracer_core::otlp::Config,
}

impl Config {
    /// The trace store's share of [`max_memory`](Config::max_memory): 45 %.
    pub fn trace_bytes(&self) -> usize {
        self.max_memory / 100 * 45
    }

    /// The log store's share of [`max_memory`](Config::max_memory): 45 %.
    pub fn log_bytes(&self) -> usize {
        self.max_memory / 100 * 45
    }

    /// What is left for bookkeeping (the collector's followed ids):
    /// 10 % of [`max_memory`](Config::max_memory).
    pub fn bookkeeping_bytes(&self) -> usize {
        self.max_memory - self.trace_bytes() - self.log_bytes()
    }
}

impl Default for Config {
    fn default() -> Self {
        let limits = StoreLimits::default();
        Config {
            max_logs: LogStore::DEFAULT_CAP,
            max_traces: limits.max_traces,
            max_spans_per_trace: limits.max_spans_per_trace,
            max_line: DEFAULT_MAX_LINE,
            max_memory: DEFAULT_MAX_MEMORY,
            debug_handlers: false,
            export: tracer_core::otlp::Config::quiet("tracer-node"),
        }
    }
}

/// A size in bytes: a whole number, optionally with a unit (`K`, `M`, `G`,
/// or `KiB`, `MiB`, `GiB`, all powers of 1024; `B` for bytes), at least
/// 64 KiB so that every store can hold something.
fn bytes(get: Lookup<'_>, name: &str, default: usize) -> Result<usize, String> {
    let Some(v) = get(name) else {
        return Ok(default);
    };
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => {
            return Err(format!(
                "{name}={v:?}: expected bytes, like 268435456 or 256MiB"
            ))
        }
    };
    let n = num
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{name}={v:?}: expected bytes, like 268435456 or 256MiB"))?;
    if n < 64 << 10 {
        return Err(format!("{name}={v:?}: at least 64KiB"));
    }
    Ok(n)
}

impl Config {
    /// Reads the environment; a bad value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        Self::from_lookup(&|name| env::var(name).ok())
    }

    /// Reads settings by variable name from `get` (the environment, or
    /// command-line flags layered over it); a bad value is an error naming
    /// the variable.
    pub fn from_lookup(get: Lookup<'_>) -> Result<Config, String> {
        let d = Config::default();
        let debug = match get("TRACER_DEBUG_HANDLERS").as_deref() {
            None | Some("") | Some("0") | Some("false") => false,
            Some("1") | Some("true") => true,
            Some(other) => {
                return Err(format!(
                    "TRACER_DEBUG_HANDLERS={other:?}: expected 1, true, 0 or false"
                ))
            }
        };
        Ok(Config {
            max_logs: positive(get, "TRACER_MAX_LOGS", d.max_logs)?,
            max_traces: positive(get, "TRACER_MAX_TRACES", d.max_traces)?,
            max_spans_per_trace: positive(
                get,
                "TRACER_MAX_SPANS_PER_TRACE",
                d.max_spans_per_trace,
            )?,
            max_line: positive(get, "TRACER_MAX_LINE", d.max_line)?,
            max_memory: bytes(get, "TRACER_MAX_MEMORY", d.max_memory)?,
            debug_handlers: debug,
            export: tracer_core::otlp::Config::from_lookup(get, &d.export)
                .map_err(|e| e.to_string())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> Result<Config, String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| m.get(k).cloned())
    }

    #[test]
    fn bad_values_name_the_variable() {
        // The OTEL_* ones are tracer-core's; one of them checks the
        // node passes them through.
        for (k, v) in [
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("TRACER_MAX_LOGS", "-1"),
            ("TRACER_MAX_TRACES", "many"),
            ("TRACER_MAX_MEMORY", "12 parsecs"),
            ("TRACER_MAX_MEMORY", "1K"),
            ("TRACER_DEBUG_HANDLERS", "yes"),
        ] {
            let err = with(&[(k, v)]).unwrap_err();
            assert!(err.starts_with(k), "{k}: {err}");
        }
    }

    #[test]
    fn nothing_is_exported_by_default_or_when_disabled() {
        assert!(!with(&[]).unwrap().export.traces_enabled());
        let c = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert!(!c.export.traces_enabled() && !c.export.logs_enabled());
    }
}
