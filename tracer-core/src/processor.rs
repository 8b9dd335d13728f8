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
    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Condvar, Mutex};
    use std::thread::JoinHandle;
    use std::time::Duration;

    /// Caps and timing of a [`BatchProcessor`].
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct BatchConfig {
        /// Spans waiting for export, at most; a batch that would exceed it
        /// is dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`).
        pub max_queue_size: usize,
        /// The exporter is woken once this many spans wait
        /// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
        pub max_export_batch_size: usize,
        /// Otherwise it exports this often (`OTEL_BSP_SCHEDULE_DELAY`).
        pub scheduled_delay: Duration,
        /// Spans a thread keeps before handing them over; a thread also
        /// hands over when a local root span ends.
        pub thread_buffer: usize,
    }

    impl Default for BatchConfig {
        fn default() -> Self {
            // The exporter wakes for a full batch or every 100 ms: rarely
            // enough that it does not steal a core from the threads it
            // serves at millions of spans a second.
            BatchConfig {
                max_queue_size: 65_536,
                max_export_batch_size: 512,
                scheduled_delay: Duration::from_millis(100),
                thread_buffer: 256,
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

    #[derive(Default)]
    struct Queue {
        batches: VecDeque<Vec<SpanData>>,
        spans: usize,
        /// Exported batches, empty, their memory ready for reuse: a thread
        /// that hands over a batch takes one back, so memory is not freed
        /// on one thread and allocated on another.
        spare: Vec<Vec<SpanData>>,
        /// The spans `spare` has room for.
        spare_capacity: usize,
    }

    struct Shared {
        queue: Mutex<Queue>,
        wake: Condvar,
        exporter: Box<dyn SpanExporter>,
        config: BatchConfig,
        exported: AtomicU64,
        dropped: AtomicU64,
        shutdown: AtomicBool,
    }

    impl Shared {
        /// Queues a batch (or drops and counts it when the queue is full)
        /// and returns an empty batch for the caller to fill next.
        fn enqueue(&self, mut batch: Vec<SpanData>) -> Vec<SpanData> {
            let n = batch.len();
            if n == 0 {
                return batch;
            }
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.spans + n > self.config.max_queue_size {
                drop(q);
                self.dropped.fetch_add(n as u64, Ordering::Relaxed);
                batch.clear();
                return batch;
            }
            let before = q.spans;
            q.spans += n;
            q.batches.push_back(batch);
            // No spare: the next trace is likely the size of this one.
            let next = match q.spare.pop() {
                Some(v) => {
                    q.spare_capacity -= v.capacity();
                    v
                }
                None => Vec::with_capacity(n.clamp(4, self.config.thread_buffer)),
            };
            let full = before < self.config.max_export_batch_size
                && q.spans >= self.config.max_export_batch_size;
            drop(q);
            if full {
                self.wake.notify_one();
            }
            next
        }

        fn export_all(&self) {
            let batches = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                q.spans = 0;
                std::mem::take(&mut q.batches)
            };
            let mut emptied = Vec::with_capacity(batches.len());
            for mut b in batches {
                let n = b.len() as u64;
                self.exporter.export(&mut b);
                self.exported.fetch_add(n, Ordering::Relaxed);
                b.clear();
                emptied.push(b);
            }
            // Spare memory is bounded by an eighth of the queue's capacity.
            let bound = self.config.max_queue_size / 8;
            let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            for b in emptied {
                if q.spare_capacity + b.capacity() > bound {
                    break;
                }
                q.spare_capacity += b.capacity();
                q.spare.push(b);
            }
        }

        fn run(&self) {
            loop {
                {
                    let q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                    let (q, _) = self
                        .wake
                        .wait_timeout_while(q, self.config.scheduled_delay, |q| {
                            q.spans < self.config.max_export_batch_size
                                && !self.shutdown.load(Ordering::Acquire)
                        })
                        .unwrap_or_else(|e| e.into_inner());
                    drop(q);
                }
                self.export_all();
                if self.shutdown.load(Ordering::Acquire) {
                    return;
                }
            }
        }
    }

    /// A thread's not-yet-handed-over spans for one processor; handed over
    /// when the thread exits, too.
    struct Local {
        shared: Arc<Shared>,
        spans: Vec<SpanData>,
    }

    impl Drop for Local {
        fn drop(&mut self) {
            self.shared.enqueue(std::mem::take(&mut self.spans));
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
                queue: Mutex::new(Queue::default()),
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

        fn local_index(&self, l: &mut Vec<Local>) -> usize {
            match l.iter().position(|b| Arc::ptr_eq(&b.shared, &self.shared)) {
                Some(i) => i,
                None => {
                    l.push(Local {
                        shared: self.shared.clone(),
                        spans: Vec::new(),
                    });
                    l.len() - 1
                }
            }
        }

        fn with_local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
            LOCAL.with(|l| {
                let mut l = l.borrow_mut();
                let i = self.local_index(&mut l);
                f(&mut l[i])
            })
        }

        /// Stops the export thread after exporting what it holds.
        pub fn shutdown(&self) {
            self.force_flush_impl();
            self.shared.shutdown.store(true, Ordering::Release);
            self.shared.wake.notify_one();
            if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = w.join();
            }
            self.shared.export_all();
        }

        fn force_flush_impl(&self) {
            let spans = self.with_local(|b| std::mem::take(&mut b.spans));
            let spare = self.shared.enqueue(spans);
            self.with_local(|b| {
                if b.spans.capacity() == 0 {
                    b.spans = spare;
                }
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
            let cap = self.shared.config.thread_buffer;
            // The closure captures the slot by reference: the span is copied
            // once, from the `Span` into this thread's buffer.
            let full = LOCAL.with(|l| {
                let mut l = l.borrow_mut();
                let b = match l.first_mut() {
                    Some(b) if Arc::ptr_eq(&b.shared, &self.shared) => b,
                    _ => {
                        let i = self.local_index(&mut l);
                        &mut l[i]
                    }
                };
                if let Some(s) = slot.take() {
                    b.spans.push(s);
                }
                (local_root || b.spans.len() >= cap).then(|| std::mem::take(&mut b.spans))
            });
            if let Some(batch) = full {
                // The buffer comes back as an exported batch's memory.
                let spare = self.shared.enqueue(batch);
                self.with_local(|b| {
                    if b.spans.capacity() == 0 {
                        b.spans = spare;
                    }
                });
            }
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

        #[test]
        fn batches_reach_the_exporter_and_drops_are_counted() {
            let mem = Arc::new(InMemoryExporter::new());
            // The exporter never wakes on its own here (large batch, long
            // delay): what is dropped depends on the queue alone.
            let cfg = BatchConfig {
                max_queue_size: 10,
                max_export_batch_size: 1_000,
                scheduled_delay: Duration::from_secs(60),
                thread_buffer: 4,
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
            // 3 threads one after the other, each handing over 6 spans in
            // two batches (a full 4-span buffer, then 2 when the root ends):
            // the 10-span queue takes 10 and drops the other 8, counted.
            for _ in 0..3 {
                let t = tracer.clone();
                std::thread::spawn(move || {
                    let _root = t.start("root").entered();
                    for _ in 0..5 {
                        t.span_builder("child").start();
                    }
                })
                .join()
                .unwrap();
            }
            p.shutdown();
            let st = p.stats();
            let got = mem.take().len() as u64;
            assert_eq!(got + st.dropped, 18, "every span is exported or counted");
            assert_eq!(st.dropped, 8);
            assert_eq!(st.exported, 4 + got);
        }
    }
}
