//! The current span of each thread, and futures that carry theirs.

use crate::context::{SpanContext, TraceFlags};
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

thread_local! {
    /// The entered contexts, innermost last.
    static STACK: RefCell<Vec<SpanContext>> = const { RefCell::new(Vec::new()) };
    /// The innermost context's plain parts, kept beside the stack. A
    /// thread-local that needs no destructor is read with one `%fs` load;
    /// the stack (a `Vec`, which does) goes through std's lazy accessor.
    /// Every new span reads the current context, so this is its hot path.
    static TOP: Cell<Option<Top>> = const { Cell::new(None) };
}

/// What [`TOP`] keeps of a context: all but a non-empty trace state.
#[derive(Clone, Copy)]
struct Top {
    trace_id: TraceId,
    span_id: SpanId,
    flags: TraceFlags,
    is_remote: bool,
    /// The context has `tracestate` members: read it from the stack.
    has_state: bool,
}

impl Top {
    fn of(ctx: &SpanContext) -> Top {
        Top {
            trace_id: ctx.trace_id(),
            span_id: ctx.span_id(),
            flags: ctx.flags(),
            is_remote: ctx.is_remote(),
            has_state: !ctx.trace_state().is_empty(),
        }
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
    match TOP.get() {
        None => f(None),
        Some(top) if !top.has_state => f(Some(&SpanContext::new(
            top.trace_id,
            top.span_id,
            top.flags,
            top.is_remote,
            TraceState::EMPTY,
        ))),
        Some(_) => STACK.with(|s| f(s.borrow().last())),
    }
}

/// Makes `ctx` current until the guard drops.
pub fn attach(ctx: SpanContext) -> ContextGuard {
    let top = Top::of(&ctx);
    let depth = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.push(ctx);
        s.len() - 1
    });
    TOP.set(Some(top));
    ContextGuard {
        depth,
        _not_send: PhantomData,
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
        let top = STACK.with(|s| {
            let mut s = s.borrow_mut();
            s.truncate(self.depth);
            s.last().map(Top::of)
        });
        TOP.set(top);
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
