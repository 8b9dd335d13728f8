//! Spans: what a unit of work records while it runs, and what it leaves behind.

use crate::attributes::{Key, KeyValue, Value};
use crate::clock::now_unix_nanos;
use crate::context::SpanContext;
use crate::ids::SpanId;
use crate::tracer::Tracer;
use std::borrow::Cow;
use std::fmt;
use std::mem::ManuallyDrop;

/// The five OpenTelemetry span kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SpanKind {
    /// Internal work (the default).
    #[default]
    Internal,
    /// The server side of a synchronous request.
    Server,
    /// The client side of a synchronous request.
    Client,
    /// The sender of an asynchronous message.
    Producer,
    /// The receiver of an asynchronous message.
    Consumer,
}

impl SpanKind {
    /// The upper-case name, as OpenTelemetry and Jaeger show it (`"SERVER"`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }

    /// Parses a kind name in any case, with or without the `SPAN_KIND_` prefix.
    pub fn parse(name: &str) -> Option<SpanKind> {
        let n = name.trim();
        let n = n
            .get(..10)
            .filter(|p| p.eq_ignore_ascii_case("span_kind_"))
            .map_or(n, |_| &n[10..]);
        [
            SpanKind::Internal,
            SpanKind::Server,
            SpanKind::Client,
            SpanKind::Producer,
            SpanKind::Consumer,
        ]
        .into_iter()
        .find(|k| k.as_str().eq_ignore_ascii_case(n))
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A span's outcome. `Ok` is final: a later `Error` does not replace it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Status {
    /// Not set (the default).
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed, with a description.
    Error(Cow<'static, str>),
}

impl Status {
    /// `"UNSET"`, `"OK"` or `"ERROR"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Unset => "UNSET",
            Status::Ok => "OK",
            Status::Error(_) => "ERROR",
        }
    }
}

/// Something that happened at a point in a span's life.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The event name, e.g. `exception`.
    pub name: Cow<'static, str>,
    /// When it happened.
    pub time_unix_nanos: u64,
    /// Its attributes.
    pub attributes: Vec<KeyValue>,
}

/// A causal relation to a span of another (or the same) trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The linked span.
    pub context: SpanContext,
    /// Attributes describing the link.
    pub attributes: Vec<KeyValue>,
}

/// A finished span, as processors and stores see it.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanData {
    /// The span's own context.
    pub context: SpanContext,
    /// The parent's span id; `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// The operation name.
    pub name: Cow<'static, str>,
    /// The kind.
    pub kind: SpanKind,
    /// Start, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// Attributes, in the order set (a key set twice keeps its last value).
    pub attributes: Vec<KeyValue>,
    /// Events, in the order added.
    pub events: Vec<Event>,
    /// Links.
    pub links: Vec<Link>,
    /// The outcome.
    pub status: Status,
}

impl SpanData {
    /// The duration in nanoseconds (zero if the clock went backwards).
    pub fn duration_nanos(&self) -> u64 {
        self.end_unix_nanos.saturating_sub(self.start_unix_nanos)
    }

    /// The value of an attribute.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }
}

/// A live span. Recording spans collect data and hand it to the tracer's
/// processor when they end; unsampled spans only carry their context, so
/// they propagate the trace at almost no cost. Dropping a span ends it.
///
/// The data lives inline, not boxed: starting and ending a span allocates
/// nothing, and ending hands the data over in place
/// ([`SpanProcessor::on_end_in`](crate::SpanProcessor::on_end_in)).
pub struct Span {
    /// The context once the span no longer records (while it records, the
    /// context is the data's: it is not kept twice).
    context: Option<SpanContext>,
    /// `Some` while recording. Dropped by hand (see `Drop`), so that
    /// dropping a span that does not record is one test.
    data: ManuallyDrop<Option<SpanData>>,
    /// `None` for the process-wide tracer, which lives for the whole
    /// program: its spans skip two atomic reference-count updates. Only a
    /// recording span holds one (ending takes it).
    tracer: ManuallyDrop<Option<Tracer>>,
}

impl Span {
    #[inline(always)]
    pub(crate) fn recording(data: SpanData, tracer: Option<Tracer>) -> Self {
        Span {
            context: None,
            data: ManuallyDrop::new(Some(data)),
            tracer: ManuallyDrop::new(tracer),
        }
    }

    #[inline(always)]
    pub(crate) fn non_recording(context: SpanContext) -> Self {
        Span {
            context: Some(context),
            data: ManuallyDrop::new(None),
            tracer: ManuallyDrop::new(None),
        }
    }

    /// The span's context, to propagate or to parent other spans.
    pub fn context(&self) -> &SpanContext {
        match (&*self.data, &self.context) {
            (Some(d), _) => &d.context,
            (None, Some(c)) => c,
            (None, None) => unreachable!("a span keeps its context when it stops recording"),
        }
    }

    /// Whether the span records data (sampled and not yet ended).
    pub fn is_recording(&self) -> bool {
        self.data.is_some()
    }

    fn data(&mut self) -> Option<&mut SpanData> {
        self.data.as_mut()
    }

    /// Sets one attribute, replacing the value of an existing key.
    pub fn set_attribute(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        if let Some(d) = self.data() {
            let key = key.into();
            let value = value.into();
            match d.attributes.iter_mut().find(|kv| kv.key == key) {
                Some(kv) => kv.value = value,
                None => d.attributes.push(KeyValue { key, value }),
            }
        }
    }

    /// Sets several attributes.
    pub fn set_attributes(&mut self, attributes: impl IntoIterator<Item = KeyValue>) {
        for kv in attributes {
            self.set_attribute(kv.key, kv.value);
        }
    }

    /// Adds an event now.
    pub fn add_event(&mut self, name: impl Into<Cow<'static, str>>, attributes: Vec<KeyValue>) {
        if self.is_recording() {
            self.add_event_at(name, now_unix_nanos(), attributes);
        }
    }

    /// Adds an event at a given time.
    pub fn add_event_at(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        time_unix_nanos: u64,
        attributes: Vec<KeyValue>,
    ) {
        if let Some(d) = self.data() {
            d.events.push(Event {
                name: name.into(),
                time_unix_nanos,
                attributes,
            });
        }
    }

    /// Adds a link to another span.
    pub fn add_link(&mut self, context: SpanContext, attributes: Vec<KeyValue>) {
        if let Some(d) = self.data() {
            d.links.push(Link {
                context,
                attributes,
            });
        }
    }

    /// Sets the status. `Unset` is ignored and `Ok` is final, as in OpenTelemetry.
    pub fn set_status(&mut self, status: Status) {
        if let Some(d) = self.data() {
            match (&d.status, &status) {
                (_, Status::Unset) | (Status::Ok, _) => {}
                _ => d.status = status,
            }
        }
    }

    /// Records an exception event with the semantic-convention attributes
    /// `exception.type` and `exception.message` (and `exception.stacktrace`
    /// when given), and sets status `Error` with the message.
    pub fn record_exception(&mut self, kind: &str, message: &str, stacktrace: Option<&str>) {
        if !self.is_recording() {
            return;
        }
        let mut attrs = vec![
            KeyValue::new("exception.type", kind.to_owned()),
            KeyValue::new("exception.message", message.to_owned()),
        ];
        if let Some(st) = stacktrace {
            attrs.push(KeyValue::new("exception.stacktrace", st.to_owned()));
        }
        self.add_event("exception", attrs);
        self.set_status(Status::Error(Cow::Owned(message.to_owned())));
    }

    /// Records an error value as an exception: its type name and its `Display`.
    pub fn record_error<E: fmt::Display + ?Sized>(&mut self, error: &E) {
        if self.is_recording() {
            self.record_exception(std::any::type_name::<E>(), &error.to_string(), None);
        }
    }

    /// Renames the span.
    pub fn update_name(&mut self, name: impl Into<Cow<'static, str>>) {
        if let Some(d) = self.data() {
            d.name = name.into();
        }
    }

    /// Ends the span now. Ending twice does nothing.
    #[inline]
    pub fn end(&mut self) {
        if self.is_recording() {
            self.end_at(now_unix_nanos());
        }
    }

    /// Ends the span at a given time. Ending twice does nothing.
    #[inline]
    pub fn end_at(&mut self, end_unix_nanos: u64) {
        if let Some(data) = self.data.as_mut() {
            self.context = Some(data.context.clone());
            self.finish_at(end_unix_nanos);
        }
    }

    /// Hands the data over; the context goes with it (for `Drop`, which
    /// needs no context afterwards).
    #[inline]
    fn finish_at(&mut self, end_unix_nanos: u64) {
        if let Some(data) = self.data.as_mut() {
            data.end_unix_nanos = end_unix_nanos.max(data.start_unix_nanos);
            match self.tracer.take() {
                Some(t) => t.finish_in(&mut self.data),
                None => crate::global::tracer().finish_in(&mut self.data),
            }
            // A processor that did not take the data leaves it here: the
            // span has ended all the same.
            *self.data = None;
        }
    }
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if self.data.is_some() || self.tracer.is_some() {
            self.finish_on_drop();
        }
    }
}

impl Span {
    /// Ending by drop, out of line: dropping an unsampled or ended span is
    /// a test and a branch.
    #[inline(never)]
    fn finish_on_drop(&mut self) {
        if self.data.is_some() {
            self.finish_at(now_unix_nanos());
        }
        // SAFETY: `drop` calls this once, last; neither field is used again.
        unsafe {
            ManuallyDrop::drop(&mut self.data);
            ManuallyDrop::drop(&mut self.tracer);
        }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field(
                "context",
                &self
                    .context
                    .as_ref()
                    .or(self.data.as_ref().map(|d| &d.context)),
            )
            .field("recording", &self.is_recording())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_parse_accepts_any_case_and_prefix() {
        assert_eq!(SpanKind::parse("server"), Some(SpanKind::Server));
        assert_eq!(SpanKind::parse("SPAN_KIND_CLIENT"), Some(SpanKind::Client));
        assert_eq!(SpanKind::parse("Consumer"), Some(SpanKind::Consumer));
        assert_eq!(SpanKind::parse("weird"), None);
    }
}
