//! The current span of each thread, and futures that carry theirs.

use crate::context::{SpanContext, TraceFlags, REMOTE};
use crate::ids::{SpanId, TraceId};
use crate::propagation::TraceState;
use crate::span::Span;
use pin_project_lite::pin_project;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

/// How many entered contexts a thread keeps in [`FRAMES`]; deeper ones
/// (rare) go to [`SPILL`].
const INLINE: usize = 32;

thread_local! {
    /// The innermost context's plain parts. A thread-local that needs no
    /// destructor is read with one `%fs` load; every new span reads the
    /// current context, so this is its hot path.
    static TOP: Cell<Top> = const { Cell::new(Top::NONE) };
    /// How many contexts are entered on this thread.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The entered contexts' plain parts, outermost first, for the first
    /// [`INLINE`] depths: entering and leaving a context writes and reads
    /// plain cells (no borrow flag, no destructor, no allocation).
    static FRAMES: [Cell<Top>; INLINE] = const { [const { Cell::new(Top::NONE) }; INLINE] };
    /// Their tags: zero for tracer's own [`attach`], a `tracing` span's id
    /// for the layer's enter (kept apart, so that looking for one reads a
    /// word).
    static TAGS: [Cell<u64>; INLINE] = const { [const { Cell::new(0) }; INLINE] };
    /// The whole contexts of the frames that have `tracestate` members,
    /// and of every frame past [`INLINE`], with their depth and tag,
    /// innermost last.
    static SPILL: RefCell<Vec<(usize, SpanContext, u64)>> = const { RefCell::new(Vec::new()) };
    /// Whether [`SPILL`] holds anything, so that leaving a context looks
    /// at it only then.
    static SPILLED: Cell<bool> = const { Cell::new(false) };
}

/// What [`TOP`] keeps of a context: all but a non-empty trace state. The
/// flags and marks share one word, so that the whole is copied as two
/// aligned halves (a struct of odd-sized fields is copied by overlapping
/// moves that the store buffer cannot forward, and stalls its next read).
#[derive(Clone, Copy)]
struct Top {
    trace_id: TraceId,
    span_id: SpanId,
    /// The flags' bits, then [`REMOTE`], [`HAS_STATE`], [`PRESENT`].
    bits: u64,
}

/// The context has `tracestate` members: read it from [`SPILL`].
const HAS_STATE: u64 = 1 << 17;
/// A context is current (clear in [`Top::NONE`]).
const PRESENT: u64 = 1 << 18;

impl Top {
    /// No current context.
    const NONE: Top = Top {
        trace_id: TraceId::INVALID,
        span_id: SpanId::INVALID,
        bits: 0,
    };

    #[inline]
    fn of(ctx: &SpanContext) -> Top {
        let mut bits = ctx.bits() | PRESENT;
        if !ctx.trace_state().is_empty() {
            bits |= HAS_STATE;
        }
        Top {
            trace_id: ctx.trace_id(),
            span_id: ctx.span_id(),
            bits,
        }
    }

    fn is_present(self) -> bool {
        self.bits & PRESENT != 0
    }

    fn has_state(self) -> bool {
        self.bits & HAS_STATE != 0
    }

    /// The context, with no trace state.
    #[inline]
    fn plain_context(self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            self.span_id,
            TraceFlags::from_raw(self.bits as u16),
            self.bits & REMOTE != 0,
            TraceState::EMPTY,
        )
    }
}

/// The current span's context on this thread, if any.
pub fn current() -> Option<SpanContext> {
    with_current(|c| c.cloned())
}

/// Runs `f` with the current span's context, borrowed: what a new span needs
/// from its parent is read in place, and the context is not cloned.
/// `f` must not attach or leave contexts on this thread.
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&SpanContext>) -> R) -> R {
    let top = TOP.get();
    if !top.is_present() {
        f(None)
    } else if !top.has_state() {
        f(Some(&top.plain_context()))
    } else {
        // The innermost frame has a trace state, so it was spilled, and
        // is the spill's last entry.
        SPILL.with(|s| f(s.borrow().last().map(|(_, c, _)| c)))
    }
}

/// Makes `ctx` current until the guard drops.
pub fn attach(ctx: SpanContext) -> ContextGuard {
    ContextGuard {
        depth: push(ctx, 0),
        _not_send: PhantomData,
    }
}

/// Enters `ctx` with `tag`; returns the depth it was entered at.
#[inline]
fn push(ctx: SpanContext, tag: u64) -> usize {
    push_top(Top::of(&ctx), tag, || ctx)
}

/// Enters the context whose plain parts are `top`; the whole context is
/// made (by `ctx`) only when it has to be spilled.
#[inline(always)]
fn push_top(top: Top, tag: u64, ctx: impl FnOnce() -> SpanContext) -> usize {
    let depth = DEPTH.get();
    if depth < INLINE {
        FRAMES.with(|f| f[depth].set(top));
        TAGS.with(|t| t[depth].set(tag));
    }
    if depth >= INLINE || top.has_state() {
        spill(depth, ctx(), tag);
    }
    DEPTH.set(depth + 1);
    TOP.set(top);
    depth
}

#[cold]
fn spill(depth: usize, ctx: SpanContext, tag: u64) {
    SPILL.with(|s| s.borrow_mut().push((depth, ctx, tag)));
    SPILLED.set(true);
}

/// Leaves every context entered at `depth` or deeper; none if the stack is
/// not that deep. Depths are all a guard knows: one whose context already
/// went with an outer one (left out of order) leaves, when it drops,
/// whatever has been entered at its depth since.
#[inline]
fn truncate(depth: usize) {
    if depth >= DEPTH.get() {
        return;
    }
    DEPTH.set(depth);
    if SPILLED.get() {
        unspill(depth);
    }
    TOP.set(depth.checked_sub(1).map_or(Top::NONE, top_at));
}

#[cold]
fn unspill(depth: usize) {
    SPILL.with(|s| {
        let mut s = s.borrow_mut();
        while s.last().is_some_and(|(d, _, _)| *d >= depth) {
            s.pop();
        }
        SPILLED.set(!s.is_empty());
    });
}

/// The plain parts of the context entered at `depth`, which must be below
/// the current depth.
#[inline(always)]
fn top_at(depth: usize) -> Top {
    if depth < INLINE {
        FRAMES.with(|f| f[depth].get())
    } else {
        spilled(depth, |ctx, _| Top::of(ctx))
    }
}

/// The tag of the context entered at `depth`, which must be below the
/// current depth.
#[cfg(feature = "tracing")]
#[inline(always)]
fn tag_at(depth: usize) -> u64 {
    if depth < INLINE {
        TAGS.with(|t| t[depth].get())
    } else {
        spilled(depth, |_, tag| tag)
    }
}

#[cold]
fn spilled<R>(depth: usize, f: impl FnOnce(&SpanContext, u64) -> R) -> R {
    SPILL.with(|s| {
        let s = s.borrow();
        let (_, ctx, tag) = s
            .iter()
            .rev()
            .find(|(d, _, _)| *d == depth)
            .expect("every frame past the inline ones is spilled");
        f(ctx, *tag)
    })
}

/// Makes `ctx` current until [`leave_tagged`] is called with the same
/// (non-zero) tag on this thread: the `tracing` layer's enter and exit,
/// which come as two calls rather than a guard.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn enter_tagged(ctx: SpanContext, tag: std::num::NonZeroU64) {
    push(ctx, tag.get());
}

/// [`enter_tagged`] for a context known to have no trace state, from its
/// plain parts (the span the layer made last): no [`SpanContext`] is made
/// and taken apart again.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn enter_plain(ctx: PlainContext, tag: std::num::NonZeroU64) {
    push_top(ctx.0, tag.get(), || ctx.0.plain_context());
}

/// Leaves the innermost context entered with `tag`, and any entered above
/// it (the stack is a stack); does nothing if there is none.
#[cfg(feature = "tracing")]
#[inline]
pub(crate) fn leave_tagged(tag: std::num::NonZeroU64) {
    let mut depth = DEPTH.get();
    while depth > 0 {
        depth -= 1;
        if tag_at(depth) == tag.get() {
            truncate(depth);
            return;
        }
    }
}

/// The plain parts of a context (no `tracestate` members), copied out of
/// and back into a [`SpanContext`] without touching a reference count: what
/// the `tracing` layer caches of the span made last on a thread.
#[cfg(feature = "tracing")]
#[derive(Clone, Copy)]
pub(crate) struct PlainContext(Top);

#[cfg(feature = "tracing")]
impl PlainContext {
    /// `None` when the context has `tracestate` members.
    pub(crate) fn of(ctx: &SpanContext) -> Option<PlainContext> {
        let top = Top::of(ctx);
        (!top.has_state()).then_some(PlainContext(top))
    }
}

/// Restores the previous current span when dropped. Not `Send`: a context is
/// entered and left on one thread.
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        truncate(self.depth);
    }
}

/// A span that is current for as long as it lives; it ends when dropped.
/// Made by [`Span::entered`].
#[derive(Debug)]
pub struct EnteredSpan {
    // Field order matters: the context is left before the span ends.
    _guard: ContextGuard,
    span: Span,
}

impl Span {
    /// Makes this span current until the returned guard drops, then ends it.
    pub fn entered(self) -> EnteredSpan {
        EnteredSpan {
            _guard: attach(self.context().clone()),
            span: self,
        }
    }

    /// Makes this span current until the guard drops, without ending it.
    pub fn enter(&self) -> ContextGuard {
        attach(self.context().clone())
    }
}

impl Deref for EnteredSpan {
    type Target = Span;
    fn deref(&self) -> &Span {
        &self.span
    }
}

impl DerefMut for EnteredSpan {
    fn deref_mut(&mut self) -> &mut Span {
        &mut self.span
    }
}

pin_project! {
    /// A future that makes a context current on every poll, whichever thread
    /// polls it.
    #[derive(Debug)]
    pub struct WithContext<F> {
        #[pin]
        inner: F,
        context: SpanContext,
    }
}

impl<F> WithContext<F> {
    /// Wraps a future.
    pub fn new(inner: F, context: SpanContext) -> Self {
        WithContext { inner, context }
    }
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = attach(this.context.clone());
        this.inner.poll(cx)
    }
}

pin_project! {
    /// A future that runs inside a span and ends it when it completes or is
    /// dropped.
    #[derive(Debug)]
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        span: Span,
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _guard = this.span.enter();
        let out = this.inner.poll(cx);
        if out.is_ready() {
            this.span.end();
        }
        out
    }
}

/// Extension methods for futures.
pub trait FutureExt: Future + Sized {
    /// Runs the future inside `span`, ending it when the future completes.
    fn in_span(self, span: Span) -> Instrumented<Self> {
        Instrumented { inner: self, span }
    }

    /// Makes `context` current on every poll.
    fn with_context(self, context: SpanContext) -> WithContext<Self> {
        WithContext::new(self, context)
    }

    /// Captures the current context now and makes it current on every poll,
    /// for futures handed to another thread or executor.
    fn with_current_context(self) -> WithContext<Self> {
        match current() {
            Some(ctx) => WithContext::new(self, ctx),
            None => WithContext::new(
                self,
                SpanContext::new(
                    TraceId::INVALID,
                    SpanId::INVALID,
                    TraceFlags::NONE,
                    false,
                    TraceState::EMPTY,
                ),
            ),
        }
    }
}

impl<F: Future> FutureExt for F {}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(n: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from_u128(7),
            SpanId::from_u64(n),
            TraceFlags::SAMPLED,
            false,
            TraceState::EMPTY,
        )
    }

    fn with_state(n: u64) -> SpanContext {
        let state = TraceState::EMPTY.insert("k", &n.to_string()).unwrap();
        SpanContext::new(
            TraceId::from_u128(7),
            SpanId::from_u64(n),
            TraceFlags::SAMPLED,
            false,
            state,
        )
    }

    fn current_id() -> Option<u64> {
        current().map(|c| c.span_id().to_u64())
    }

    #[test]
    fn nesting_past_the_inline_frames_unwinds_in_order() {
        let n = INLINE as u64 * 2 + 3;
        let mut guards = Vec::new();
        for i in 1..=n {
            guards.push(attach(ctx(i)));
            assert_eq!(current_id(), Some(i));
        }
        for i in (1..=n).rev() {
            assert_eq!(current_id(), Some(i));
            guards.pop();
        }
        assert_eq!(current_id(), None);
        assert!(!SPILLED.get());
    }

    #[test]
    fn a_trace_state_is_current_with_its_context_inline_and_spilled() {
        let outer = attach(ctx(1));
        let stated = attach(with_state(2));
        assert_eq!(current(), Some(with_state(2)));
        let mut deep = Vec::new();
        for i in 3..(INLINE as u64 + 5) {
            deep.push(attach(if i % 2 == 0 { with_state(i) } else { ctx(i) }));
        }
        let last = INLINE as u64 + 4;
        assert_eq!(current(), Some(with_state(last)));
        deep.pop();
        assert_eq!(current(), Some(ctx(last - 1)));
        drop(deep);
        assert_eq!(current(), Some(with_state(2)));
        drop(stated);
        assert_eq!(current(), Some(ctx(1)));
        drop(outer);
        assert_eq!(current(), None);
        assert!(!SPILLED.get());
    }

    #[test]
    fn an_outer_guard_dropped_first_takes_the_inner_ones_with_it() {
        let outer = attach(ctx(1));
        let inner = attach(ctx(2));
        drop(outer);
        assert_eq!(current_id(), None);
        let again = attach(ctx(3));
        assert_eq!(current_id(), Some(3));
        // The inner guard's context is gone already: dropping it leaves
        // the one entered since in place.
        drop(inner);
        assert_eq!(current_id(), Some(3));
        drop(again);
        assert_eq!(current_id(), None);
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn leaving_a_tag_leaves_what_was_entered_above_it() {
        use std::num::NonZeroU64;
        let tag = |n| NonZeroU64::new(n).unwrap();
        let _own = attach(ctx(1));
        enter_tagged(ctx(10), tag(10));
        enter_tagged(with_state(11), tag(11));
        let _inner = attach(ctx(12));
        assert_eq!(current_id(), Some(12));
        leave_tagged(tag(99));
        assert_eq!(current_id(), Some(12));
        leave_tagged(tag(11));
        assert_eq!(current_id(), Some(10));
        leave_tagged(tag(10));
        assert_eq!(current_id(), Some(1));
        assert!(!SPILLED.get());
    }
}
