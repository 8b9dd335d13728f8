//! A [`tracing_subscriber::Layer`] that records the spans
//! and events of tokio-rs/tracing with a tracer-core [`Tracer`], so that
//! what the libraries a service uses report (tokio, hyper, tower, sqlx...)
//! lands in the same traces as its `#[traced]` functions.
//!
//! - Every `tracing` span becomes a tracer span: its name (or the field
//!   `otel.name`), its parent (an explicit one, else the current span,
//!   `tracing` or tracer: the two nest in one trace), its fields as
//!   attributes, `otel.kind`, `otel.status_code`/`otel.status_message` and
//!   `error` as kind and status, `follows_from` as links, and its start and
//!   end.
//! - An event inside a span becomes a span event (named by its message),
//!   and, with [`TracerLayer::with_logs`], a log record carrying the trace
//!   and span ids to any [`LogProcessor`] (the node's log store and export,
//!   an OTLP pipeline...).
//! - While a `tracing` span is entered its context is tracer's current
//!   context, on whatever thread polls it: spans crossing `.await` and
//!   threads keep their parent.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use tracer_core::{InMemoryExporter, LogRecord, Sampler, Tracer};
//! use tracer_core::tracing::TracerLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let spans = Arc::new(InMemoryExporter::new());
//! let logs = Arc::new(Mutex::new(Vec::<LogRecord>::new()));
//! let tracer = Tracer::new(Sampler::AlwaysOn, spans.clone());
//! let subscriber = tracing_subscriber::registry()
//!     .with(TracerLayer::new(tracer.clone()).with_logs(logs.clone(), "checkout"));
//! tracing::subscriber::with_default(subscriber, || {
//!     let _request = tracing::info_span!("GET /cart", otel.kind = "server").entered();
//!     let child = tracer.start("load cart"); // tracer's API nests inside
//!     tracing::info!(items = 3, "cart loaded");
//!     drop(child);
//! });
//! let spans = spans.take();
//! assert_eq!(spans.len(), 2);
//! assert_eq!(spans[0].parent_span_id, Some(spans[1].context.span_id()));
//! let logs = logs.lock().unwrap();
//! assert_eq!(&*logs[0].body, "cart loaded");
//! assert_eq!(logs[0].trace_id, Some(spans[1].context.trace_id()));
//! ```

#![warn(missing_docs)]

use crate::{
    attach, global, now_unix_nanos, ContextGuard, KeyValue, LogProcessor, LogRecord, Span,
    SpanContext, SpanKind, Status, Tracer,
};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use tracing_core::field::{Field, Visit};
use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Records `tracing` spans and events with a tracer. See the crate docs.
pub struct TracerLayer {
    tracer: Option<Tracer>,
    logs: Option<(Box<dyn LogProcessor>, Arc<str>)>,
}

impl TracerLayer {
    /// A layer recording with `tracer`.
    pub fn new(tracer: Tracer) -> Self {
        TracerLayer {
            tracer: Some(tracer),
            logs: None,
        }
    }

    /// A layer recording with the process-wide tracer
    /// ([`crate::global::tracer`]) as it is when each span starts.
    pub fn global() -> Self {
        TracerLayer {
            tracer: None,
            logs: None,
        }
    }

    /// Also turns every `tracing` event into a log record, written by
    /// `service`, with the ids of the span it happened in.
    pub fn with_logs(mut self, logs: impl LogProcessor + 'static, service: &str) -> Self {
        self.logs = Some((Box::new(logs), Arc::from(service)));
        self
    }

    fn tracer(&self) -> &Tracer {
        self.tracer.as_ref().unwrap_or_else(|| global::tracer())
    }
}

/// What a `tracing` span keeps in its extensions: the tracer span.
struct Recorded {
    span: Span,
}

thread_local! {
    /// The contexts of the `tracing` spans entered on this thread, with the
    /// guards that keep them current, innermost last.
    static ENTERED: RefCell<Vec<(Id, ContextGuard)>> = const { RefCell::new(Vec::new()) };
    /// The span this thread made last, and its context: most spans are
    /// entered right where they are made (`info_span!(..).entered()`,
    /// `#[instrument]`), and this spares their first `on_enter` a lookup
    /// in the registry. Cleared when that span is entered or closed.
    static LAST_NEW: RefCell<Option<(Id, SpanContext)>> = const { RefCell::new(None) };
}

/// Fields read from a span or an event.
#[derive(Default)]
struct Fields {
    name: Option<String>,
    kind: Option<SpanKind>,
    status: Option<Status>,
    message: Option<String>,
    attributes: Vec<KeyValue>,
}

impl Fields {
    fn value(&mut self, field: &Field, value: crate::Value) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn text(&mut self, field: &Field, text: String) {
        match field.name() {
            "message" => self.message = Some(text),
            "otel.name" => self.name = Some(text),
            "otel.kind" => self.kind = SpanKind::parse(&text.to_ascii_uppercase()),
            "otel.status_code" => {
                self.status = match text.to_ascii_uppercase().as_str() {
                    "OK" => Some(Status::Ok),
                    "ERROR" => Some(Status::Error(Cow::Borrowed(""))),
                    _ => None,
                }
            }
            "otel.status_message" => {
                if let Some(Status::Error(_)) | None = self.status {
                    self.status = Some(Status::Error(Cow::Owned(text)));
                }
            }
            "error" => {
                self.status = Some(Status::Error(Cow::Owned(text.clone())));
                self.value(field, text.into());
            }
            _ => self.value(field, text.into()),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.status = Some(Status::Error(Cow::Owned(value.to_string())));
        self.value(field, value.to_string().into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.value(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.value(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.value(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.value(field, value.into());
    }
}

fn context_of<S>(ctx: &Context<'_, S>, id: &Id) -> Option<SpanContext>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let span = ctx.span(id)?;
    let ext = span.extensions();
    ext.get::<Recorded>().map(|r| r.span.context().clone())
}

impl<S> Layer<S> for TracerLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let meta = attrs.metadata();
        let name: Cow<'static, str> = match fields.name.take() {
            Some(n) => Cow::Owned(n),
            None => Cow::Borrowed(meta.name()),
        };
        let mut builder = self
            .tracer()
            .span_builder(name)
            .kind(fields.kind.unwrap_or(SpanKind::Internal));
        if !fields.attributes.is_empty() {
            builder = builder.attributes(std::mem::take(&mut fields.attributes));
        }
        if let Some(parent) = attrs.parent() {
            builder = match context_of(&ctx, parent) {
                Some(p) => builder.parent(p),
                None => builder.root(),
            };
        } else if attrs.is_root() {
            builder = builder.root();
        }
        // Contextual: the current span, `tracing`'s (entered, so current
        // for tracer too) or tracer's own.
        let mut span = builder.start();
        if let Some(status) = fields.status {
            span.set_status(status);
        }
        let context = span.context().clone();
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(Recorded { span });
            LAST_NEW.with(|l| *l.borrow_mut() = Some((id.clone(), context)));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(id) else { return };
        let mut ext = s.extensions_mut();
        let Some(r) = ext.get_mut::<Recorded>() else {
            return;
        };
        if !r.span.is_recording() {
            return;
        }
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(name) = fields.name {
            r.span.update_name(name);
        }
        r.span.set_attributes(fields.attributes);
        if let Some(status) = fields.status {
            r.span.set_status(status);
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let Some(other) = context_of(&ctx, follows) else {
            return;
        };
        if let Some(s) = ctx.span(id) {
            if let Some(r) = s.extensions_mut().get_mut::<Recorded>() {
                r.span.add_link(other, Vec::new());
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let span = event
            .parent()
            .cloned()
            .or_else(|| ctx.event_span(event).map(|s| s.id()));
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let body = fields
            .message
            .take()
            .unwrap_or_else(|| meta.name().to_owned());
        // The innermost span is tracer's current one: the `tracing` span,
        // or a tracer span made inside it (which this layer cannot add an
        // event to: the record still carries its ids).
        let innermost = crate::current().filter(|c| c.is_valid());
        let mut context = innermost.clone();
        if let Some(s) = span.as_ref().and_then(|id| ctx.span(id)) {
            let mut ext = s.extensions_mut();
            if let Some(r) = ext.get_mut::<Recorded>() {
                let own = r.span.context().clone();
                let is_innermost = innermost
                    .as_ref()
                    .is_none_or(|c| c.span_id() == own.span_id());
                if is_innermost {
                    context = Some(own);
                    if r.span.is_recording() {
                        let mut attrs = fields.attributes.clone();
                        attrs.push(KeyValue::new("level", meta.level().as_str()));
                        r.span.add_event(body.clone(), attrs);
                        if let Some(status) = fields.status.take() {
                            r.span.set_status(status);
                        }
                    }
                }
            }
        }
        if let Some((logs, service)) = &self.logs {
            logs.emit(LogRecord {
                time_unix_nanos: now_unix_nanos(),
                service: service.clone(),
                level: Some(Cow::Borrowed(meta.level().as_str())),
                body: body.into(),
                trace_id: context.as_ref().map(SpanContext::trace_id),
                span_id: context.as_ref().map(SpanContext::span_id),
                attributes: fields.attributes,
            });
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let cached = LAST_NEW.with(|l| {
            let mut l = l.borrow_mut();
            match l.take() {
                Some((last, c)) if last == *id => Some(c),
                other => {
                    *l = other;
                    None
                }
            }
        });
        if let Some(c) = cached.or_else(|| context_of(&ctx, id)) {
            let guard = attach(c);
            ENTERED.with(|e| e.borrow_mut().push((id.clone(), guard)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        ENTERED.with(|e| {
            let mut e = e.borrow_mut();
            // Spans are left in the order entered; should one not be, the
            // guards above it go with it (tracer's stack is a stack).
            if let Some(i) = e.iter().rposition(|(entered, _)| entered == id) {
                while e.len() > i {
                    drop(e.pop());
                }
            }
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        // The registry clears the span's extensions right after the
        // layers' `on_close`, which drops the `Recorded` and so ends the
        // tracer span then, without a lookup here. Only the cache has to
        // forget the span (its id may go to a new one).
        LAST_NEW.with(|l| {
            let mut l = l.borrow_mut();
            if l.as_ref().is_some_and(|(last, _)| *last == id) {
                *l = None;
            }
        });
    }
}
