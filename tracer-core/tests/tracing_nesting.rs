//! `tracing` spans and tracer's own spans nest in one trace, either way
//! round; explicit parents and roots are kept.

mod support;

use support::{named, Setup};
use tracer_core::Sampler;

#[test]
fn tracing_inside_traced_and_traced_inside_tracing_make_one_trace() {
    let s = Setup::new(Sampler::AlwaysOn);
    s.run(|| {
        let outer = s.tracer.start("outer (tracer)").entered();
        let middle = tracing::info_span!("middle (tracing)").entered();
        let inner = s.tracer.start("inner (tracer)");
        drop(inner);
        drop(middle);
        drop(outer);
    });
    let spans = s.take();
    assert_eq!(spans.len(), 3);
    let (outer, middle, inner) = (
        named(&spans, "outer (tracer)"),
        named(&spans, "middle (tracing)"),
        named(&spans, "inner (tracer)"),
    );
    let trace = outer.context.trace_id();
    assert!(spans.iter().all(|x| x.context.trace_id() == trace));
    assert_eq!(middle.parent_span_id, Some(outer.context.span_id()));
    assert_eq!(inner.parent_span_id, Some(middle.context.span_id()));
    assert!(middle.end_unix_nanos >= middle.start_unix_nanos);
}

#[test]
fn explicit_parents_and_roots_are_kept() {
    let s = Setup::new(Sampler::AlwaysOn);
    s.run(|| {
        let a = tracing::info_span!("a");
        let _current = tracing::info_span!("current").entered();
        let b = tracing::info_span!(parent: &a, "b");
        let c = tracing::info_span!(parent: None, "c");
        drop((b, c, a));
    });
    let spans = s.take();
    let (a, b, c) = (named(&spans, "a"), named(&spans, "b"), named(&spans, "c"));
    assert_eq!(b.parent_span_id, Some(a.context.span_id()));
    assert_eq!(c.parent_span_id, None);
    assert_ne!(c.context.trace_id(), a.context.trace_id());
}

#[test]
fn follows_from_becomes_a_link() {
    let s = Setup::new(Sampler::AlwaysOn);
    s.run(|| {
        let cause = tracing::info_span!("cause");
        let effect = tracing::info_span!("effect");
        effect.follows_from(&cause);
        drop((effect, cause));
    });
    let spans = s.take();
    let (cause, effect) = (named(&spans, "cause"), named(&spans, "effect"));
    assert_eq!(effect.links.len(), 1);
    assert_eq!(effect.links[0].context, cause.context);
}

#[test]
fn unsampled_traces_record_nothing_but_still_nest() {
    let s = Setup::new(Sampler::AlwaysOff);
    s.run(|| {
        let outer = tracing::info_span!("outer").entered();
        let inner = s.tracer.start("inner");
        assert!(!inner.is_recording());
        assert_eq!(
            inner.context().trace_id(),
            tracer_core::current().unwrap().trace_id(),
            "the context still propagates"
        );
        tracing::info!("nothing recorded");
        drop((inner, outer));
    });
    assert!(s.take().is_empty());
}

#[test]
fn spans_made_before_they_are_entered_or_entered_elsewhere_keep_their_parents() {
    let s = Setup::new(Sampler::AlwaysOn);
    let dispatch = s.dispatch();
    tracing::dispatcher::with_default(&dispatch, || {
        let root = tracing::info_span!("root").entered();
        // Two made in a row, entered in the other order: the layer's
        // cache of the last span made must not hand out the wrong one.
        let a = tracing::info_span!("a");
        let b = tracing::info_span!("b");
        {
            let _a = a.enter();
            let _inner_a = tracing::info_span!("in a").entered();
        }
        {
            let _b = b.enter();
            let _inner_b = tracing::info_span!("in b").entered();
        }
        // Made here, entered on another thread.
        let moved = tracing::info_span!("moved");
        std::thread::scope(|scope| {
            scope.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _m = moved.enter();
                    drop(tracing::info_span!("in moved").entered());
                });
            });
        });
        drop((a, b, moved));
        drop(root);
    });
    let spans = s.take();
    let parent_of = |name: &str| {
        let child = named(&spans, name);
        spans
            .iter()
            .find(|p| Some(p.context.span_id()) == child.parent_span_id)
            .map(|p| p.name.to_string())
    };
    assert_eq!(parent_of("in b").as_deref(), Some("b"));
    assert_eq!(parent_of("in a").as_deref(), Some("a"));
    assert_eq!(parent_of("in moved").as_deref(), Some("moved"));
    assert_eq!(parent_of("a").as_deref(), Some("root"));
    assert_eq!(spans.len(), 7, "every span ended: {spans:#?}");
}
