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

use crate::current::{enter_plain, enter_tagged, leave_tagged, PlainContext};
use crate::{
    global, now_unix_nanos, KeyValue, LogProcessor, LogRecord, Span, SpanContext, SpanKind, Status,
    Tracer,
};
use std::borrow::Cow;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::mem::MaybeUninit;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
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
    spans: OpenSpans,
}

impl TracerLayer {
    /// A layer recording with `tracer`.
    pub fn new(tracer: Tracer) -> Self {
        TracerLayer {
            tracer: Some(tracer),
            logs: None,
            spans: OpenSpans::new(),
        }
    }

    /// A layer recording with the process-wide tracer
    /// ([`crate::global::tracer`]) as it is when each span starts.
    pub fn global() -> Self {
        TracerLayer {
            tracer: None,
            logs: None,
            spans: OpenSpans::new(),
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

    /// Tells this layer's per-thread state from another layer's (two
    /// subscribers on one thread may number their spans alike).
    fn key(&self) -> usize {
        self.spans.key
    }

    /// The tag a span's context is entered with on tracer's stack: the
    /// span's id mixed with this layer's number, so that two layers'
    /// spans of the same id (two subscribers on one thread) are told
    /// apart when they are left out of order. One-to-one for one layer.
    #[inline]
    fn tag(&self, id: NonZeroU64) -> NonZeroU64 {
        NonZeroU64::new(id.get() ^ mix(self.spans.key as u64)).unwrap_or(id)
    }
}

/// The tracer spans of the `tracing` spans still open, by `tracing` id.
///
/// Each thread keeps the spans it makes in a store of its own (a map
/// behind a spin lock that, but for the rare span closed or entered
/// elsewhere, only that thread takes): making, entering and closing a span on one
/// thread touch that thread's cache lines only, as the registry's own
/// per-thread slab does. A span used on another thread than the one that
/// made it is looked for in every store of the layer: the cost of that
/// grows with the number of threads, not of spans.
///
/// Not the registry's span extensions, which box every value (an
/// allocation and a free per span) into a type-keyed map behind the span's
/// lock, reached through a slab lookup. A span is taken out on close, and
/// ended (handed to the processor) after the lock is let go; no code of
/// the user's (a field's `Debug`) runs under a lock either.
struct OpenSpans {
    /// This layer's number, unique in the process: keys its per-thread
    /// state ([`MINE`], [`LAST_NEW`]).
    key: usize,
    /// Every store made for this layer. One whose thread has ended stays
    /// while it holds spans, and is let go when a new store is listed.
    stores: RwLock<Vec<Arc<Store>>>,
}

/// One thread's open spans: the last few made in a short list, searched
/// from its end (spans mostly close in the order opposite to the one they
/// were made in, so the one closing is usually last), the others in a map.
#[derive(Default)]
struct SpanMap {
    recent: Vec<(u64, Box<Span>)>,
    older: HashMap<u64, Box<Span>, BuildHasherDefault<IdHasher>>,
}

/// How many spans [`SpanMap::recent`] holds.
const RECENT: usize = 16;

impl SpanMap {
    fn position(&self, id: u64) -> Option<usize> {
        self.recent.iter().rposition(|(i, _)| *i == id)
    }

    fn contains_key(&self, id: u64) -> bool {
        self.position(id).is_some() || (!self.older.is_empty() && self.older.contains_key(&id))
    }

    /// Keeps `span` as `id`'s. Ids are unique among open spans (the
    /// registry numbers a span anew only after this layer saw its close),
    /// so there is no look for an earlier one; were there one, the newer
    /// would be found first, and the older, once it leaves the short list,
    /// be displaced from the map: it is returned, to be ended.
    #[inline]
    fn insert(&mut self, id: u64, span: Box<Span>) -> Option<Box<Span>> {
        let mut displaced = None;
        if self.recent.len() == RECENT {
            let (oldest, s) = self.recent.remove(0);
            displaced = self.older.insert(oldest, s);
        }
        self.recent.push((id, span));
        displaced
    }

    #[inline]
    fn remove(&mut self, id: u64) -> Option<Box<Span>> {
        match self.position(id) {
            Some(i) if i + 1 == self.recent.len() => self.recent.pop().map(|(_, s)| s),
            Some(i) => Some(self.recent.remove(i).1),
            None if self.older.is_empty() => None,
            None => self.older.remove(&id),
        }
    }

    fn get_mut(&mut self, id: u64) -> Option<&mut Box<Span>> {
        match self.position(id) {
            Some(i) => Some(&mut self.recent[i].1),
            None => self.older.get_mut(&id),
        }
    }

    fn is_empty(&self) -> bool {
        self.recent.is_empty() && self.older.is_empty()
    }

    fn drain(&mut self) -> impl Iterator<Item = Box<Span>> + '_ {
        self.recent
            .drain(..)
            .map(|(_, s)| s)
            .chain(self.older.drain().map(|(_, s)| s))
    }
}

/// One thread's open spans, behind a spin lock: taking it is one atomic
/// exchange and letting it go a plain store (a mutex lets go with a second
/// exchange, to look for sleepers). It is held for a few map operations,
/// never while code of the user's runs, and almost only by its own thread.
/// On cache lines of its own: two threads' stores side by side would pass
/// their lock words' line back and forth on every span.
#[derive(Default)]
#[repr(align(128))]
struct Store {
    locked: AtomicBool,
    spans: UnsafeCell<SpanMap>,
    /// Its layer is gone: the threads that hold it let it go when they
    /// next list a store.
    retired: AtomicBool,
}

// SAFETY: the map is reached only through `Store::lock`, which lets one
// thread at a time in; what it holds is `Send` (checked below).
unsafe impl Sync for Store {}

const _: () = {
    const fn send<T: Send>() {}
    send::<SpanMap>();
};

impl Store {
    #[inline]
    fn lock(&self) -> StoreGuard<'_> {
        if self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        StoreGuard(self)
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0u32;
        loop {
            while self.locked.load(Ordering::Relaxed) {
                if spins < 100 {
                    spins += 1;
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// A held [`Store`] lock.
struct StoreGuard<'a>(&'a Store);

impl std::ops::Deref for StoreGuard<'_> {
    type Target = SpanMap;
    fn deref(&self) -> &SpanMap {
        // SAFETY: the lock is held.
        unsafe { &*self.0.spans.get() }
    }
}

impl std::ops::DerefMut for StoreGuard<'_> {
    fn deref_mut(&mut self) -> &mut SpanMap {
        // SAFETY: the lock is held, by this guard alone.
        unsafe { &mut *self.0.spans.get() }
    }
}

impl Drop for StoreGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

impl OpenSpans {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        OpenSpans {
            key: NEXT.fetch_add(1, Ordering::Relaxed),
            stores: RwLock::new(Vec::new()),
        }
    }

    /// Runs `f` on this thread's store, made (and listed) on first use;
    /// `None` once the thread's locals are gone (a span dropped by a
    /// thread-local's destructor).
    #[inline]
    fn with_mine<R>(&self, f: impl FnOnce(&mut SpanMap) -> R) -> Option<R> {
        // One call of `f` (so that it is inlined): a thread without a
        // store yet makes one, then goes round again.
        let mut f = Some(f);
        loop {
            let done = MINE.try_with(|m| {
                let m = m.borrow();
                match m.first() {
                    Some((key, store)) if *key == self.key => {
                        f.take().map(|f| f(&mut store.lock()))
                    }
                    _ => None,
                }
            });
            match done {
                Ok(Some(r)) => return Some(r),
                Ok(None) => self.register(),
                Err(_) => return None,
            }
        }
    }

    /// This thread's store for this layer, made and listed if it has none;
    /// moved to the front of the thread's list (a thread seldom serves two
    /// layers).
    #[cold]
    fn register(&self) {
        let found = MINE.with(|m| {
            let mut m = m.borrow_mut();
            // The stores of layers that are gone (a subscriber replaced
            // or rebuilt) go now.
            m.retain(|(_, s)| !s.retired.load(Ordering::Relaxed));
            let i = m.iter().position(|(key, _)| *key == self.key)?;
            let entry = m.remove(i);
            m.insert(0, entry);
            Some(())
        });
        if found.is_some() {
            return;
        }
        let store = Arc::new(Store::default());
        {
            let mut stores = self.stores.write().unwrap_or_else(PoisonError::into_inner);
            // A store no thread holds (its thread ended) and that holds no
            // span is let go.
            stores.retain(|s| Arc::strong_count(s) > 1 || !s.lock().is_empty());
            stores.push(store.clone());
        }
        MINE.with(|m| m.borrow_mut().insert(0, (self.key, store)));
    }

    /// Runs `f` on the store that holds span `id`: this thread's first,
    /// then every other one.
    fn with_holder<R>(&self, id: u64, f: impl FnOnce(&mut SpanMap) -> R) -> Option<R> {
        let mut f = Some(f);
        let here = self.with_mine(|m| {
            if m.contains_key(id) {
                f.take().map(|f| f(m))
            } else {
                None
            }
        });
        if let Some(Some(r)) = here {
            return Some(r);
        }
        let f = f?;
        let stores = self.stores.read().unwrap_or_else(PoisonError::into_inner);
        for store in stores.iter() {
            let mut m = store.lock();
            if m.contains_key(id) {
                return Some(f(&mut m));
            }
        }
        None
    }

    /// Keeps the span; `false` when it could not be kept (this thread's
    /// locals are gone) and has ended.
    fn insert(&self, id: u64, span: Box<Span>) -> bool {
        let mut span = Some(span);
        let old = match self.with_mine(|m| span.take().and_then(|s| m.insert(id, s))) {
            Some(old) => old,
            None => {
                // No thread-locals left: the span cannot be kept; it ends.
                span.into_iter().for_each(end);
                return false;
            }
        };
        // A span displaced by one of the same id (see `SpanMap::insert`)
        // ends after the unlock.
        if let Some(old) = old {
            end(old);
        }
        true
    }

    #[inline]
    fn remove(&self, id: u64) -> Option<Box<Span>> {
        match self.with_mine(|m| m.remove(id)) {
            Some(Some(span)) => Some(span),
            _ => self.with_holder(id, |m| m.remove(id)).flatten(),
        }
    }

    fn context(&self, id: u64) -> Option<SpanContext> {
        self.with_holder(id, |m| m.get_mut(id).map(|s| s.context().clone()))
            .flatten()
    }

    /// Runs `f` on the span, if it is open and records.
    fn recording<R>(&self, id: u64, f: impl FnOnce(&mut Span) -> R) -> Option<R> {
        self.with_holder(id, |m| {
            m.get_mut(id).filter(|s| s.is_recording()).map(|s| f(s))
        })
        .flatten()
    }
}

impl Drop for OpenSpans {
    /// The spans still open when the layer goes (its subscriber dropped)
    /// end now, as they would have with the registry's extensions.
    fn drop(&mut self) {
        let stores = std::mem::take(
            self.stores
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for store in stores {
            store.retired.store(true, Ordering::Relaxed);
            let spans: Vec<Box<Span>> = store.lock().drain().collect();
            spans.into_iter().for_each(end);
        }
    }
}

/// A multiply-fold of the 64-bit id: every bit of the id moves the low
/// bits (the map's bucket) and the top seven (its tag byte).
#[inline]
fn mix(id: u64) -> u64 {
    let m = u128::from(id).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (m as u64) ^ ((m >> 64) as u64)
}

/// The hasher of [`OpenSpans`]' maps, whose keys are span ids.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = mix(self.0 ^ u64::from(*b));
        }
    }
    fn write_u64(&mut self, id: u64) {
        self.0 = mix(id);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

thread_local! {
    /// The span this thread made last (the layer's key, its id, its
    /// context): most spans are entered right where they are made
    /// (`info_span!(..).entered()`, `#[instrument]`), and this spares their
    /// `on_enter` a lookup. Forgotten when the span closes on this thread,
    /// and replaced by the next span this thread makes; a span closed on
    /// another thread leaves it here, which is harmless with the registry
    /// (it numbers a span anew only on the thread whose slab slot the old
    /// one had, and with a new generation). A `Cell` of plain values: read
    /// and written without a borrow flag or a destructor.
    static LAST_NEW: Cell<Option<(usize, NonZeroU64, PlainContext)>> = const { Cell::new(None) };
    /// The boxes of the spans this thread ended last, kept for the next
    /// spans it makes: a span boxed here costs a pop, not an allocation,
    /// and ending it a push, not a free.
    #[allow(clippy::vec_box)] // the boxes are what is kept, for reuse
    static SPARE: RefCell<Vec<Box<MaybeUninit<Span>>>> = const { RefCell::new(Vec::new()) };
    /// This thread's store of each layer it served, the last served first.
    static MINE: RefCell<Vec<(usize, Arc<Store>)>> = const { RefCell::new(Vec::new()) };
}

/// How many boxes [`SPARE`] keeps per thread (a span is some 270 bytes).
const SPARE_MAX: usize = 32;

/// A box for a span: a spare one when this thread has one.
#[inline]
fn spare_box() -> Box<MaybeUninit<Span>> {
    SPARE
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(Box::new_uninit)
}

/// Ends a boxed span (hands it to the processor), keeping the box.
#[inline]
fn end(span: Box<Span>) {
    let raw = Box::into_raw(span);
    // SAFETY: `raw` is the pointer of a live `Box<Span>`; the span is
    // dropped (so ended) once, here, and its memory then viewed as the
    // uninitialised box it was allocated as (`MaybeUninit<Span>` has the
    // layout of `Span`).
    let spare = unsafe {
        std::ptr::drop_in_place(raw);
        Box::from_raw(raw.cast::<MaybeUninit<Span>>())
    };
    let _ = SPARE.try_with(move |s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_MAX {
            s.push(spare);
        }
    });
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

impl<S> Layer<S> for TracerLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let explicit;
        let parent = if let Some(p) = attrs.parent() {
            explicit = self.spans.context(p.into_u64());
            Some(explicit.as_ref())
        } else if attrs.is_root() {
            Some(None)
        } else {
            // Contextual: the current span, `tracing`'s (entered, so
            // current for tracer too) or tracer's own.
            None
        };
        let mut boxed = spare_box();
        let span = if meta.fields().is_empty() || attrs.values().is_empty() {
            // No fields (the common span): nothing to read.
            self.tracer().start_for_layer(
                &mut boxed,
                Cow::Borrowed(meta.name()),
                SpanKind::Internal,
                Vec::new(),
                parent,
            )
        } else {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            let name = match fields.name {
                Some(n) => Cow::Owned(n),
                None => Cow::Borrowed(meta.name()),
            };
            let kind = fields.kind.unwrap_or(SpanKind::Internal);
            let span =
                self.tracer()
                    .start_for_layer(&mut boxed, name, kind, fields.attributes, parent);
            if let Some(status) = fields.status {
                span.set_status(status);
            }
            span
        };
        let plain = PlainContext::of(span.context());
        // SAFETY: `start_for_layer` wrote the span.
        let span = unsafe { boxed.assume_init() };
        let id = id.into_non_zero_u64();
        let kept = self.spans.insert(id.get(), span);
        LAST_NEW.set(plain.filter(|_| kept).map(|c| (self.key(), id, c)));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let id = id.into_u64();
        // The fields are read (their `Debug` run) outside the lock, and
        // only for a span that records.
        if self.spans.recording(id, |_| ()).is_none() {
            return;
        }
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.spans.recording(id, |span| {
            if let Some(name) = fields.name {
                span.update_name(name);
            }
            span.set_attributes(fields.attributes);
            if let Some(status) = fields.status {
                span.set_status(status);
            }
        });
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, _ctx: Context<'_, S>) {
        if let Some(other) = self.spans.context(follows.into_u64()) {
            self.spans
                .recording(id.into_u64(), |span| span.add_link(other, Vec::new()));
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
        if let Some(id) = span {
            let id = id.into_u64();
            self.spans.with_holder(id, |m| {
                let Some(s) = m.get_mut(id) else { return };
                let own = s.context();
                let is_innermost = innermost
                    .as_ref()
                    .is_none_or(|c| c.span_id() == own.span_id());
                if is_innermost {
                    context = Some(own.clone());
                    if s.is_recording() {
                        let mut attrs = fields.attributes.clone();
                        attrs.push(KeyValue::new("level", meta.level().as_str()));
                        s.add_event(body.clone(), attrs);
                        if let Some(status) = fields.status.take() {
                            s.set_status(status);
                        }
                    }
                }
            });
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

    fn on_enter(&self, id: &Id, _ctx: Context<'_, S>) {
        let id = id.into_non_zero_u64();
        match LAST_NEW.get() {
            Some((layer, last, c)) if layer == self.key() && last == id => {
                enter_plain(c, self.tag(id))
            }
            _ => {
                if let Some(c) = self.spans.context(id.get()) {
                    enter_tagged(c, self.tag(id));
                }
            }
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        // Spans are left in the order entered; should one not be, the
        // contexts entered above it go with it (tracer's stack is a stack).
        leave_tagged(self.tag(id.into_non_zero_u64()));
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        let id = id.into_non_zero_u64();
        if let Some((layer, last, _)) = LAST_NEW.get() {
            if layer == self.key() && last == id {
                LAST_NEW.set(None);
            }
        }
        // Taken out under the store's lock, ended (handed to the
        // processor) after it.
        if let Some(span) = self.spans.remove(id.get()) {
            end(span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(n: u64) -> Box<Span> {
        let ctx = SpanContext::new(
            crate::TraceId::from_u128(1),
            crate::SpanId::from_u64(n),
            crate::TraceFlags::NONE,
            false,
            crate::TraceState::EMPTY,
        );
        Box::new(Span::non_recording(ctx))
    }

    fn id_of(s: &Span) -> u64 {
        s.context().span_id().to_u64()
    }

    #[test]
    fn a_thread_lets_go_of_the_stores_of_layers_that_are_gone() {
        use tracing_subscriber::layer::SubscriberExt;
        std::thread::spawn(|| {
            for _ in 0..5 {
                let layer = TracerLayer::new(crate::Tracer::noop());
                let d = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
                tracing::dispatcher::with_default(&d, || {
                    drop(tracing::info_span!("x").entered());
                });
            }
            // Each new layer's store let go of the one before it.
            MINE.with(|m| assert_eq!(m.borrow().len(), 1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_span_map_finds_every_span_recent_or_older() {
        let mut m = SpanMap::default();
        for i in 1..=40 {
            assert!(m.insert(i, span(i)).is_none());
        }
        assert_eq!(m.recent.len(), RECENT);
        assert_eq!(m.older.len(), 40 - RECENT);
        // Out of order, from both parts.
        for i in [40, 3, 25, 1, 39, 17] {
            assert!(m.contains_key(i));
            assert_eq!(m.get_mut(i).map(|s| id_of(s)), Some(i));
            assert_eq!(m.remove(i).map(|s| id_of(&s)), Some(i));
            assert!(!m.contains_key(i));
            assert!(m.remove(i).is_none());
        }
        // An id kept twice: the newer is found; the older is handed back
        // once the newer pushes it out of the short list into the map.
        assert!(m.insert(2, span(99)).is_none());
        assert_eq!(m.get_mut(2).map(|s| id_of(s)), Some(99));
        let mut displaced = Vec::new();
        for i in 100..100 + RECENT as u64 {
            displaced.extend(m.insert(i, span(i)));
        }
        assert_eq!(displaced.iter().map(|s| id_of(s)).collect::<Vec<_>>(), [2]);
        let left: Vec<u64> = m.drain().map(|s| id_of(&s)).collect();
        assert_eq!(left.len(), 40 - 6 + RECENT);
        assert!(m.is_empty());
    }
}
