//! Shared by the feature tests: one process-wide tracer per test binary, a
//! collector that never loses other tests' spans, and a tiny executor.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use tracer_core::{global, Sampler, SpanData, SpanId, SpanProcessor, TraceId, Tracer};

/// Collects every finished span; readers filter, nobody removes.
#[derive(Default)]
pub struct Collector {
    spans: Mutex<Vec<SpanData>>,
}

impl SpanProcessor for Collector {
    fn on_end(&self, span: SpanData) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(span);
    }
}

impl Collector {
    /// A snapshot of the spans of one trace, in the order they ended.
    pub fn spans_of(&self, trace_id: TraceId) -> Vec<SpanData> {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.context.trace_id() == trace_id)
            .cloned()
            .collect()
    }
}

static COLLECTOR: OnceLock<Arc<Collector>> = OnceLock::new();

/// The collector behind the global tracer, installing both on first use.
pub fn collector() -> &'static Collector {
    COLLECTOR.get_or_init(|| {
        let c = Arc::new(Collector::default());
        global::set_tracer(Tracer::new(Sampler::AlwaysOn, c.clone()))
            .expect("only this module installs the global tracer");
        c
    })
}

/// The installed global tracer.
pub fn tracer() -> &'static Tracer {
    collector();
    global::tracer()
}

/// What one test ran: its root span's ids and the spans of its trace.
pub struct Run {
    pub trace_id: TraceId,
    pub root_id: SpanId,
    /// Every span of the trace except the test's root, in end order.
    pub spans: Vec<SpanData>,
}

impl Run {
    /// The only span with this name (panics if there are none or several).
    pub fn one(&self, name: &str) -> &SpanData {
        let found: Vec<_> = self.spans.iter().filter(|s| s.name == name).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one span named {name:?}, got {:#?}",
            self.spans
        );
        found[0]
    }
}

/// Runs `f` under a new root span named `test_name` (current on this
/// thread), then returns `f`'s result and the spans of that trace.
pub fn run<R>(test_name: &'static str, f: impl FnOnce() -> R) -> (R, Run) {
    let root = tracer().start(test_name).entered();
    let trace_id = root.context().trace_id();
    let root_id = root.context().span_id();
    let out = f();
    drop(root);
    let spans = collector()
        .spans_of(trace_id)
        .into_iter()
        .filter(|s| s.context.span_id() != root_id)
        .collect();
    (
        out,
        Run {
            trace_id,
            root_id,
            spans,
        },
    )
}

/// Wakes a parked thread.
pub struct ThreadWaker(pub Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the current thread.
pub fn thread_waker() -> Waker {
    Waker::from(Arc::new(ThreadWaker(thread::current())))
}

/// Runs a future to completion on this thread, parking while it is pending.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

/// Pending once (waking itself at once), then ready.
pub struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

pub fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

/// Ready after `ms` milliseconds, woken by a helper thread (no busy loop).
pub struct Sleep {
    ms: u64,
    done: Arc<Mutex<bool>>,
    started: bool,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if *self.done.lock().unwrap() {
            return Poll::Ready(());
        }
        if !self.started {
            self.started = true;
            let (done, waker, ms) = (self.done.clone(), cx.waker().clone(), self.ms);
            thread::spawn(move || {
                thread::sleep(std::time::Duration::from_millis(ms));
                *done.lock().unwrap() = true;
                waker.wake();
            });
        }
        Poll::Pending
    }
}

pub fn sleep_ms(ms: u64) -> Sleep {
    Sleep {
        ms,
        done: Arc::new(Mutex::new(false)),
        started: false,
    }
}

/// The string value of an attribute, with a helpful panic.
pub fn attr_str<'a>(span: &'a SpanData, key: &str) -> &'a str {
    span.attribute(key)
        .unwrap_or_else(|| panic!("no attribute {key:?} on {span:#?}"))
        .as_str()
        .unwrap_or_else(|| panic!("attribute {key:?} is not a string on {span:#?}"))
}
