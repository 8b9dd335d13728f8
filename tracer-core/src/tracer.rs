//! The tracer: span builder, sampling decision, and the hand-off of finished
//! spans to a processor.

use crate::attributes::{KeyValue, Value};
use crate::clock::now_unix_nanos;
use crate::context::{SpanContext, TraceFlags};
use crate::current;
use crate::ids::{SpanId, TraceId};
use crate::processor::{NoopProcessor, SpanProcessor};
use crate::propagation::TraceState;
use crate::sampling::{Decider, Sampler};
use crate::span::{Link, Span, SpanData, SpanKind, Status};
use std::borrow::Cow;
use std::sync::Arc;

struct Inner {
    sampler: Sampler,
    decider: Decider,
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
                decider: Decider::of(&sampler),
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
    #[inline]
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
            self_telemetry: false,
        }
    }

    /// Starts an internal span, child of the current span.
    ///
    /// The short path of [`span_builder(name).start()`](SpanBuilder::start):
    /// an unsampled span costs a read of the current context, a
    /// sampling decision and a new span id.
    #[inline]
    pub fn start(&self, name: impl Into<Cow<'static, str>>) -> Span {
        let origin = current::with_current(|p| Origin::decide(self.inner.decider, p, None));
        let parent_span_id = origin.parent_span_id;
        let context = origin.context();
        if !context.is_sampled() {
            return Span::non_recording(context);
        }
        self.record_new(name.into(), context, parent_span_id)
    }

    /// The recording half of [`start`](Self::start).
    #[inline]
    fn record_new(
        &self,
        name: Cow<'static, str>,
        context: SpanContext,
        parent_span_id: Option<SpanId>,
    ) -> Span {
        let plain = Recipe {
            name,
            kind: SpanKind::Internal,
            attributes: Vec::new(),
            links: Vec::new(),
            start: None,
        };
        self.recording(plain, context, parent_span_id)
    }

    /// A recording span, built where it is returned (always inlined into
    /// its two callers, `record_new` and `SpanBuilder::record`, so the data
    /// is written once).
    #[inline(always)]
    fn recording(&self, r: Recipe, context: SpanContext, parent_span_id: Option<SpanId>) -> Span {
        let start = r.start.unwrap_or_else(now_unix_nanos);
        let tracer = (!crate::global::is_global(self)).then(|| self.clone());
        Span::recording(
            SpanData {
                context,
                parent_span_id,
                name: r.name,
                kind: r.kind,
                start_unix_nanos: start,
                end_unix_nanos: start,
                attributes: r.attributes,
                events: Vec::new(),
                links: r.links,
                status: Status::Unset,
            },
            tracer,
        )
    }

    /// Hands a finished span to the processor, in place.
    #[inline]
    pub(crate) fn finish_in(&self, slot: &mut Option<SpanData>) {
        self.inner.processor.on_end_in(slot);
    }

    /// Starts a span for the `tracing` layer, which knows everything at once:
    /// the builder's path without the builder (a `tracing` span costs this
    /// on every `span!`), written straight into `dst` (the layer's box: a
    /// span moved there would be copied whole, through a stalled read).
    /// `parent` is `None` for the current context, `Some(None)` for a new
    /// root, `Some(Some(p))` for an explicit parent (an invalid one makes a
    /// root).
    #[cfg(feature = "tracing")]
    #[inline]
    pub(crate) fn start_for_layer<'d>(
        &self,
        dst: &'d mut std::mem::MaybeUninit<Span>,
        name: Cow<'static, str>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        parent: Option<Option<&SpanContext>>,
    ) -> &'d mut Span {
        let decider = self.inner.decider;
        let origin = match parent {
            None => current::with_current(|p| Origin::decide(decider, p, None)),
            Some(p) => Origin::decide(decider, p, None),
        };
        let parent_span_id = origin.parent_span_id;
        let context = origin.context();
        if !context.is_sampled() {
            return dst.write(Span::non_recording(context));
        }
        let recipe = Recipe {
            name,
            kind,
            attributes,
            links: Vec::new(),
            start: None,
        };
        dst.write(self.recording(recipe, context, parent_span_id))
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
    self_telemetry: bool,
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

    /// Marks the span (and so its children) as the process's own telemetry
    /// (see [`SpanContext::with_self_telemetry`]); a span whose parent is
    /// marked is marked without this.
    pub fn self_telemetry(mut self) -> Self {
        self.self_telemetry = true;
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
        let sampler = match self.sampler {
            Some(s) => Decider::of(s),
            None => self.tracer.inner.decider,
        };
        let origin = match &self.parent {
            Parent::Current => current::with_current(|p| Origin::decide(sampler, p, None)),
            Parent::Root => Origin::decide(sampler, None, None),
            Parent::RootIn(t) => Origin::decide(sampler, None, Some(*t)),
            Parent::Explicit(p) => Origin::decide(sampler, Some(p), None),
        };
        let parent_span_id = origin.parent_span_id;
        let context = origin.context();
        let context = if self.self_telemetry {
            context.with_self_telemetry(true)
        } else {
            context
        };
        if !context.is_sampled() {
            return Span::non_recording(context);
        }
        self.record(context, parent_span_id)
    }

    /// The recording half of [`start`](Self::start), kept out of line so
    /// that an unsampled span's path stays short.
    #[inline(never)]
    fn record(self, context: SpanContext, parent_span_id: Option<SpanId>) -> Span {
        let recipe = Recipe {
            name: self.name,
            kind: self.kind,
            attributes: self.attributes,
            links: self.links,
            start: self.start,
        };
        self.tracer.recording(recipe, context, parent_span_id)
    }
}

/// What a recording span starts with, besides its context.
struct Recipe {
    name: Cow<'static, str>,
    kind: SpanKind,
    attributes: Vec<KeyValue>,
    links: Vec<Link>,
    start: Option<u64>,
}

/// What a new span takes from its parent (or makes as a root), and the
/// sampling decision, read while the parent is borrowed.
struct Origin {
    trace_id: TraceId,
    parent_span_id: Option<SpanId>,
    /// The parent's flags with the sampled bit set to the decision.
    flags: TraceFlags,
    state: TraceState,
}

impl Origin {
    /// The new span's context: the origin's trace, a new span id.
    #[inline]
    fn context(self) -> SpanContext {
        SpanContext::new(
            self.trace_id,
            SpanId::random(),
            self.flags,
            false,
            self.state,
        )
    }

    #[inline(always)]
    fn decide(sampler: Decider, parent: Option<&SpanContext>, given: Option<TraceId>) -> Origin {
        match parent.filter(|p| p.is_valid()) {
            Some(p) => {
                let trace_id = p.trace_id();
                let sampled = sampler.decide(Some(p), trace_id);
                Origin {
                    trace_id,
                    parent_span_id: Some(p.span_id()),
                    flags: p.flags().with_sampled(sampled),
                    state: p.trace_state().clone(),
                }
            }
            None => {
                // Trace Context Level 2, 3.2.2.5.2 (Random Trace ID Flag): a
                // trace id this library makes (`TraceId::random`, whose
                // right-most 7 bytes are uniformly random) sets the random
                // bit; one a client named (`root_in`) may be anything, so
                // it does not. A continued trace keeps its parent's bit
                // (the arm above).
                let (trace_id, random) = match given.filter(|t| t.is_valid()) {
                    Some(t) => (t, false),
                    None => (TraceId::random(), true),
                };
                let sampled = sampler.decide(None, trace_id);
                Origin {
                    trace_id,
                    parent_span_id: None,
                    flags: TraceFlags::NONE.with_random(random).with_sampled(sampled),
                    state: TraceState::EMPTY,
                }
            }
        }
    }
}
