//! One call to set a service up: the process-wide tracer over the OTLP
//! pipeline, the `log` bridge, the `tracing` layer, and a guard that
//! delivers what is queued when the service ends.

use super::config::{Config, Error, Protocol, Wire};
use super::export::{BatchSettings, ExportStats, Pipeline};
use crate::{global, LogBridge, Sampler, Tracer};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Sets the service up from the environment: `OTEL_EXPORTER_OTLP_*`
/// (endpoint, per-signal endpoints, headers, protocol, compression),
/// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
/// and `_ARG`, `OTEL_BSP_*`, `OTEL_{TRACES,LOGS}_EXPORTER=none`,
/// `OTEL_SDK_DISABLED`, `TRACER_EXPORT_FILE`, `TRACER_FLUSH_TIMEOUT_MS`.
/// With nothing set, both signals go to `http://localhost:4318` as
/// `http/protobuf`, as the OpenTelemetry SDKs do.
///
/// Installs the process-wide tracer (the one `#[traced]` uses), the `log`
/// bridge at `Info` (records carry the current trace and span ids), and,
/// with the `tracing` feature, a global `tracing` subscriber with tracer's
/// layer. Same as `Builder::from_env()?.install()`.
///
/// # Errors
///
/// A variable with a bad value (the error names it), an export file that
/// cannot be opened, or a process-wide tracer, logger or `tracing`
/// subscriber already installed.
pub fn init() -> Result<Guard, Error> {
    Builder::from_env()?.install()
}

/// Setup in code, over the environment or instead of it.
///
/// ```no_run
/// use std::time::Duration;
/// use tracer_core::otlp::{Builder, Protocol};
/// use tracer_core::Sampler;
///
/// let _guard = Builder::new()
///     .service_name("checkout")
///     .endpoint("http://127.0.0.1:4318")
///     .protocol(Protocol::Json)
///     .sampler(Sampler::TraceIdRatio(0.1))
///     .flush_timeout(Duration::from_secs(2))
///     .install()?;
/// # Ok::<(), tracer_core::otlp::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "nothing is set up until `install` is called"]
pub struct Builder {
    config: Config,
    log_level: Option<log::LevelFilter>,
    #[cfg(feature = "tracing")]
    tracing: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// The OpenTelemetry defaults, environment unread: both signals to
    /// `http://localhost:4318`, `http/protobuf`, the default sampler
    /// (parent-based, always on), the `log` bridge at `Info`, and the
    /// `tracing` layer when that feature is on.
    pub fn new() -> Builder {
        Builder::with_config(Config::service_defaults())
    }

    /// The defaults with the environment read over them (see [`init`]).
    ///
    /// # Errors
    ///
    /// A variable with a bad value; the error names it.
    pub fn from_env() -> Result<Builder, Error> {
        Ok(Builder::with_config(Config::from_env()?))
    }

    /// Starts from a configuration made elsewhere.
    pub fn with_config(config: Config) -> Builder {
        Builder {
            config,
            log_level: Some(log::LevelFilter::Info),
            #[cfg(feature = "tracing")]
            tracing: true,
        }
    }

    /// The configuration so far.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The service's name (`service.name` of the resource).
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.config.service_name = name.into();
        self
    }

    /// One more resource attribute.
    pub fn resource_attribute(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.resource.push((key.into(), value.into()));
        self
    }

    /// The collector's base URL (`http://host:port`): spans to
    /// `/v1/traces`, logs to `/v1/logs`.
    pub fn endpoint(mut self, base: &str) -> Self {
        let base = base.trim_end_matches('/');
        self.config.traces_endpoint = Some(format!("{base}/v1/traces"));
        self.config.logs_endpoint = Some(format!("{base}/v1/logs"));
        self
    }

    /// Where spans go, as given; `None` exports no spans.
    pub fn traces_endpoint(mut self, url: Option<&str>) -> Self {
        self.config.traces_endpoint = url.map(str::to_owned);
        self
    }

    /// Where log records go, as given; `None` exports no logs.
    pub fn logs_endpoint(mut self, url: Option<&str>) -> Self {
        self.config.logs_endpoint = url.map(str::to_owned);
        self
    }

    /// A header sent with every export request (an API key, say).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.push((name.into(), value.into()));
        self
    }

    /// The encoding of both signals' requests.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        self.config.traces_wire.protocol = protocol;
        self.config.logs_wire.protocol = protocol;
        self
    }

    /// Gzip both signals' requests.
    pub fn gzip(mut self, on: bool) -> Self {
        self.config.traces_wire = Wire {
            gzip: on,
            ..self.config.traces_wire
        };
        self.config.logs_wire = Wire {
            gzip: on,
            ..self.config.logs_wire
        };
        self
    }

    /// Writes OTLP JSON requests to this file, one per line, instead of
    /// sending them (what `tracer-node view` reads).
    pub fn export_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.file = Some(path.into());
        self
    }

    /// Which traces are recorded.
    pub fn sampler(mut self, sampler: Sampler) -> Self {
        self.config.sampler = sampler;
        self
    }

    /// Batching and queueing (the `OTEL_BSP_*` settings).
    pub fn batch(mut self, batch: BatchSettings) -> Self {
        self.config.batch = batch;
        self
    }

    /// How long the guard keeps delivering at shutdown.
    pub fn flush_timeout(mut self, timeout: Duration) -> Self {
        self.config.flush_timeout = timeout;
        self
    }

    /// Bridges the `log` crate at `level` and above (`Info` unless told);
    /// `None` leaves the `log` crate alone.
    pub fn log_level(mut self, level: Option<log::LevelFilter>) -> Self {
        self.log_level = level;
        self
    }

    /// Whether to install a global `tracing` subscriber (a registry with
    /// tracer's layer, its events as log records); on unless told.
    #[cfg(feature = "tracing")]
    pub fn tracing(mut self, on: bool) -> Self {
        self.tracing = on;
        self
    }

    /// Starts the export and installs the process-wide tracer, the `log`
    /// bridge and the `tracing` subscriber as configured. With
    /// `OTEL_SDK_DISABLED=true` nothing is installed: spans stay no-ops.
    ///
    /// # Errors
    ///
    /// An export file that cannot be opened, or a tracer, logger or
    /// subscriber installed before.
    pub fn install(self) -> Result<Guard, Error> {
        let config = self.config;
        if config.disabled {
            return Ok(Guard {
                pipeline: Pipeline::default(),
                flush_timeout: config.flush_timeout,
                done: false,
            });
        }
        let pipeline = Pipeline::from_config(&config)?;
        let tracer = Tracer::new(config.sampler.clone(), pipeline.span_processor());
        if global::set_tracer(tracer).is_err() {
            return Err(Error(
                "a process-wide tracer is already installed (init called twice?)".into(),
            ));
        }
        let logs = pipeline.logs.as_ref().map(|l| l.processor.clone());
        if let Some(level) = self.log_level {
            LogBridge::new(logs.clone(), &config.service_name, level)
                .install()
                .map_err(|_| Error("a `log` logger is already installed".into()))?;
        }
        #[cfg(feature = "tracing")]
        if self.tracing {
            use tracing_subscriber::layer::SubscriberExt;
            let layer = crate::tracing::TracerLayer::global().with_logs(logs, &config.service_name);
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing_core::dispatcher::set_global_default(tracing_core::Dispatch::new(subscriber))
                .map_err(|_| Error("a global `tracing` subscriber is already set".into()))?;
        }
        Ok(Guard {
            pipeline,
            flush_timeout: config.flush_timeout,
            done: false,
        })
    }
}

/// Keeps the export running; when dropped (or [`Guard::shutdown`]),
/// delivers what is queued, giving up at the flush deadline, a request in
/// flight included. Hold it in `main`.
#[must_use = "dropping the guard stops the export"]
pub struct Guard {
    pipeline: Pipeline,
    flush_timeout: Duration,
    done: bool,
}

impl Guard {
    /// Each exported signal's counters now (`"spans"`, `"logs"`).
    pub fn stats(&self) -> Vec<(&'static str, ExportStats)> {
        let p = &self.pipeline;
        let spans = p.spans.as_ref().map(|s| ("spans", s.stats()));
        let logs = p.logs.as_ref().map(|l| ("logs", l.stats()));
        spans.into_iter().chain(logs).collect()
    }

    /// Delivers what is queued within the flush deadline and returns the
    /// final counters. Spans that end after this are not exported.
    pub fn shutdown(mut self) -> Vec<(&'static str, ExportStats)> {
        self.flush()
    }

    fn flush(&mut self) -> Vec<(&'static str, ExportStats)> {
        if std::mem::replace(&mut self.done, true) {
            return Vec::new();
        }
        self.pipeline.shutdown(Instant::now() + self.flush_timeout)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.flush();
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_sdk_installs_nothing_and_exports_nothing() {
        let config = Config {
            disabled: true,
            file: Some(std::env::temp_dir().join("tracer-never-written.jsonl")),
            ..Config::service_defaults()
        };
        let guard = Builder::with_config(config).install().expect("installs");
        assert!(guard.stats().is_empty(), "no pipeline runs");
        assert!(guard.shutdown().is_empty());
        assert!(!std::env::temp_dir()
            .join("tracer-never-written.jsonl")
            .exists());
    }

    #[test]
    fn the_builder_sets_what_it_is_told_over_the_defaults() {
        let b = Builder::new()
            .service_name("checkout")
            .endpoint("http://127.0.0.1:4318/")
            .header("api-key", "k")
            .protocol(Protocol::Json)
            .gzip(true)
            .flush_timeout(Duration::from_millis(250));
        let c = b.config();
        assert_eq!(c.service_name, "checkout");
        assert_eq!(
            c.traces_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            c.logs_endpoint.as_deref(),
            Some("http://127.0.0.1:4318/v1/logs")
        );
        assert_eq!(c.headers, [("api-key".to_owned(), "k".to_owned())]);
        assert_eq!(
            (c.traces_wire, c.logs_wire),
            (
                Wire {
                    protocol: Protocol::Json,
                    gzip: true
                },
                Wire {
                    protocol: Protocol::Json,
                    gzip: true
                }
            )
        );
        assert_eq!(c.flush_timeout, Duration::from_millis(250));
        let c = b.traces_endpoint(None).config().clone();
        assert!(!c.traces_enabled() && c.logs_enabled());
    }
}
