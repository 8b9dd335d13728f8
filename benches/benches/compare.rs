//! tracer against the incumbents, one process, fastrace's harness: a root
//! span with N children, N = 1, 10, 100, 1000, on one thread and on two.
//!
//! `cargo bench -p tracer-benches --bench compare`
//!
//! - `tracer`: the process-wide tracer, `BatchProcessor` to a dropping
//!   exporter (the equivalent of fastrace's dropping reporter).
//! - `fastrace`: `Span::root` + `LocalSpan`, reported to a reporter that drops.
//! - `tracing_otel`: tokio-tracing spans through tracing-opentelemetry into the
//!   OpenTelemetry SDK with an in-memory exporter.
//! - `tracing_otel_batch`: the same into the SDK's batch processor and an
//!   exporter that drops: the pipeline of `tracer` and `tracing_layer`.
//! - `otel_sdk`: the OpenTelemetry SDK directly, same exporter.
//! - `tracer_in_memory`: tracer with the same in-memory, export-per-span
//!   pipeline as the two OpenTelemetry rows.
//! - `tracing_layer`: tokio-tracing spans through tracer-core's `tracing` layer
//!   into the `tracer` row's pipeline.
//! - `tracing_registry`: the same spans through tracing-subscriber's
//!   registry alone, the floor of every `tracing_*` row.
//!
//! Every `tracing_*` row installs its subscriber the same way: an instance
//! per thread, as that thread's scoped default (see `with_subscriber`).

use std::sync::{Arc, OnceLock};
use tracer_core::{
    global, BatchConfig, BatchProcessor, DropExporter, InMemoryExporter, Sampler, SimpleProcessor,
    Tracer,
};

fn main() {
    // tracer's span clock measures the time-stamp counter's rate over its
    // first few milliseconds and reads through minstant until then: let it
    // settle, so that the first benchmarks time the steady state.
    tracer_core::now_unix_nanos();
    std::thread::sleep(std::time::Duration::from_millis(20));
    tracer_core::now_unix_nanos();
    divan::main();
}

const NS: &[usize] = &[1, 10, 100, 1000];

fn install_tracer() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let p = BatchProcessor::new(DropExporter, BatchConfig::default());
        global::set_tracer(Tracer::new(Sampler::AlwaysOn, p)).expect("first install");
    });
}

/// Each thread's span queue is 8192 slots (1.7 MB) that the kernel maps on
/// first touch: a thread's first call goes round it once, so that the
/// samples time the steady state (without it, the first 80 samples of a
/// row of 100-span samples each pay the page faults of 20 slots).
fn warm_queue() {
    thread_local! {
        static WARM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !WARM.get() {
        WARM.set(true);
        for _ in 0..BatchConfig::default().max_queue_size {
            global::tracer().start("warm-up");
        }
    }
}

fn tracer_harness(n: usize) {
    warm_queue();
    let t = global::tracer();
    let _root = t.span_builder("parent").root().start().entered();
    for _ in 0..n {
        let _child = t.start("child");
    }
}

#[divan::bench(args = NS, threads = [1, 2])]
fn tracer(bencher: divan::Bencher<'_, '_>, n: usize) {
    install_tracer();
    bencher.bench(|| tracer_harness(n));
}

fn in_memory_tracer() -> &'static (Tracer, Arc<InMemoryExporter>) {
    static T: OnceLock<(Tracer, Arc<InMemoryExporter>)> = OnceLock::new();
    T.get_or_init(|| {
        let mem = Arc::new(InMemoryExporter::new());
        let t = Tracer::new(Sampler::AlwaysOn, SimpleProcessor::new(mem.clone()));
        (t, mem)
    })
}

#[divan::bench(args = NS, threads = [1, 2])]
fn tracer_in_memory(bencher: divan::Bencher<'_, '_>, n: usize) {
    let (t, mem) = in_memory_tracer();
    bencher.with_inputs(|| mem.clear()).bench_values(|()| {
        let _root = t.span_builder("parent").root().start().entered();
        for _ in 0..n {
            let _child = t.start("child");
        }
    });
}

fn install_fastrace() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        struct DropReporter;
        impl fastrace::collector::Reporter for DropReporter {
            fn report(&mut self, _spans: Vec<fastrace::collector::SpanRecord>) {}
        }
        fastrace::set_reporter(DropReporter, fastrace::collector::Config::default());
    });
}

#[divan::bench(args = NS, threads = [1, 2])]
fn fastrace(bencher: divan::Bencher<'_, '_>, n: usize) {
    use fastrace::prelude::*;
    install_fastrace();
    bencher.bench(|| {
        let root = Span::root("parent", SpanContext::random());
        let _g = root.set_local_parent();
        for _ in 0..n {
            let _child = LocalSpan::enter_with_local_parent("child");
        }
    });
}

fn otel() -> &'static (
    opentelemetry_sdk::trace::SdkTracerProvider,
    opentelemetry_sdk::trace::InMemorySpanExporter,
) {
    static P: OnceLock<(
        opentelemetry_sdk::trace::SdkTracerProvider,
        opentelemetry_sdk::trace::InMemorySpanExporter,
    )> = OnceLock::new();
    P.get_or_init(|| {
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (provider, exporter)
    })
}

/// tracing-opentelemetry on the registry, recording into `provider`.
fn otel_subscriber(provider: &opentelemetry_sdk::trace::SdkTracerProvider) -> tracing::Dispatch {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;
    let tracer = provider.tracer("bench");
    tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(tracer)),
    )
}

/// The OpenTelemetry SDK with the layer row's pipeline: its batch
/// processor (a queue that a thread of its own drains) and an exporter that
/// drops what it is given.
fn otel_batch() -> &'static opentelemetry_sdk::trace::SdkTracerProvider {
    #[derive(Debug)]
    struct Dropping;
    impl opentelemetry_sdk::trace::SpanExporter for Dropping {
        async fn export(
            &self,
            _: Vec<opentelemetry_sdk::trace::SpanData>,
        ) -> opentelemetry_sdk::error::OTelSdkResult {
            Ok(())
        }
    }
    static P: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();
    P.get_or_init(|| {
        opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(Dropping)
            .build()
    })
}

fn layer_subscriber() -> tracing::Dispatch {
    use tracing_subscriber::layer::SubscriberExt;
    tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracer_core::tracing::TracerLayer::global()),
    )
}

fn registry_subscriber() -> tracing::Dispatch {
    tracing::Dispatch::new(tracing_subscriber::registry())
}

thread_local! {
    /// This thread's scoped default subscriber for the benchmark running
    /// on it (made on first use, kept for the thread's life).
    static SCOPED: std::cell::RefCell<Option<(&'static str, tracing::dispatcher::DefaultGuard)>> =
        const { std::cell::RefCell::new(None) };
}

/// Makes a subscriber of the row's kind this thread's scoped default, once
/// per thread: each thread has an instance of its own. A service installs
/// its subscriber as the process-wide default, whose `Dispatch` `tracing`
/// copies into every span for free; a scoped one is an `Arc`, whose count
/// `tracing` moves up and down on every span, and one instance shared by two
/// threads would pass that count's cache line between the cores each time
/// (a cost of the harness, not of the layers: the layer row took 20.6–24.0
/// µs on two threads at N = 100 with one shared instance, 18.9–20.5 µs with
/// one per thread; see BENCHMARKS.md).
fn with_subscriber(name: &'static str, make: fn() -> tracing::Dispatch) {
    SCOPED.with(|s| {
        let mut s = s.borrow_mut();
        if s.as_ref().map(|(n, _)| *n) != Some(name) {
            *s = None;
            *s = Some((name, tracing::dispatcher::set_default(&make())));
        }
    });
}

fn tracing_harness(n: usize) {
    let root = tracing::span!(tracing::Level::INFO, "parent");
    let _r = root.enter();
    for _ in 0..n {
        let child = tracing::span!(tracing::Level::INFO, "child");
        let _c = child.enter();
    }
}

/// tracing-opentelemetry into the SDK's simple processor and in-memory
/// exporter, as `otel_sdk` and `tracer_in_memory`.
#[divan::bench(args = NS, threads = [1, 2])]
fn tracing_otel(bencher: divan::Bencher<'_, '_>, n: usize) {
    let exporter = &otel().1;
    bencher
        .with_inputs(|| {
            with_subscriber("otel", || otel_subscriber(&otel().0));
            exporter.reset()
        })
        .bench_values(|()| tracing_harness(n));
}

/// tracing-opentelemetry into the SDK's batch processor and an exporter
/// that drops: the pipeline of `tracing_layer` and `tracer`.
#[divan::bench(args = NS, threads = [1, 2])]
fn tracing_otel_batch(bencher: divan::Bencher<'_, '_>, n: usize) {
    bencher
        .with_inputs(|| with_subscriber("otel_batch", || otel_subscriber(otel_batch())))
        .bench_values(|()| tracing_harness(n));
}

#[divan::bench(args = NS, threads = [1, 2])]
fn tracing_layer(bencher: divan::Bencher<'_, '_>, n: usize) {
    install_tracer();
    bencher
        .with_inputs(|| {
            warm_queue();
            with_subscriber("layer", layer_subscriber)
        })
        .bench_values(|()| tracing_harness(n));
}

/// The harness of the rows above through tracing-subscriber's registry
/// alone: the floor under any layer on the registry (every `tracing_*` row
/// pays it).
#[divan::bench(args = NS, threads = [1, 2])]
fn tracing_registry(bencher: divan::Bencher<'_, '_>, n: usize) {
    bencher
        .with_inputs(|| with_subscriber("registry", registry_subscriber))
        .bench_values(|()| tracing_harness(n));
}

/// One `tracing` span (made, entered, left, closed) with the layer over a
/// tracer that samples nothing, beside the same span with no layer at all.
#[divan::bench(sample_size = 64)]
fn tracing_layer_unsampled(bencher: divan::Bencher<'_, '_>) {
    use tracing_subscriber::layer::SubscriberExt;
    let off = Tracer::new(Sampler::AlwaysOff, tracer_core::NoopProcessor);
    let d = tracing::Dispatch::new(
        tracing_subscriber::registry().with(tracer_core::tracing::TracerLayer::new(off)),
    );
    tracing::dispatcher::with_default(&d, || {
        bencher.bench_local(|| {
            let s = tracing::span!(tracing::Level::INFO, "unsampled");
            let _e = s.enter();
        })
    });
}

/// The same unsampled span through tracing-opentelemetry, over an SDK
/// whose sampler samples nothing.
#[divan::bench(sample_size = 64)]
fn tracing_otel_unsampled(bencher: divan::Bencher<'_, '_>) {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .build();
    let d = otel_subscriber(&provider);
    tracing::dispatcher::with_default(&d, || {
        bencher.bench_local(|| {
            let s = tracing::span!(tracing::Level::INFO, "unsampled");
            let _e = s.enter();
        })
    });
}

/// The baseline of the two rows above: the same span, the registry alone.
#[divan::bench(sample_size = 64)]
fn tracing_registry_only(bencher: divan::Bencher<'_, '_>) {
    let d = tracing::Dispatch::new(tracing_subscriber::registry());
    tracing::dispatcher::with_default(&d, || {
        bencher.bench_local(|| {
            let s = tracing::span!(tracing::Level::INFO, "unsampled");
            let _e = s.enter();
        })
    });
}

#[divan::bench(args = NS, threads = [1, 2])]
fn otel_sdk(bencher: divan::Bencher<'_, '_>, n: usize) {
    use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
    let (provider, exporter) = otel();
    let tracer = provider.tracer("bench-sdk");
    bencher.with_inputs(|| exporter.reset()).bench_values(|()| {
        let root = tracer.start("parent");
        let cx = opentelemetry::Context::current_with_span(root);
        for _ in 0..n {
            let mut child = tracer.start_with_context("child", &cx);
            child.end();
        }
        cx.span().end();
    });
}

/// An unsampled span: its context propagates, nothing is recorded.
#[divan::bench]
fn unsampled_span(bencher: divan::Bencher<'_, '_>) {
    let t = Tracer::new(Sampler::AlwaysOff, tracer_core::NoopProcessor);
    let _root = t.start("root").entered();
    // The span is kept where it was made (as user code keeps it), not moved
    // into black_box by value, which would time a 272-byte copy.
    bencher.bench_local(|| {
        let span = t.start("unsampled");
        divan::black_box(&span);
    });
}

#[tracer_macros::traced]
fn traced_empty() {}

fn hand_written_empty() {
    let _span = global::tracer()
        .span_builder("hand_written_empty")
        .start()
        .entered();
}

/// `#[traced]` on an empty function, inside a root span. A fixed sample
/// size: timing one call per sample would be below the timer's precision.
#[divan::bench(sample_size = 64)]
fn traced_macro(bencher: divan::Bencher<'_, '_>) {
    install_tracer();
    let _root = global::tracer().start("root").entered();
    bencher.bench_local(traced_empty);
}

/// The same span written by hand with the API.
#[divan::bench(sample_size = 64)]
fn traced_by_hand(bencher: divan::Bencher<'_, '_>) {
    install_tracer();
    let _root = global::tracer().start("root").entered();
    bencher.bench_local(hand_written_empty);
}
