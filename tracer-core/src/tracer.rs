//! The tracer: span builder, sampling decision, and the hand-off of finished
//! spans to a processor.

use crate::attributes::{KeyValue, Value};
use crate::context::{SpanContext, TraceFlags};
use crate::current;
use crate::ids::{SpanId, TraceId};
use crate::processor::{NoopProcessor, SpanProcessor};
use crate::propagation::TraceState;
use crate::sampling::Sampler;
use crate::span::{now_unix_nanos, Link, Span, SpanData, SpanKind, Status};
use std::borrow::Cow;
use std::sync::Arc;

struct Inner {
    sampler: Sampler,
    processor: Box<dyn SpanProcessor>,
}

/// Creates spans. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tracer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracer")
            .field("sampler", &self.inner.sampler)
            .finish_non_exhaustive()
    }
}

impl Tracer {
    /// A tracer with a sampler and a processor for finished spans.
    pub fn new(sampler: Sampler, processor: impl SpanProcessor + 'static) -> Self {
        Tracer {
            inner: Arc::new(Inner {
                sampler,
                processor: Box::new(processor),
            }),
        }
    }

    /// A tracer that records nothing; its spans still carry and propagate
    /// context.
    pub fn noop() -> Self {
        Tracer::new(Sampler::AlwaysOff, NoopProcessor)
    }

    /// The sampler.
    pub fn sampler(&self) -> &Sampler {
        &self.inner.sampler
    }

    /// Starts building a span.
    pub fn span_builder(&self, name: impl Into<Cow<'static, str>>) -> SpanBuilder<'_> {
        SpanBuilder {
            tracer: self,
            name: name.into(),
            kind: SpanKind::Internal,
            attributes: Vec::new(),
            links: Vec::new(),
            parent: Parent::Current,
            start: None,
            sampler: None,
        }
    }

    /// Starts an internal span, child of the current span.
    pub fn start(&self, name: impl Into<Cow<'static, str>>) -> Span {
        self.span_builder(name).start()
    }

    /// Hands a finished span to the processor, in place.
    #[inline]
    pub(crate) fn finish_in(&self, slot: &mut Option<SpanData>) {
        self.inner.processor.on_end_in(slot);
    }

    /// Whether two handles are the same tracer.
    pub fn ptr_eq(&self, other: &Tracer) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Asks the processor to export what it holds.
    pub fn force_flush(&self) {
        self.inner.processor.force_flush();
    }
}

enum Parent {
    Current,
    Root,
    RootIn(TraceId),
    Explicit(SpanContext),
}

/// Configures a span before it starts. Made by [`Tracer::span_builder`].
#[must_use = "a span builder does nothing until `start`"]
pub struct SpanBuilder<'t> {
    tracer: &'t Tracer,
    name: Cow<'static, str>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
    parent: Parent,
    start: Option<u64>,
    sampler: Option<&'t Sampler>,
}

impl<'t> SpanBuilder<'t> {
    /// Sets the kind.
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Adds an attribute.
    pub fn attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        self.attributes.push(KeyValue::new(key, value));
        self
    }

    /// Adds attributes.
    pub fn attributes(mut self, attrs: impl IntoIterator<Item = KeyValue>) -> Self {
        self.attributes.extend(attrs);
        self
    }

    /// Adds a link.
    pub fn link(mut self, context: SpanContext, attributes: Vec<KeyValue>) -> Self {
        self.links.push(Link {
            context,
            attributes,
        });
        self
    }

    /// Uses an explicit parent instead of the current span.
    pub fn parent(mut self, parent: SpanContext) -> Self {
        self.parent = Parent::Explicit(parent);
        self
    }

    /// Uses an explicit parent when given, else makes a new root (not the
    /// current span: an absent remote parent means a new trace).
    pub fn parent_or_root(mut self, parent: Option<SpanContext>) -> Self {
        self.parent = parent.map_or(Parent::Root, Parent::Explicit);
        self
    }

    /// Makes the span a new root, ignoring the current span.
    pub fn root(mut self) -> Self {
        self.parent = Parent::Root;
        self
    }

    /// Makes the span the root of a trace whose id is already known (a
    /// client named it): no parent, that trace id. An invalid id makes a
    /// new trace.
    pub fn root_in(mut self, trace_id: TraceId) -> Self {
        self.parent = Parent::RootIn(trace_id);
        self
    }

    /// Sets an explicit start time.
    pub fn start_time(mut self, unix_nanos: u64) -> Self {
        self.start = Some(unix_nanos);
        self
    }

    /// Overrides the tracer's sampler for this span.
    pub fn sampler(mut self, sampler: &'t Sampler) -> Self {
        self.sampler = Some(sampler);
        self
    }

    /// Starts the span.
    #[inline]
    pub fn start(self) -> Span {
        let mut given = None;
        let parent = match self.parent {
            Parent::Current => current::current().filter(SpanContext::is_valid),
            Parent::Root => None,
            Parent::RootIn(t) => {
                given = Some(t).filter(|t| t.is_valid());
                None
            }
            Parent::Explicit(p) => Some(p).filter(SpanContext::is_valid),
        };
        let (trace_id, state) = match &parent {
            Some(p) => (p.trace_id(), p.trace_state().clone()),
            None => (given.unwrap_or_else(TraceId::random), TraceState::EMPTY),
        };
        let sampler = self.sampler.unwrap_or(&self.tracer.inner.sampler);
        let sampled = sampler.should_sample(parent.as_ref(), trace_id);
        let flags = parent
            .as_ref()
            .map_or(TraceFlags::NONE, SpanContext::flags)
            .with_sampled(sampled);
        let context = SpanContext::new(trace_id, SpanId::random(), flags, false, state);
        if !sampled {
            return Span::non_recording(context);
        }
        let start = self.start.unwrap_or_else(now_unix_nanos);
        let tracer = (!crate::global::is_global(self.tracer)).then(|| self.tracer.clone());
        Span::recording(
            SpanData {
                context,
                parent_span_id: parent.map(|p| p.span_id()),
                name: self.name,
                kind: self.kind,
                start_unix_nanos: start,
                end_unix_nanos: start,
                attributes: self.attributes,
                events: Vec::new(),
                links: self.links,
                status: Status::Unset,
            },
            tracer,
        )
    }
}
