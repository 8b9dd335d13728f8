//! Where finished spans go.

use crate::span::SpanData;
use std::sync::{Arc, Mutex};

/// Receives every finished, sampled span, in the manner of OpenTelemetry's
/// span processors.
pub trait SpanProcessor: Send + Sync {
    /// Called once per span, when it ends.
    fn on_end(&self, span: SpanData);

    /// Called once per span, when it ends, with the span still in the
    /// `Span` that recorded it: a processor that keeps spans can move it
    /// straight to where it keeps them. The default takes it and calls
    /// [`on_end`](Self::on_end).
    #[inline]
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        if let Some(span) = slot.take() {
            self.on_end(span);
        }
    }
    /// Exports whatever is buffered.
    fn force_flush(&self) {}
}

/// Drops every span.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoopProcessor;

impl SpanProcessor for NoopProcessor {
    fn on_end(&self, _span: SpanData) {}
}

impl<P: SpanProcessor + ?Sized> SpanProcessor for Arc<P> {
    fn on_end(&self, span: SpanData) {
        (**self).on_end(span);
    }
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        (**self).on_end_in(slot);
    }
    fn force_flush(&self) {
        (**self).force_flush();
    }
}

/// Keeps finished spans in memory, for tests and for embedding.
#[derive(Debug, Default)]
pub struct InMemoryExporter {
    spans: Mutex<Vec<SpanData>>,
}

impl InMemoryExporter {
    /// An empty exporter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes every span collected so far.
    pub fn take(&self) -> Vec<SpanData> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl SpanProcessor for InMemoryExporter {
    fn on_end(&self, span: SpanData) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(span);
    }
}

/// Where processors send finished spans: a backend, a file, a store.
pub trait SpanExporter: Send + Sync {
    /// Takes a batch of finished spans: move out (`drain`, `append`) what
    /// is kept. The caller clears the batch afterwards and reuses its
    /// memory, so steady-state export allocates nothing.
    fn export(&self, batch: &mut Vec<SpanData>);
}

impl<E: SpanExporter + ?Sized> SpanExporter for Arc<E> {
    fn export(&self, batch: &mut Vec<SpanData>) {
        (**self).export(batch);
    }
}

impl SpanExporter for InMemoryExporter {
    fn export(&self, batch: &mut Vec<SpanData>) {
        self.spans
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .append(batch);
    }
}

/// Drops every batch: the reporter of a benchmark, or tracing switched off
/// at the far end.
#[derive(Clone, Copy, Debug, Default)]
pub struct DropExporter;

impl SpanExporter for DropExporter {
    fn export(&self, _batch: &mut Vec<SpanData>) {}
}

/// Exports every span as it ends, on the thread that ends it
/// (OpenTelemetry's simple processor).
#[derive(Debug)]
pub struct SimpleProcessor<E> {
    exporter: E,
}

impl<E: SpanExporter> SimpleProcessor<E> {
    /// A processor exporting to `exporter`.
    pub fn new(exporter: E) -> Self {
        SimpleProcessor { exporter }
    }
}

impl<E: SpanExporter> SpanProcessor for SimpleProcessor<E> {
    fn on_end(&self, span: SpanData) {
        self.exporter.export(&mut vec![span]);
    }
}

pub use batch::{BatchConfig, BatchProcessor, ProcessorStats};

mod batch {
    use super::{SpanExporter, SpanProcessor};
    use crate::span::SpanData;
    use std::cell::RefCell;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// Caps and timing of a [`BatchProcessor`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BatchConfig {
        /// Spans waiting for export, at most; a batch that would exceed it
        /// is dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`).
        pub max_queue_size: usize,
        /// The most spans one [`SpanExporter::export`] call gets
        /// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
        pub max_export_batch_size: usize,
        /// The export thread runs this often (`OTEL_BSP_SCHEDULE_DELAY`),
        /// and early once eight export batches (or half the queue) wait.
        /// Threads that end spans never wait for it, and wake it no more
        /// often than that: waking a sleeping thread costs microseconds.
        pub scheduled_delay: Duration,
        /// Spans a thread keeps before handing them over (at most
        /// `max_export_batch_size`, so that a handed-over buffer is exported
        /// as it is, without copying); a thread also hands over when a
        /// local root span ends.
        pub thread_buffer: usize,
    }

    impl Default for BatchConfig {
        fn default() -> Self {
            // The exporter wakes every 100 ms or once 4096 spans wait:
            // rarely enough that it does not steal a core from the
            // threads it serves at millions of spans a second.
            BatchConfig {
                max_queue_size: 65_536,
                max_export_batch_size: 512,
                scheduled_delay: Duration::from_millis(100),
                thread_buffer: 512,
            }
        }
    }

    /// What a [`BatchProcessor`] has done.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ProcessorStats {
        /// Spans handed to the exporter.
        pub exported: u64,
        /// Spans dropped because the queue was full.
        pub dropped: u64,
    }

    /// One thread's hand-over slot: the thread moves a buffer of finished
    /// spans in at a local root (or when its buffer fills), the export
    /// thread takes it out. Producers never share a lock with each other,
    /// only now and then with the export thread.
    struct Slot {
        spans: Mutex<Handed>,
        /// The thread has exited: drain the slot once more, then forget it.
        closed: AtomicBool,
    }

    #[derive(Default)]
    struct Handed {
        /// Handed-over buffers, oldest first: a hand-over moves a buffer,
        /// it never copies spans into another.
        full: Vec<Vec<SpanData>>,
        /// Exported buffers, emptied, their memory ready for the thread
        /// (at most [`SPARES`]).
        spare: Vec<Vec<SpanData>>,
    }

    /// Emptied buffers a slot keeps for its thread: memory that is reused
    /// rather than freed on the export thread and allocated again (and
    /// faulted in) on this one.
    const SPARES: usize = 8;

    struct Shared {
        slots: Mutex<Vec<Arc<Slot>>>,
        /// Spans in slots, not yet exported (bounded by `max_queue_size`).
        queued: AtomicUsize,
        wake_lock: Mutex<()>,
        wake: Condvar,
        exporter: Box<dyn SpanExporter>,
        config: BatchConfig,
        exported: AtomicU64,
        dropped: AtomicU64,
        shutdown: AtomicBool,
    }

    impl Shared {
        /// Moves a thread's buffer into its slot (or drops and counts it
        /// when the queue is full); leaves the thread an empty buffer,
        /// reusing exported memory where there is some.
        fn hand_over(&self, slot: &Slot, buf: &mut Vec<SpanData>) {
            let n = buf.len();
            if n == 0 {
                return;
            }
            let before = self.queued.fetch_add(n, Ordering::AcqRel);
            if before + n > self.config.max_queue_size {
                self.queued.fetch_sub(n, Ordering::AcqRel);
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                buf.clear();
                return;
            }
            {
                let cap = self.thread_cap();
                let mut h = slot.spans.lock().unwrap_or_else(|e| e.into_inner());
                match h.full.last_mut() {
                    // A small hand-over (a short trace) joins the last
                    // buffer: a copy of a few spans, where a buffer of its
                    // own would cost an allocation.
                    Some(tail) if tail.len() + n <= cap => tail.append(buf),
                    // A large one moves whole, copying nothing.
                    _ => {
                        let spare = h.spare.pop().unwrap_or_default();
                        h.full.push(std::mem::replace(buf, spare));
                    }
                }
            }
            // The next trace is likely the size of this one: one allocation
            // now rather than a doubling series while spans are being ended.
            if buf.capacity() < n {
                buf.reserve(n);
            }
            let threshold = self.high_water();
            if before < threshold && before + n >= threshold {
                let _g = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
                self.wake.notify_one();
            }
        }

        /// Spans a thread buffers before handing them over.
        fn thread_cap(&self) -> usize {
            self.config
                .thread_buffer
                .min(self.config.max_export_batch_size)
                .max(1)
        }

        /// Queued spans past which the export thread is woken early: eight
        /// export batches (their memory stays in cache between the threads
        /// that fill it and the exporter that drains it), or half the
        /// queue if that is less. Each wake costs the waking thread a
        /// system call, so it is not done per batch.
        fn high_water(&self) -> usize {
            (self.config.max_export_batch_size.saturating_mul(8))
                .min(self.config.max_queue_size / 2)
                .max(1)
        }

        /// Takes every slot's spans and exports them, on the calling thread.
        fn export_all(&self) {
            let slots: Vec<Arc<Slot>> = {
                let mut all = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                let snapshot = all.clone();
                // Closed slots are drained below one last time.
                all.retain(|s| !s.closed.load(Ordering::Acquire));
                snapshot
            };
            for slot in slots {
                let full = {
                    let mut h = slot.spans.lock().unwrap_or_else(|e| e.into_inner());
                    std::mem::take(&mut h.full)
                };
                for mut batch in full {
                    let n = batch.len();
                    self.queued.fetch_sub(n, Ordering::AcqRel);
                    // A buffer holds at most `thread_cap()` spans, no more
                    // than `max_export_batch_size`: it is one export.
                    self.exporter.export(&mut batch);
                    self.exported.fetch_add(n as u64, Ordering::Relaxed);
                    batch.clear();
                    let mut h = slot.spans.lock().unwrap_or_else(|e| e.into_inner());
                    if h.spare.len() < SPARES {
                        h.spare.push(batch);
                    }
                    // A slot keeps at most `SPARES` empty buffers: bounded.
                }
            }
        }

        fn run(&self) {
            loop {
                {
                    let g = self.wake_lock.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = self
                        .wake
                        .wait_timeout_while(g, self.config.scheduled_delay, |_| {
                            self.queued.load(Ordering::Acquire) < self.high_water()
                                && !self.shutdown.load(Ordering::Acquire)
                        })
                        .unwrap_or_else(|e| e.into_inner());
                }
                self.export_all();
                if self.shutdown.load(Ordering::Acquire) {
                    return;
                }
            }
        }
    }

    /// A thread's buffer for one processor, and its slot; handed over when
    /// the thread exits, too.
    struct Local {
        shared: Arc<Shared>,
        slot: Arc<Slot>,
        spans: Vec<SpanData>,
    }

    impl Drop for Local {
        fn drop(&mut self) {
            self.shared.hand_over(&self.slot, &mut self.spans);
            self.slot.closed.store(true, Ordering::Release);
        }
    }

    /// Moves the span out of `slot` onto the end of `buf`, copying it once.
    /// (`buf.push(slot.take())` copies it twice: `None` is marked by a niche
    /// inside the data, so `take` must copy the span out before writing
    /// `None` over it.)
    #[inline]
    fn move_into(buf: &mut Vec<SpanData>, slot: &mut Option<SpanData>) {
        let Some(span) = slot.as_mut() else {
            return;
        };
        let src: *const SpanData = span;
        buf.reserve(1);
        // SAFETY: `reserve` left room for one more element; the span is
        // copied into it bit for bit, then its slot is overwritten with
        // `None` without being dropped (`ptr::write`), so the one owner of
        // the span's heap data is the buffer's new element. Nothing between
        // the copy and the write can panic.
        unsafe {
            buf.as_mut_ptr()
                .add(buf.len())
                .copy_from_nonoverlapping(src, 1);
            std::ptr::write(slot, None);
            buf.set_len(buf.len() + 1);
        }
    }

    thread_local! {
        static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
    }

    /// Batches finished spans without a lock on the hot path: each thread
    /// buffers its spans and hands them over in one step (when its buffer
    /// fills or a local root ends); a background thread exports them in
    /// batches. The queue is bounded and drops are counted.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tracer_core::{BatchConfig, BatchProcessor, InMemoryExporter, Sampler, Tracer};
    ///
    /// let exporter = Arc::new(InMemoryExporter::new());
    /// let batch = Arc::new(BatchProcessor::new(exporter.clone(), BatchConfig::default()));
    /// let tracer = Tracer::new(Sampler::AlwaysOn, batch.clone());
    /// {
    ///     let _root = tracer.start("request").entered();
    ///     let _child = tracer.start("query");
    /// }
    /// tracer.force_flush();
    /// assert_eq!(exporter.take().len(), 2);
    /// assert_eq!(batch.stats().dropped, 0);
    /// ```
    pub struct BatchProcessor {
        shared: Arc<Shared>,
        worker: Mutex<Option<JoinHandle<()>>>,
    }

    impl std::fmt::Debug for BatchProcessor {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("BatchProcessor")
                .field("config", &self.shared.config)
                .field("stats", &self.stats())
                .finish()
        }
    }

    impl BatchProcessor {
        /// A processor exporting to `exporter` from a background thread.
        pub fn new(exporter: impl SpanExporter + 'static, config: BatchConfig) -> Self {
            let shared = Arc::new(Shared {
                slots: Mutex::new(Vec::new()),
                queued: AtomicUsize::new(0),
                wake_lock: Mutex::new(()),
                wake: Condvar::new(),
                exporter: Box::new(exporter),
                config,
                exported: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                shutdown: AtomicBool::new(false),
            });
            let worker = {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name("tracer-batch-export".into())
                    .spawn(move || shared.run())
                    .expect("spawn the batch export thread")
            };
            BatchProcessor {
                shared,
                worker: Mutex::new(Some(worker)),
            }
        }

        /// Counters.
        pub fn stats(&self) -> ProcessorStats {
            ProcessorStats {
                exported: self.shared.exported.load(Ordering::Relaxed),
                dropped: self.shared.dropped.load(Ordering::Relaxed),
            }
        }

        /// This thread's entry for this processor, made (and its slot
        /// registered) on first use.
        fn local_index(&self, l: &mut Vec<Local>) -> usize {
            match l.iter().position(|b| Arc::ptr_eq(&b.shared, &self.shared)) {
                Some(i) => i,
                None => {
                    let slot = Arc::new(Slot {
                        spans: Mutex::new(Handed::default()),
                        closed: AtomicBool::new(false),
                    });
                    self.shared
                        .slots
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(slot.clone());
                    l.push(Local {
                        shared: self.shared.clone(),
                        slot,
                        spans: Vec::new(),
                    });
                    l.len() - 1
                }
            }
        }

        /// Stops the export thread after exporting what it holds.
        pub fn shutdown(&self) {
            self.force_flush_impl();
            self.shared.shutdown.store(true, Ordering::Release);
            {
                let _g = self
                    .shared
                    .wake_lock
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                self.shared.wake.notify_one();
            }
            if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = w.join();
            }
            self.shared.export_all();
        }

        fn force_flush_impl(&self) {
            let _ = LOCAL.try_with(|l| {
                let mut l = l.borrow_mut();
                let i = self.local_index(&mut l);
                let local = &mut l[i];
                self.shared.hand_over(&local.slot, &mut local.spans);
            });
            self.shared.export_all();
        }
    }

    impl SpanProcessor for BatchProcessor {
        #[inline]
        fn on_end(&self, span: SpanData) {
            self.on_end_in(&mut Some(span));
        }

        #[inline]
        fn on_end_in(&self, slot: &mut Option<SpanData>) {
            let Some(local_root) = slot.as_ref().map(|s| s.parent_span_id.is_none()) else {
                return;
            };
            let cap = self.shared.thread_cap();
            // The closure captures the slot by reference: the span is copied
            // once, from the `Span` into this thread's buffer.
            let _ = LOCAL.try_with(|l| {
                let mut l = l.borrow_mut();
                let i = match l.first() {
                    Some(b) if Arc::ptr_eq(&b.shared, &self.shared) => 0,
                    _ => self.local_index(&mut l),
                };
                let local = &mut l[i];
                move_into(&mut local.spans, slot);
                if local_root || local.spans.len() >= cap {
                    self.shared.hand_over(&local.slot, &mut local.spans);
                }
            });
        }

        /// Hands over this thread's buffer and exports everything queued,
        /// on the calling thread.
        fn force_flush(&self) {
            self.force_flush_impl();
        }
    }

    impl Drop for BatchProcessor {
        fn drop(&mut self) {
            self.shutdown();
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::{InMemoryExporter, Sampler, Tracer};

        /// Counts what it is given, batch by batch.
        #[derive(Default)]
        struct Recorder {
            batches: Mutex<Vec<usize>>,
        }

        impl SpanExporter for Recorder {
            fn export(&self, batch: &mut Vec<SpanData>) {
                self.batches.lock().unwrap().push(batch.len());
            }
        }

        fn run_trace(tracer: &Tracer, children: usize) {
            let t = tracer.clone();
            std::thread::spawn(move || {
                let _root = t.start("root").entered();
                for _ in 0..children {
                    t.start("child");
                }
            })
            .join()
            .unwrap();
        }

        #[test]
        fn batches_reach_the_exporter_and_drops_are_counted() {
            let mem = Arc::new(InMemoryExporter::new());
            // The export thread sleeps for a minute unless the queue
            // passes half full (5): what is dropped depends on the queue.
            let cfg = BatchConfig {
                max_queue_size: 10,
                max_export_batch_size: 1_000,
                scheduled_delay: Duration::from_secs(60),
                thread_buffer: 100,
            };
            let p = Arc::new(BatchProcessor::new(mem.clone(), cfg));
            let tracer = Tracer::new(Sampler::AlwaysOn, p.clone());
            {
                let _root = tracer.start("root").entered();
                for _ in 0..3 {
                    tracer.start("child");
                }
            }
            tracer.force_flush();
            assert_eq!(mem.take().len(), 4);
            // 12 spans handed over at once do not fit a 10-span queue:
            // dropped, counted, and the export thread is not woken.
            run_trace(&tracer, 11);
            assert_eq!(p.stats().dropped, 12);
            // 4 fit (queued 4, under half: no wake) ...
            run_trace(&tracer, 3);
            // ... and 7 more would make 11: dropped.
            run_trace(&tracer, 6);
            assert_eq!(p.stats().dropped, 19);
            assert_eq!(p.stats().exported, 4);
            p.shutdown();
            assert_eq!(mem.take().len(), 4);
            assert_eq!(
                p.stats(),
                ProcessorStats {
                    exported: 8,
                    dropped: 19
                }
            );
        }

        /// Spans that own heap data (a built name, attributes, events) come
        /// out of the thread buffers whole: moved once, dropped once.
        #[test]
        fn spans_keep_their_data_through_the_buffers() {
            let mem = Arc::new(InMemoryExporter::new());
            let p = Arc::new(BatchProcessor::new(mem.clone(), BatchConfig::default()));
            let tracer = Tracer::new(Sampler::AlwaysOn, p.clone());
            {
                let _root = tracer.start(format!("root-{}", 7)).entered();
                for i in 0..600 {
                    let mut s = tracer
                        .span_builder(format!("child-{i}"))
                        .attribute("i", i as i64)
                        .start();
                    s.add_event(format!("event-{i}"), vec![crate::KeyValue::new("k", "v")]);
                }
            }
            tracer.force_flush();
            let spans = mem.take();
            assert_eq!(spans.len(), 601);
            for (i, s) in spans.iter().filter(|s| s.name != "root-7").enumerate() {
                assert_eq!(s.name, format!("child-{i}"));
                assert_eq!(s.attribute("i"), Some(&crate::Value::from(i as i64)));
                assert_eq!(s.events[0].name, format!("event-{i}"));
            }
            assert_eq!(p.stats().dropped, 0);
        }

        #[test]
        fn a_half_full_queue_wakes_the_exporter_and_batches_stay_within_the_cap() {
            let rec = Arc::new(Recorder::default());
            let cfg = BatchConfig {
                max_queue_size: 100,
                max_export_batch_size: 8,
                scheduled_delay: Duration::from_secs(60),
                thread_buffer: 1_000,
            };
            let p = Arc::new(BatchProcessor::new(rec.clone(), cfg));
            let tracer = Tracer::new(Sampler::AlwaysOn, p.clone());
            // 60 spans: the queue passes 50 and the export thread runs
            // long before its minute is up.
            run_trace(&tracer, 59);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while p.stats().exported < 60 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert_eq!(p.stats().exported, 60);
            let batches = rec.batches.lock().unwrap().clone();
            assert_eq!(batches.iter().sum::<usize>(), 60);
            assert!(batches.iter().all(|&n| n <= 8), "{batches:?}");
            p.shutdown();
        }
    }
}
