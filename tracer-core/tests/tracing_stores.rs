//! Where the layer keeps open spans: each thread's own store, found from
//! other threads, outliving the thread that made the span, and one per
//! layer.

mod support;

use std::collections::HashSet;
use support::{named, Setup};
use tracer_core::Sampler;

/// Spans made on one thread and closed on another, more of them at once
/// than a store keeps in its short list: each ends once, with its parent.
#[test]
fn spans_closed_on_other_threads_end_once_with_their_parents() {
    let s = Setup::new(Sampler::AlwaysOn);
    let dispatch = s.dispatch();
    let made: Vec<tracing::Span> = tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("root");
        (0..100)
            .map(|i| tracing::info_span!(parent: &root, "child", i))
            .collect()
    });
    // Entered and closed on two other threads, in an order unlike the
    // one they were made in.
    let (evens, odds): (Vec<_>, Vec<_>) =
        made.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    std::thread::scope(|scope| {
        for half in [evens, odds] {
            let dispatch = &dispatch;
            scope.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    for (_, span) in half.into_iter().rev() {
                        span.in_scope(|| drop(tracing::info_span!("grandchild").entered()));
                        drop(span);
                    }
                });
            });
        }
    });
    let spans = s.take();
    let root = named(&spans, "root");
    let children: Vec<_> = spans.iter().filter(|x| x.name == "child").collect();
    assert_eq!(children.len(), 100);
    let ids: HashSet<_> = children.iter().map(|c| c.context.span_id()).collect();
    assert_eq!(ids.len(), 100, "each child ended once");
    assert!(children
        .iter()
        .all(|c| c.parent_span_id == Some(root.context.span_id())));
    let grandchildren: Vec<_> = spans.iter().filter(|x| x.name == "grandchild").collect();
    assert_eq!(grandchildren.len(), 100);
    assert!(grandchildren
        .iter()
        .all(|g| g.parent_span_id.is_some_and(|p| ids.contains(&p))));
}

/// A span outlives the thread that made it: found in that thread's store,
/// which stays while it holds the span.
#[test]
fn a_span_outlives_the_thread_that_made_it() {
    let s = Setup::new(Sampler::AlwaysOn);
    let dispatch = s.dispatch();
    let orphan = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || tracing::info_span!("orphan"))
            })
            .join()
            .unwrap()
    });
    tracing::dispatcher::with_default(&dispatch, || {
        orphan.in_scope(|| drop(tracing::info_span!("inside").entered()));
        // A new thread's store is listed (and stores of ended threads
        // that hold nothing let go) while the orphan is still open.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    drop(tracing::info_span!("elsewhere").entered())
                })
            });
        });
        drop(orphan);
    });
    let spans = s.take();
    let orphan = named(&spans, "orphan");
    assert_eq!(
        named(&spans, "inside").parent_span_id,
        Some(orphan.context.span_id())
    );
    assert_eq!(spans.len(), 3);
}

/// Two subscribers on one thread number their spans alike: each layer
/// keeps and finds its own.
#[test]
fn two_layers_on_one_thread_keep_their_spans_apart() {
    let a = Setup::new(Sampler::AlwaysOn);
    let b = Setup::new(Sampler::AlwaysOn);
    let (da, db) = (a.dispatch(), b.dispatch());
    tracing::dispatcher::with_default(&da, || {
        let outer = tracing::info_span!("a outer").entered();
        tracing::dispatcher::with_default(&db, || {
            let _b = tracing::info_span!("b outer").entered();
            drop(tracing::info_span!("b inner").entered());
        });
        drop(tracing::info_span!("a inner").entered());
        drop(outer);
    });
    let (sa, sb) = (a.take(), b.take());
    assert_eq!(sa.len(), 2);
    assert_eq!(sb.len(), 2);
    assert_eq!(
        named(&sa, "a inner").parent_span_id,
        Some(named(&sa, "a outer").context.span_id())
    );
    assert_eq!(
        named(&sb, "b inner").parent_span_id,
        Some(named(&sb, "b outer").context.span_id())
    );
}

/// Two subscribers' spans of the same id, entered one in the other and
/// left out of order: leaving the outer one leaves its own context (and,
/// tracer's stack being a stack, the one entered above it), not the other
/// layer's.
#[test]
fn leaving_out_of_order_across_two_layers_leaves_the_right_context() {
    let a = Setup::new(Sampler::AlwaysOn);
    let b = Setup::new(Sampler::AlwaysOn);
    let (da, db) = (a.dispatch(), b.dispatch());
    let outer = tracing::dispatcher::with_default(&da, || tracing::info_span!("a").entered());
    let a_ctx = tracer_core::current().expect("a is current");
    let inner = tracing::dispatcher::with_default(&db, || tracing::info_span!("b").entered());
    let b_ctx = tracer_core::current().expect("b is current");
    assert_ne!(a_ctx.span_id(), b_ctx.span_id());
    drop(outer);
    assert_eq!(tracer_core::current(), None, "a's context was left");
    drop(inner);
    assert_eq!(tracer_core::current(), None);
    assert_eq!(a.take().len(), 1);
    assert_eq!(b.take().len(), 1);
}
