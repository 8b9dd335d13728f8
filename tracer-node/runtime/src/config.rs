//! Start-up settings, from the environment.

use crate::export::BatchSettings;
use crate::stores::{LogStore, StoreLimits};
use std::env;
use std::path::PathBuf;
use std::time::Duration;
use tracer_core::Sampler;

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
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: the node's sampler.
    pub sampler: Sampler,
    /// Export to the OpenTelemetry ecosystem.
    pub export: ExportConfig,
}

/// Where and how spans and logs leave the node. Empty by default: the node
/// keeps everything in memory and exports nothing.
#[derive(Clone, Debug, Default)]
pub struct ExportConfig {
    /// `OTEL_SERVICE_NAME`: the resource's service (spans without their own
    /// `service.name`).
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,...`.
    pub resource: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs`.
    pub logs_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...`.
    pub headers: Vec<(String, String)>,
    /// `TRACER_EXPORT_FILE`: write OTLP JSON requests there, one per line,
    /// instead of sending them.
    pub file: Option<PathBuf>,
    /// `OTEL_BSP_*`.
    pub batch: BatchSettings,
    /// How each signal is sent over HTTP.
    pub traces_wire: Wire,
    /// How each signal is sent over HTTP.
    pub logs_wire: Wire,
    /// `TRACER_FLUSH_TIMEOUT_MS`: at end of input, how long to keep trying
    /// to deliver what is queued.
    pub flush_timeout: Duration,
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

/// The OTLP/HTTP encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: the specification's default.
    #[default]
    Protobuf,
    /// `http/json`.
    Json,
}

/// How one signal's export requests are sent over HTTP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wire {
    /// `OTEL_EXPORTER_OTLP_{,TRACES_,LOGS_}PROTOCOL`.
    pub protocol: Protocol,
    /// `OTEL_EXPORTER_OTLP_{,TRACES_,LOGS_}COMPRESSION=gzip`.
    pub gzip: bool,
}

/// The protocol and compression of one signal: its own variables, else
/// the general ones, else `http/protobuf` without compression.
fn wire(get: Lookup<'_>, signal: &str) -> Result<Wire, String> {
    let pick = |what: &str| {
        let own = format!("OTEL_EXPORTER_OTLP_{signal}_{what}");
        let general = format!("OTEL_EXPORTER_OTLP_{what}");
        get(&own)
            .map(|v| (own, v))
            .or_else(|| get(&general).map(|v| (general, v)))
    };
    let protocol = match pick("PROTOCOL") {
        None => Protocol::Protobuf,
        Some((name, v)) => match v.trim() {
            "http/protobuf" => Protocol::Protobuf,
            "http/json" => Protocol::Json,
            "grpc" => {
                return Err(format!(
                    "{name}=grpc: this node sends OTLP over HTTP only (http/protobuf or http/json)"
                ))
            }
            _ => return Err(format!("{name}={v:?}: expected http/protobuf or http/json")),
        },
    };
    let gzip = match pick("COMPRESSION") {
        None => false,
        Some((name, v)) => match v.trim() {
            "gzip" => true,
            "none" | "" => false,
            _ => return Err(format!("{name}={v:?}: expected gzip or none")),
        },
    };
    Ok(Wire { protocol, gzip })
}

impl ExportConfig {
    /// Whether spans leave the node.
    pub fn traces_enabled(&self) -> bool {
        self.file.is_some() || self.traces_endpoint.is_some()
    }

    /// Whether logs leave the node.
    pub fn logs_enabled(&self) -> bool {
        self.file.is_some() || self.logs_endpoint.is_some()
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
            sampler: Sampler::default(),
            export: ExportConfig {
                service_name: "tracer-node".to_owned(),
                flush_timeout: Duration::from_secs(5),
                ..ExportConfig::default()
            },
        }
    }
}

type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn positive(get: Lookup<'_>, name: &str, default: usize) -> Result<usize, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}={v:?}: expected a positive whole number")),
        },
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

fn millis(get: Lookup<'_>, name: &str, default: Duration) -> Result<Duration, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("{name}={v:?}: expected milliseconds, a whole number")),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `key=value,key2=value2` (W3C Baggage-like, percent-encoded values), as
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS` are written.
fn pairs(get: Lookup<'_>, name: &str) -> Result<Vec<(String, String)>, String> {
    let Some(v) = get(name) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in v.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, val) = item
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| format!("{name}: {item:?} is not key=value"))?;
        let val = percent_decode(val.trim())
            .ok_or_else(|| format!("{name}: bad percent-encoding in {item:?}"))?;
        out.push((k.trim().to_owned(), val));
    }
    Ok(out)
}

fn endpoint(name: &str, v: &str) -> Result<String, String> {
    let v = v.trim();
    if v.starts_with("https://") {
        return Err(format!(
            "{name}={v:?}: this build speaks plain http:// only (no TLS); send to a local collector"
        ));
    }
    match v.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(v.to_owned()),
        _ => Err(format!("{name}={v:?}: expected an http://host:port URL")),
    }
}

fn sampler(get: Lookup<'_>) -> Result<Sampler, String> {
    let arg = match get("OTEL_TRACES_SAMPLER_ARG") {
        None => None,
        Some(v) => match v.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Some(r),
            _ => {
                return Err(format!(
                    "OTEL_TRACES_SAMPLER_ARG={v:?}: expected a ratio from 0 to 1"
                ))
            }
        },
    };
    let ratio = arg.unwrap_or(1.0);
    let parent = |root| Sampler::ParentBased(Box::new(root));
    Ok(match get("OTEL_TRACES_SAMPLER").as_deref().map(str::trim) {
        None => Sampler::default(),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatio(ratio),
        Some("parentbased_always_on") => parent(Sampler::AlwaysOn),
        Some("parentbased_always_off") => parent(Sampler::AlwaysOff),
        Some("parentbased_traceidratio") => parent(Sampler::TraceIdRatio(ratio)),
        Some(other) => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER={other:?}: expected always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio"
            ))
        }
    })
}

fn export(get: Lookup<'_>, d: &ExportConfig) -> Result<ExportConfig, String> {
    let disabled = matches!(
        get("OTEL_SDK_DISABLED").as_deref().map(str::trim),
        Some("true")
    );
    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|v| endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &v))
        .transpose()?;
    let signal = |var: &str, path: &str, exporter_var: &str| -> Result<Option<String>, String> {
        match get(exporter_var).as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => return Err(format!("{exporter_var}={other:?}: expected otlp or none")),
        }
        match get(var) {
            Some(v) => endpoint(var, &v).map(Some),
            None => Ok(base
                .as_ref()
                .map(|b| format!("{}/{path}", b.trim_end_matches('/')))),
        }
    };
    let traces = signal(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "v1/traces",
        "OTEL_TRACES_EXPORTER",
    )?;
    let logs = signal(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "v1/logs",
        "OTEL_LOGS_EXPORTER",
    )?;
    let bd = d.batch;
    let batch = BatchSettings {
        max_queue_size: positive(get, "OTEL_BSP_MAX_QUEUE_SIZE", bd.max_queue_size)?,
        max_export_batch_size: positive(
            get,
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            bd.max_export_batch_size,
        )?,
        schedule_delay: millis(get, "OTEL_BSP_SCHEDULE_DELAY", bd.schedule_delay)?,
        export_timeout: millis(get, "OTEL_BSP_EXPORT_TIMEOUT", bd.export_timeout)?,
    };
    if batch.max_export_batch_size > batch.max_queue_size {
        return Err(format!(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE={} is larger than OTEL_BSP_MAX_QUEUE_SIZE={}",
            batch.max_export_batch_size, batch.max_queue_size
        ));
    }
    let mut resource = pairs(get, "OTEL_RESOURCE_ATTRIBUTES")?;
    let service_name = match get("OTEL_SERVICE_NAME") {
        Some(v) if !v.trim().is_empty() => v.trim().to_owned(),
        Some(_) => return Err("OTEL_SERVICE_NAME: must not be empty".to_owned()),
        None => resource
            .iter()
            .find(|(k, _)| k == "service.name")
            .map_or_else(|| d.service_name.clone(), |(_, v)| v.clone()),
    };
    resource.retain(|(k, _)| k != "service.name");
    Ok(ExportConfig {
        service_name,
        resource,
        traces_endpoint: traces.filter(|_| !disabled),
        logs_endpoint: logs.filter(|_| !disabled),
        headers: pairs(get, "OTEL_EXPORTER_OTLP_HEADERS")?,
        file: get("TRACER_EXPORT_FILE")
            .filter(|_| !disabled)
            .map(PathBuf::from),
        batch,
        traces_wire: wire(get, "TRACES")?,
        logs_wire: wire(get, "LOGS")?,
        flush_timeout: millis(get, "TRACER_FLUSH_TIMEOUT_MS", d.flush_timeout)?,
    })
}

impl Config {
    /// Reads the environment; a bad value is an error naming the variable.
    pub fn from_env() -> Result<Config, String> {
        Self::from_lookup(&|name| env::var(name).ok())
    }

    /// Reads settings by variable name from `get` (the environment, or
    /// command-line flags layered over it); a bad value is an error naming
    /// the variable.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, String> {
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
            sampler: sampler(get)?,
            export: export(get, &d.export)?,
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
    fn otel_variables() {
        let c = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://127.0.0.1:9999/logs",
            ),
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod,team=a%20b",
            ),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=secret"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ])
        .unwrap();
        let e = &c.export;
        assert_eq!(
            e.traces_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            e.logs_endpoint.as_deref(),
            Some("http://127.0.0.1:9999/logs")
        );
        assert_eq!(e.service_name, "checkout");
        assert_eq!(e.resource[1], ("team".to_owned(), "a b".to_owned()));
        assert_eq!(e.headers[0].0, "api-key");
        assert_eq!(e.batch.schedule_delay, Duration::from_millis(200));
        assert_eq!(
            c.sampler,
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(0.25)))
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://x:1"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("TRACER_MAX_LOGS", "-1"),
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
