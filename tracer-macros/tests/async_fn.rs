//! `#[traced] async fn`: the span is current whenever the future runs, on
//! whichever thread polls it, and ends when it completes or is dropped.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use support::{block_on, collector, run, sleep_ms, thread_waker, yield_once};
use tracer_core::{current, SpanContext};
use tracer_macros::traced;

#[traced]
async fn inner(step: u32) -> Option<SpanContext> {
    yield_once().await;
    let _ = step;
    current()
}

/// Returns what was current at each point of its body.
#[traced]
async fn outer() -> Vec<Option<SpanContext>> {
    let mut seen = vec![current()];
    yield_once().await;
    seen.push(current());
    let child = inner(1).await;
    seen.push(current());
    sleep_ms(5).await;
    seen.push(current());
    seen.push(child);
    seen
}

#[traced]
async fn sleeper(ms: u64) {
    sleep_ms(ms).await;
    yield_once().await;
}

#[traced]
fn sync_child() -> Option<SpanContext> {
    current()
}

#[traced]
async fn moved(marker: &'static str) -> (std::thread::ThreadId, Option<SpanContext>) {
    let _ = marker;
    yield_once().await;
    // After the first `Pending`: the test moves the future to another thread.
    let thread = std::thread::current().id();
    let c = sync_child();
    let _manual = support::tracer().start("manual-child");
    (thread, c)
}

#[traced]
async fn never_finishes() {
    yield_once().await;
    std::future::pending::<()>().await;
}

#[test]
fn span_is_current_across_await_points_and_parents_nested_calls() {
    let (seen, run) = run("async-nested", || block_on(outer()));
    let outer_span = run.one("outer");
    let inner_span = run.one("inner");
    assert_eq!(outer_span.parent_span_id, Some(run.root_id));
    let outer_ctx = Some(outer_span.context.clone());
    assert_eq!(
        seen[..4],
        [
            outer_ctx.clone(),
            outer_ctx.clone(),
            outer_ctx.clone(),
            outer_ctx
        ]
    );
    // Inside `inner`, its own span was current, and it is a child of `outer`.
    assert_eq!(seen[4], Some(inner_span.context.clone()));
    assert_eq!(
        inner_span.parent_span_id,
        Some(outer_span.context.span_id())
    );
    assert_eq!(inner_span.context.trace_id(), run.trace_id);
    assert_eq!(inner_span.attribute("step").unwrap().as_str(), Some("1"));
    // Once the future completes, nothing of it stays current.
    assert_eq!(current(), None);
}

#[test]
fn duration_covers_the_awaits() {
    let ((), run) = run("async-duration", || block_on(sleeper(40)));
    let s = run.one("sleeper");
    assert!(
        s.duration_nanos() >= Duration::from_millis(40).as_nanos() as u64,
        "{} ns",
        s.duration_nanos()
    );
}

#[test]
fn future_moved_to_another_thread_keeps_its_span() {
    let (out, run) = run("async-moved", || {
        let mut fut: Pin<Box<dyn Future<Output = _> + Send>> = Box::pin(moved("m"));
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        let here = std::thread::current().id();
        let (there, child) = std::thread::spawn(move || {
            assert_eq!(current(), None, "nothing is current on the new thread");
            let out = block_on(fut);
            assert_eq!(current(), None, "the context left with the poll");
            out
        })
        .join()
        .unwrap();
        assert_ne!(here, there);
        child
    });
    let span = run.one("moved");
    assert_eq!(span.parent_span_id, Some(run.root_id));
    let sync = run.one("sync_child");
    assert_eq!(out, Some(sync.context.clone()));
    assert_eq!(sync.parent_span_id, Some(span.context.span_id()));
    assert_eq!(
        run.one("manual-child").parent_span_id,
        Some(span.context.span_id())
    );
}

#[test]
fn interleaved_futures_each_keep_their_own_span() {
    let (out, run) = run("async-interleaved", || {
        let mut a = Box::pin(inner(10));
        let mut b = Box::pin(inner(20));
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        let (mut ra, mut rb) = (None, None);
        while ra.is_none() || rb.is_none() {
            if ra.is_none() {
                if let Poll::Ready(v) = a.as_mut().poll(&mut cx) {
                    ra = Some(v);
                }
            }
            if rb.is_none() {
                if let Poll::Ready(v) = b.as_mut().poll(&mut cx) {
                    rb = Some(v);
                }
            }
        }
        (ra.unwrap(), rb.unwrap())
    });
    assert_eq!(run.spans.len(), 2);
    let by_step = |step: &str| {
        run.spans
            .iter()
            .find(|s| s.attribute("step").unwrap().as_str() == Some(step))
            .unwrap()
    };
    let (a, b) = (by_step("10"), by_step("20"));
    assert_eq!(out, (Some(a.context.clone()), Some(b.context.clone())));
    assert_ne!(a.context.span_id(), b.context.span_id());
    assert_eq!(a.parent_span_id, Some(run.root_id));
    assert_eq!(b.parent_span_id, Some(run.root_id));
}

#[test]
fn dropping_the_future_early_still_ends_its_span() {
    let ((), run) = run("async-dropped", || {
        let root = current().expect("the test's root span");
        let mut fut = Box::pin(never_finishes());
        let waker = thread_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(
            current(),
            Some(root.clone()),
            "the future's span left with the poll"
        );
        let ended = |trace| {
            collector()
                .spans_of(trace)
                .iter()
                .any(|s| s.name == "never_finishes")
        };
        assert!(!ended(root.trace_id()), "ended while still pending");
        drop(fut);
        assert!(ended(root.trace_id()), "not ended when dropped");
    });
    let s = run.one("never_finishes");
    assert_eq!(s.parent_span_id, Some(run.root_id));
    assert!(s.end_unix_nanos >= s.start_unix_nanos);
}
