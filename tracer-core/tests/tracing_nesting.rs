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
