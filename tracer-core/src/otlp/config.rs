//! The export's settings, from the `OTEL_*` environment (and the few
//! `TRACER_*` variables of the export file and the flush deadline), the
//! way the OpenTelemetry SDKs read them. A bad value is an [`Error`] that
//! names the variable.

use super::export::BatchSettings;
use crate::Sampler;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how spans and logs are exported, and the sampler that
/// decides which spans are recorded.
#[derive(Clone, Debug)]
pub struct Config {
    /// `OTEL_SERVICE_NAME` (else `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES`): the resource's service, for spans and
    /// records without a `service.name` of their own.
    pub service_name: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,...` (without `service.name`).
    pub resource: Vec<(String, String)>,
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`; `None`: no span export.
    pub traces_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/logs`; `None`: no log export.
    pub logs_endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...`, sent with every request.
    pub headers: Vec<(String, String)>,
    /// `TRACER_EXPORT_FILE`: write OTLP JSON requests there, one per line,
    /// instead of sending them.
    pub file: Option<PathBuf>,
    /// `OTEL_BSP_*`.
    pub batch: BatchSettings,
    /// `OTEL_EXPORTER_OTLP_{,TRACES_}{PROTOCOL,COMPRESSION}`.
    pub traces_wire: Wire,
    /// `OTEL_EXPORTER_OTLP_{,LOGS_}{PROTOCOL,COMPRESSION}`.
    pub logs_wire: Wire,
    /// `TRACER_FLUSH_TIMEOUT_MS`: at shutdown, how long to keep trying to
    /// deliver what is queued.
    pub flush_timeout: Duration,
    /// `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`.
    pub sampler: Sampler,
    /// `OTEL_SDK_DISABLED=true`: nothing is recorded or exported.
    pub disabled: bool,
}

/// The OpenTelemetry SDKs' default collector address, OTLP/HTTP.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:4318";

impl Config {
    /// Nothing exported (no endpoint, no file), the default sampler, the
    /// OpenTelemetry batch defaults, a 5 s flush deadline, and `service`
    /// as the service name: the base [`Config::from_lookup`] fills in.
    pub fn quiet(service: &str) -> Config {
        Config {
            service_name: service.to_owned(),
            resource: Vec::new(),
            traces_endpoint: None,
            logs_endpoint: None,
            headers: Vec::new(),
            file: None,
            batch: BatchSettings::default(),
            traces_wire: Wire::default(),
            logs_wire: Wire::default(),
            flush_timeout: Duration::from_secs(5),
            sampler: Sampler::default(),
            disabled: false,
        }
    }

    /// What a service gets when the environment says nothing, as the
    /// OpenTelemetry SDKs do it: both signals to
    /// [`DEFAULT_ENDPOINT`] over `http/protobuf`, and the service named
    /// `unknown_service:<executable name>`.
    pub fn service_defaults() -> Config {
        let exe = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default();
        Config {
            traces_endpoint: Some(format!("{DEFAULT_ENDPOINT}/v1/traces")),
            logs_endpoint: Some(format!("{DEFAULT_ENDPOINT}/v1/logs")),
            ..Config::quiet(&format!("unknown_service:{exe}"))
        }
    }

    /// Whether spans are exported.
    pub fn traces_enabled(&self) -> bool {
        !self.disabled && (self.file.is_some() || self.traces_endpoint.is_some())
    }

    /// Whether log records are exported.
    pub fn logs_enabled(&self) -> bool {
        !self.disabled && (self.file.is_some() || self.logs_endpoint.is_some())
    }

    /// Reads the process environment over [`Config::service_defaults`].
    pub fn from_env() -> Result<Config, Error> {
        Config::from_lookup(
            &|name| std::env::var(name).ok(),
            &Config::service_defaults(),
        )
    }

    /// Reads settings by variable name from `get` (the environment, or
    /// command-line flags layered over it) over `defaults`, which give
    /// what an unset variable means.
    pub fn from_lookup(get: Lookup<'_>, defaults: &Config) -> Result<Config, Error> {
        read(get, defaults).map_err(Error)
    }
}

/// A setting that cannot be used; its text starts with the variable's
/// name, as in `OTEL_BSP_MAX_QUEUE_SIZE="0": expected a positive whole
/// number`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The message itself, so that `main() -> Result<(), Error>` prints it
/// as it is.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

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

/// Looks a setting up by its variable's name.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A positive whole number, `default` when unset.
pub fn positive(get: Lookup<'_>, name: &str, default: usize) -> Result<usize, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name}={v:?}: expected a positive whole number")),
        },
    }
}

/// Milliseconds, a whole number, `default` when unset.
pub fn millis(get: Lookup<'_>, name: &str, default: Duration) -> Result<Duration, String> {
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

fn sampler(get: Lookup<'_>, default: &Sampler) -> Result<Sampler, String> {
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
        None => default.clone(),
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

fn read(get: Lookup<'_>, d: &Config) -> Result<Config, String> {
    let disabled = matches!(
        get("OTEL_SDK_DISABLED").as_deref().map(str::trim),
        Some("true")
    );
    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|v| endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", &v))
        .transpose()?;
    let signal = |var: &str,
                  path: &str,
                  exporter_var: &str,
                  default: &Option<String>|
     -> Result<Option<String>, String> {
        match get(exporter_var).as_deref().map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => return Err(format!("{exporter_var}={other:?}: expected otlp or none")),
        }
        match get(var) {
            Some(v) => endpoint(var, &v).map(Some),
            None => Ok(match &base {
                Some(b) => Some(format!("{}/{path}", b.trim_end_matches('/'))),
                None => default.clone(),
            }),
        }
    };
    let traces = signal(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "v1/traces",
        "OTEL_TRACES_EXPORTER",
        &d.traces_endpoint,
    )?;
    let logs = signal(
        "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
        "v1/logs",
        "OTEL_LOGS_EXPORTER",
        &d.logs_endpoint,
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
    Ok(Config {
        service_name,
        resource,
        traces_endpoint: traces,
        logs_endpoint: logs,
        headers: pairs(get, "OTEL_EXPORTER_OTLP_HEADERS")?,
        file: get("TRACER_EXPORT_FILE")
            .map(PathBuf::from)
            .or(d.file.clone()),
        batch,
        traces_wire: wire(get, "TRACES")?,
        logs_wire: wire(get, "LOGS")?,
        flush_timeout: millis(get, "TRACER_FLUSH_TIMEOUT_MS", d.flush_timeout)?,
        sampler: sampler(get, &d.sampler)?,
        disabled: disabled || d.disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn over(defaults: &Config, vars: &[(&str, &str)]) -> Result<Config, Error> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |k| m.get(k).cloned(), defaults)
    }

    fn with(vars: &[(&str, &str)]) -> Result<Config, Error> {
        over(&Config::quiet("svc"), vars)
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
        let e = &c;
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
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd"),
            ("OTEL_SERVICE_NAME", " "),
        ] {
            let err = with(&[(k, v)]).unwrap_err().to_string();
            assert!(err.starts_with(k), "{k}: {err}");
        }
    }

    #[test]
    fn nothing_is_exported_by_default_or_when_disabled() {
        assert!(!with(&[]).unwrap().traces_enabled());
        let c = with(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])
        .unwrap();
        assert!(!c.traces_enabled() && !c.logs_enabled());
    }

    #[test]
    fn a_service_exports_to_the_default_collector_unless_told_otherwise() {
        let d = Config::service_defaults();
        assert!(d.service_name.starts_with("unknown_service:"));
        let c = over(&d, &[]).unwrap();
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://localhost:4318/v1/traces")
        );
        let c = over(
            &d,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")],
        )
        .unwrap();
        assert_eq!(
            c.logs_endpoint.as_deref(),
            Some("http://collector:4318/v1/logs")
        );
        let c = over(&d, &[("OTEL_TRACES_EXPORTER", "none")]).unwrap();
        assert!(!c.traces_enabled() && c.logs_enabled());
    }
}
