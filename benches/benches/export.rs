//! Export throughput to a real collector: how many spans per second a
//! service can hand to its OTLP exporter and see delivered, with none
//! dropped. tracer's pipeline (`tracer_core::otlp`) against
//! `opentelemetry-otlp` behind the OpenTelemetry SDK's batch processor,
//! the same run, the same local rotel (from PyPI, receiving only), both
//! `http/protobuf` without compression, batches of 512.
//!
//! `cargo bench -p tracer-benches --bench export`
//!
//! One iteration makes `n` spans of three attributes each (name, kind
//! server, attributes set at start) on one thread into a queue that holds
//! all of them, then shuts the pipeline down, which returns once the
//! collector has acknowledged every batch: the time is make + encode +
//! send, and the counter gives spans per second. tracer's own counters are
//! checked for zero drops after each iteration; the SDK's queue is as
//! large, so neither drops by construction.

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracer_core::otlp::{BatchSettings, Config, Pipeline};
use tracer_core::{Sampler, SpanKind, Tracer};

static ENDPOINT: OnceLock<String> = OnceLock::new();

fn main() {
    let port = tests::collector::free_port();
    let collector = tests::collector::Collector::start_quiet(port);
    ENDPOINT.get_or_init(|| format!("http://127.0.0.1:{port}"));
    tracer_core::now_unix_nanos();
    std::thread::sleep(Duration::from_millis(20));
    divan::main();
    drop(collector);
}

const NS: &[usize] = &[10_000, 50_000];

fn endpoint() -> &'static str {
    ENDPOINT.get().expect("main starts the collector")
}

fn tracer_pipeline(n: usize) -> (Pipeline, Tracer) {
    let mut config = Config::quiet("bench");
    config.traces_endpoint = Some(format!("{}/v1/traces", endpoint()));
    config.batch = BatchSettings {
        max_queue_size: n,
        max_export_batch_size: 512,
        ..BatchSettings::default()
    };
    let pipeline = Pipeline::from_config(&config).expect("pipeline");
    let tracer = Tracer::new(Sampler::AlwaysOn, pipeline.span_processor());
    (pipeline, tracer)
}

#[divan::bench(args = NS, sample_count = 10, sample_size = 1)]
fn tracer(bencher: divan::Bencher<'_, '_>, n: usize) {
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .with_inputs(|| tracer_pipeline(n))
        .bench_local_values(|(pipeline, tracer)| {
            for i in 0..n {
                tracer
                    .span_builder("GET /orders/{id}")
                    .kind(SpanKind::Server)
                    .attribute("http.request.method", "GET")
                    .attribute("http.route", "/orders/{id}")
                    .attribute("order.id", i as i64)
                    .start();
            }
            let stats = pipeline.shutdown(Instant::now() + Duration::from_secs(60));
            let (_, spans) = stats[0];
            assert_eq!((spans.exported, spans.dropped), (n as u64, 0), "{stats:?}");
        });
}

fn otel_provider(n: usize) -> opentelemetry_sdk::trace::SdkTracerProvider {
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint()))
        .build()
        .expect("exporter");
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(n)
        .with_max_export_batch_size(512)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build()
}

#[divan::bench(args = NS, sample_count = 10, sample_size = 1)]
fn otel_otlp(bencher: divan::Bencher<'_, '_>, n: usize) {
    use opentelemetry::trace::{SpanKind, Tracer as _, TracerProvider as _};
    use opentelemetry::KeyValue;
    bencher
        .counter(divan::counter::ItemsCount::new(n))
        .with_inputs(|| otel_provider(n))
        .bench_local_values(|provider| {
            let tracer = provider.tracer("bench");
            for i in 0..n {
                tracer
                    .span_builder("GET /orders/{id}")
                    .with_kind(SpanKind::Server)
                    .with_attributes([
                        KeyValue::new("http.request.method", "GET"),
                        KeyValue::new("http.route", "/orders/{id}"),
                        KeyValue::new("order.id", i as i64),
                    ])
                    .start(&tracer);
            }
            provider.shutdown().expect("delivered");
        });
}
