//! Parents: the current span by default, a new trace with `root`, or an
//! explicit `parent = expr`.

mod support;

use support::{block_on, collector, run, tracer};
use tracer_core::{current, SpanContext, SpanData, TraceId};
use tracer_macros::traced;

#[traced]
fn leaf() -> Option<SpanContext> {
    current()
}

#[traced]
fn middle() -> Option<SpanContext> {
    leaf()
}

#[traced]
fn top() -> Option<SpanContext> {
    middle()
}

#[traced(root)]
fn new_trace() -> Option<SpanContext> {
    current()
}

#[traced(root)]
async fn new_trace_async() -> Option<SpanContext> {
    leaf()
}

#[traced(skip(ctx), parent = ctx.clone())]
fn explicit(ctx: SpanContext) -> Option<SpanContext> {
    let _ = ctx;
    current()
}

#[traced(parent = None::<SpanContext>)]
fn explicit_none() -> Option<SpanContext> {
    current()
}

#[traced(skip_all, parent = Some(ctx))]
fn explicit_some(ctx: SpanContext) -> Option<SpanContext> {
    current()
}

#[traced(skip(ctx), parent = ctx)]
async fn explicit_async(ctx: Option<SpanContext>) -> Option<SpanContext> {
    leaf()
}

/// The one span of a trace with this name, wherever it is.
fn find(trace_id: TraceId, name: &str) -> SpanData {
    let mut found: Vec<_> = collector()
        .spans_of(trace_id)
        .into_iter()
        .filter(|s| s.name == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {found:#?}");
    found.pop().unwrap()
}

/// A span of its own trace, ended, to serve as an explicit parent.
fn foreign_parent(name: &'static str) -> SpanContext {
    let span = tracer().span_builder(name).root().start();
    span.context().clone()
}

#[test]
fn nested_calls_make_a_chain_in_one_trace() {
    let (leaf_ctx, run) = run("parents-nested", top);
    let (t, m, l) = (run.one("top"), run.one("middle"), run.one("leaf"));
    assert_eq!(leaf_ctx, Some(l.context.clone()));
    assert_eq!(t.parent_span_id, Some(run.root_id));
    assert_eq!(m.parent_span_id, Some(t.context.span_id()));
    assert_eq!(l.parent_span_id, Some(m.context.span_id()));
    for s in [t, m, l] {
        assert_eq!(s.context.trace_id(), run.trace_id);
    }
    // Children end before their parents.
    let names: Vec<_> = run.spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["leaf", "middle", "top"]);
}

#[test]
fn root_starts_a_new_trace_even_inside_a_span() {
    let (ctx, run) = run("parents-root", new_trace);
    let ctx = ctx.expect("a current span inside");
    assert_ne!(ctx.trace_id(), run.trace_id);
    assert!(
        run.spans.is_empty(),
        "nothing in the test's trace: {:#?}",
        run.spans
    );
    let s = find(ctx.trace_id(), "new_trace");
    assert_eq!(s.parent_span_id, None);
    assert_eq!(s.context, ctx);
}

#[test]
fn root_on_an_async_fn() {
    let (ctx, run) = run("parents-root-async", || block_on(new_trace_async()));
    let trace_id = ctx.unwrap().trace_id();
    assert_ne!(trace_id, run.trace_id);
    let root = find(trace_id, "new_trace_async");
    assert_eq!(root.parent_span_id, None);
    assert_eq!(
        find(trace_id, "leaf").parent_span_id,
        Some(root.context.span_id())
    );
}

#[test]
fn explicit_parent_context() {
    let parent = foreign_parent("foreign-explicit");
    let (ctx, run) = run("parents-explicit", || explicit(parent.clone()));
    assert!(run.spans.is_empty(), "{:#?}", run.spans);
    let ctx = ctx.unwrap();
    assert_eq!(ctx.trace_id(), parent.trace_id());
    let s = find(parent.trace_id(), "explicit");
    assert_eq!(s.parent_span_id, Some(parent.span_id()));
    assert_eq!(s.context, ctx);
}

#[test]
fn explicit_none_is_a_root() {
    let (ctx, run) = run("parents-none", explicit_none);
    let ctx = ctx.unwrap();
    assert_ne!(ctx.trace_id(), run.trace_id);
    assert!(run.spans.is_empty());
    assert_eq!(find(ctx.trace_id(), "explicit_none").parent_span_id, None);
}

#[test]
fn explicit_some_context() {
    let parent = foreign_parent("foreign-some");
    let (ctx, run) = run("parents-some", || explicit_some(parent.clone()));
    assert!(run.spans.is_empty());
    assert_eq!(ctx.unwrap().trace_id(), parent.trace_id());
    let s = find(parent.trace_id(), "explicit_some");
    assert_eq!(s.parent_span_id, Some(parent.span_id()));
    assert_eq!(s.attributes, [], "skip_all");
}

#[test]
fn explicit_parent_on_an_async_fn() {
    let parent = foreign_parent("foreign-async");
    let (ctx, run) = run("parents-async", || {
        (
            block_on(explicit_async(Some(parent.clone()))),
            block_on(explicit_async(None)),
        )
    });
    assert!(run.spans.is_empty(), "{:#?}", run.spans);
    let (with, without) = (ctx.0.unwrap(), ctx.1.unwrap());
    let s = find(parent.trace_id(), "explicit_async");
    assert_eq!(s.parent_span_id, Some(parent.span_id()));
    assert_eq!(find(parent.trace_id(), "leaf").context, with);
    assert_ne!(without.trace_id(), run.trace_id);
    assert_ne!(without.trace_id(), parent.trace_id());
    assert_eq!(
        find(without.trace_id(), "explicit_async").parent_span_id,
        None
    );
}
