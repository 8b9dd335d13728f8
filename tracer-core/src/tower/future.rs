//! The future of both layers' services.

use super::{record_error, record_status, TracedBody};
use crate::span::Span;
use http::Response;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pin_project! {
    /// The future of [`ServerService`](super::ServerService) and
    /// [`ClientService`](super::ClientService): the inner service's, run
    /// with the request's span current on every poll. It resolves to the
    /// response, its status code recorded and its body wrapped in a
    /// [`TracedBody`] that ends the span, or to the service's error, which
    /// is recorded and ends the span at once. Dropped before it resolves
    /// (the request was cancelled), it ends the span then.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
        client: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Span, client: bool) -> Self {
        ResponseFuture {
            inner,
            span: Some(span),
            client,
        }
    }
}

impl<F: fmt::Debug> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("inner", &self.inner)
            .field("span", &self.span)
            .finish()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
{
    type Output = Result<Response<TracedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let span = this
                .span
                .as_ref()
                .expect("ResponseFuture polled after it resolved");
            let _current = span.enter();
            ready!(this.inner.poll(cx))
        };
        let mut span = this.span.take().expect("checked above");
        Poll::Ready(match result {
            Ok(response) => {
                record_status(&mut span, response.status(), *this.client);
                Ok(response.map(|body| TracedBody::new(body, span)))
            }
            Err(error) => {
                record_error(&mut span, &error);
                Err(error)
            }
        })
    }
}
