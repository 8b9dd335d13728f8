//! The response body that ends its request's span.

use crate::span::Span;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// A response body that carries the span of its request (the
    /// [`ServerLayer`](super::ServerLayer)'s SERVER span or the
    /// [`ClientLayer`](super::ClientLayer)'s CLIENT span) and ends it when
    /// the body has been read to its end, fails, or is dropped, whichever
    /// comes first: a request is timed to its last byte, not to its
    /// headers.
    ///
    /// While a frame is polled the span is the current span, as it is while
    /// the service's future runs. A body error is recorded on the span as
    /// an `exception` event, with `error.type` (the error's type name) and
    /// status ERROR.
    pub struct TracedBody<B> {
        #[pin]
        inner: B,
        span: Option<Span>,
    }
}

impl<B> TracedBody<B> {
    pub(crate) fn new(inner: B, span: Span) -> Self {
        TracedBody {
            inner,
            span: Some(span),
        }
    }

    /// The body inside.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }

    /// The span, until the body ends it.
    pub fn span(&self) -> Option<&Span> {
        self.span.as_ref()
    }

    /// The body inside, with the span ended now.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("inner", &self.inner)
            .field("span", &self.span)
            .finish()
    }
}

impl<B> Body for TracedBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let frame = {
            let _current = this.span.as_ref().map(Span::enter);
            ready!(this.inner.as_mut().poll_frame(cx))
        };
        match &frame {
            Some(Ok(_)) if !this.inner.is_end_stream() => {}
            Some(Ok(_)) | None => drop(this.span.take()),
            Some(Err(e)) => {
                if let Some(mut span) = this.span.take() {
                    super::record_error(&mut span, e);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
