//! `tracer-node`: serves the Maelstrom protocol on stdin/stdout until stdin
//! closes, delivers what its exporters hold, and exits 0. Diagnostics go to
//! stderr. `tracer-node view` draws the traces of an export file instead.

mod view;

use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io;
use std::process::ExitCode;
use tracer_node::{Config, Node, Registry};

/// Distributed tracing node: JSON lines on stdin/stdout (the Maelstrom
/// protocol). Every option can also be set by the environment variable
/// named in its help; a flag overrides its variable.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Without a command, the node runs
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// Base OTLP/HTTP endpoint; /v1/traces and /v1/logs are appended
    /// [env: OTEL_EXPORTER_OTLP_ENDPOINT]
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// Traces endpoint, used as given [env: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT]
    #[arg(long, value_name = "URL")]
    otlp_traces_endpoint: Option<String>,
    /// Logs endpoint, used as given [env: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT]
    #[arg(long, value_name = "URL")]
    otlp_logs_endpoint: Option<String>,
    /// http/protobuf (the default) or http/json [env: OTEL_EXPORTER_OTLP_PROTOCOL;
    /// per signal OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_LOGS_PROTOCOL]
    #[arg(long, value_name = "PROTOCOL")]
    otlp_protocol: Option<String>,
    /// gzip or none (the default) [env: OTEL_EXPORTER_OTLP_COMPRESSION;
    /// per signal OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, OTEL_EXPORTER_OTLP_LOGS_COMPRESSION]
    #[arg(long, value_name = "NAME")]
    otlp_compression: Option<String>,
    /// Extra request headers, key=value,... [env: OTEL_EXPORTER_OTLP_HEADERS]
    #[arg(long, value_name = "PAIRS")]
    otlp_headers: Option<String>,
    /// Write OTLP JSON export requests to this file, one per line, instead
    /// of sending them [env: TRACER_EXPORT_FILE]
    #[arg(long, value_name = "PATH")]
    export_file: Option<String>,
    /// Service name of exported telemetry [env: OTEL_SERVICE_NAME]
    #[arg(long, value_name = "NAME")]
    service_name: Option<String>,
    /// Resource attributes, key=value,... [env: OTEL_RESOURCE_ATTRIBUTES]
    #[arg(long, value_name = "PAIRS")]
    resource_attributes: Option<String>,
    /// always_on, always_off, traceidratio, parentbased_always_on,
    /// parentbased_always_off, parentbased_traceidratio [env: OTEL_TRACES_SAMPLER]
    #[arg(long, value_name = "NAME")]
    sampler: Option<String>,
    /// The sampler's ratio, 0 to 1 [env: OTEL_TRACES_SAMPLER_ARG]
    #[arg(long, value_name = "RATIO")]
    sampler_arg: Option<String>,
    /// Export queue capacity [env: OTEL_BSP_MAX_QUEUE_SIZE]
    #[arg(long, value_name = "N")]
    max_queue_size: Option<String>,
    /// Items per export request [env: OTEL_BSP_MAX_EXPORT_BATCH_SIZE]
    #[arg(long, value_name = "N")]
    max_export_batch_size: Option<String>,
    /// Milliseconds a partial batch waits [env: OTEL_BSP_SCHEDULE_DELAY]
    #[arg(long, value_name = "MS")]
    schedule_delay: Option<String>,
    /// Milliseconds one export request may take [env: OTEL_BSP_EXPORT_TIMEOUT]
    #[arg(long, value_name = "MS")]
    export_timeout: Option<String>,
    /// Milliseconds to keep delivering at end of input [env: TRACER_FLUSH_TIMEOUT_MS]
    #[arg(long, value_name = "MS")]
    flush_timeout: Option<String>,
    /// Log entries kept [env: TRACER_MAX_LOGS]
    #[arg(long, value_name = "N")]
    max_logs: Option<String>,
    /// Traces kept [env: TRACER_MAX_TRACES]
    #[arg(long, value_name = "N")]
    max_traces: Option<String>,
    /// Spans kept per trace [env: TRACER_MAX_SPANS_PER_TRACE]
    #[arg(long, value_name = "N")]
    max_spans_per_trace: Option<String>,
    /// Longest input line in bytes [env: TRACER_MAX_LINE]
    #[arg(long, value_name = "BYTES")]
    max_line: Option<String>,
    /// Bytes the node's data may hold (45 % traces, 45 % logs, 10 %
    /// bookkeeping); units K, M, G (powers of 1024) [env: TRACER_MAX_MEMORY]
    #[arg(long, value_name = "BYTES")]
    max_memory: Option<String>,
}

/// What else the binary does.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Draw the traces of an OTLP JSON export file (--export-file) in the
    /// terminal, as an HTML page (--html) or as a Chrome trace (--chrome)
    View(view::ViewArgs),
}

impl Cli {
    /// Each flag under the name of the variable it overrides.
    fn overrides(self) -> HashMap<&'static str, String> {
        [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.otlp_endpoint),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                self.otlp_traces_endpoint,
            ),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", self.otlp_logs_endpoint),
            ("OTEL_EXPORTER_OTLP_HEADERS", self.otlp_headers),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", self.otlp_protocol),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", self.otlp_compression),
            ("TRACER_EXPORT_FILE", self.export_file),
            ("OTEL_SERVICE_NAME", self.service_name),
            ("OTEL_RESOURCE_ATTRIBUTES", self.resource_attributes),
            ("OTEL_TRACES_SAMPLER", self.sampler),
            ("OTEL_TRACES_SAMPLER_ARG", self.sampler_arg),
            ("OTEL_BSP_MAX_QUEUE_SIZE", self.max_queue_size),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", self.max_export_batch_size),
            ("OTEL_BSP_SCHEDULE_DELAY", self.schedule_delay),
            ("OTEL_BSP_EXPORT_TIMEOUT", self.export_timeout),
            ("TRACER_FLUSH_TIMEOUT_MS", self.flush_timeout),
            ("TRACER_MAX_LOGS", self.max_logs),
            ("TRACER_MAX_TRACES", self.max_traces),
            ("TRACER_MAX_SPANS_PER_TRACE", self.max_spans_per_trace),
            ("TRACER_MAX_LINE", self.max_line),
            ("TRACER_MAX_MEMORY", self.max_memory),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if let Some(Cmd::View(args)) = cli.cmd.take() {
        return view::run(args);
    }
    let overrides = cli.overrides();
    let config = match Config::from_lookup(&|name| {
        overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tracer-node: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    // Naming the plugins crate links its handlers into the binary.
    let served = plugins::served_types();
    let registry = match Registry::collect() {
        Ok(r) => r,
        Err(dup) => {
            eprintln!("tracer-node: cannot start: {dup}");
            return ExitCode::from(2);
        }
    };
    debug_assert_eq!(served.len(), registry.types().len());
    let mut node = match Node::new(registry, config) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tracer-node: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    node.install_globals();
    match node.run(io::stdin(), io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Nobody reads the replies any more (or stdout failed): say so,
            // deliver what the node holds, and exit non-zero, so that a
            // pipeline like `tracer-node < input | head -1` does not pass
            // for a run that served its input.
            if e.kind() == io::ErrorKind::BrokenPipe {
                eprintln!("tracer-node: stdout was closed; stopping without serving the rest of the input");
            } else {
                eprintln!("tracer-node: i/o error: {e}; stopping");
            }
            node.shutdown();
            ExitCode::FAILURE
        }
    }
}
