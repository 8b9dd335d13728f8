//! The current span of each thread, and futures that carry theirs.

use crate::context::SpanContext;
use crate::span::Span;
use pin_project_lite::pin_project;
use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

thread_local! {
    static STACK: RefCell<Vec<SpanContext>> = const { RefCell::new(Vec::new()) };
}

/// The current span's context on this thread, if any.
pub fn current() -> Option<SpanContext> {
    STACK.with(|s| s.borrow().last().cloned())
}

/// Makes `ctx` current until the guard drops.
pub fn attach(ctx: SpanContext) -> ContextGuard {
    let depth = STACK.with(|s| {
        let mut s = s.borrow_mut();
        s.push(ctx);
        s.len() - 1
    });
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
        STACK.with(|s| s.borrow_mut().truncate(self.depth));
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
                    crate::ids::TraceId::INVALID,
                    crate::ids::SpanId::INVALID,
                    crate::context::TraceFlags::NONE,
                    false,
                    crate::propagation::TraceState::EMPTY,
                ),
            ),
        }
    }
}

impl<F: Future> FutureExt for F {}
