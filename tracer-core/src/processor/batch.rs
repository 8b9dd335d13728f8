//! The batching processor: a lock-free queue per thread, drained by an
//! export thread. One design for both signals: spans
//! ([`SpanExporter`]) and log records ([`LogExporter`]).

use super::{SpanExporter, SpanProcessor};
use crate::logs::{LogExporter, LogProcessor, LogRecord};
use crate::span::SpanData;
use std::any::Any;
use std::cell::{RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Caps and timing of a [`BatchProcessor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Spans one thread may have waiting for export, at most
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, per thread: each thread has a queue of
    /// its own). A span that ends while its thread's queue is full is
    /// dropped and counted.
    pub max_queue_size: usize,
    /// The most spans one [`SpanExporter::export`] call gets
    /// (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// The export thread runs this often (`OTEL_BSP_SCHEDULE_DELAY`), and
    /// early when a thread's queue is half full. Threads that end spans
    /// never wait for it and wake it no more often than that: waking a
    /// sleeping thread costs microseconds.
    pub scheduled_delay: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        // 8192 spans (1.7 MB at most) per thread: the export thread wakes
        // every 100 ms or after 4096 spans of one thread, rarely enough that
        // it does not steal a core from threads making millions of spans a
        // second.
        BatchConfig {
            max_queue_size: 8_192,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_millis(100),
        }
    }
}

/// What a [`BatchProcessor`] has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessorStats {
    /// Items handed to the exporter.
    pub exported: u64,
    /// Items dropped: their thread's queue was full, the thread was being
    /// torn down, or they were still queued at the shutdown deadline.
    pub dropped: u64,
    /// Items waiting in the queues now.
    pub queued: u64,
}

/// How many items ahead of the one written [`Ring::push`] prefetches.
const PREFETCH_AHEAD: usize = 4;

/// Asks for the cache lines of `*p` for writing: `prefetchw` where the CPU
/// has it (CPUID `PRFCHW`, read once), else a read prefetch (`prefetcht0`,
/// in every x86-64), which brings the lines near but leaves the write to
/// claim them. Hints both: neither faults, whatever the address. Elsewhere
/// than x86-64, nothing.
#[inline(always)]
fn prefetch_for_write<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = p as usize & !63;
        let last = (p as usize + std::mem::size_of::<T>().max(1) - 1) & !63;
        let write = has_prefetchw();
        let mut line = first;
        while line <= last {
            let at = p.cast::<u8>().wrapping_add(line.wrapping_sub(p as usize));
            if write {
                // SAFETY: the CPU has `prefetchw` (checked); a prefetch
                // only hints, never faults, and writes no memory or flag.
                unsafe {
                    std::arch::asm!(
                        "prefetchw [{0}]",
                        in(reg) at,
                        options(nostack, preserves_flags, readonly)
                    );
                }
            } else {
                // SAFETY: SSE is part of x86-64; a prefetch never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
            }
            line += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Whether the CPU has `prefetchw` (CPUID 8000_0001h, ECX bit 8), asked
/// once: some early x86-64 CPUs fault on it.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn has_prefetchw() -> bool {
    use std::sync::atomic::AtomicU8;
    static KNOWN: AtomicU8 = AtomicU8::new(0);
    match KNOWN.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: `cpuid` is in every x86-64 (a safe function in newer
            // Rust than the minimum this crate supports).
            #[allow(unused_unsafe)]
            let yes = unsafe {
                let max = std::arch::x86_64::__cpuid(0x8000_0000).eax;
                max >= 0x8000_0001 && std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0
            };
            KNOWN.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
            yes
        }
        k => k == 2,
    }
}

/// Keeps a value on a cache line of its own, so that the producer's index
/// and the consumer's do not share one.
#[repr(align(64))]
struct Padded<T>(T);

/// One thread's queue: a ring of spans with one producer (the thread) and
/// one consumer at a time (whoever holds [`Shared::consume`]).
///
/// The producer writes a span into the slot at `head` and then publishes
/// `head + 1` with a release store; the consumer reads `head` with an
/// acquire load, moves the spans before it out, and publishes its `tail`
/// the same way. On x86 neither side executes a locked instruction.
struct Ring<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// Spans the ring may hold: `BatchConfig::max_queue_size`.
    cap: usize,
    /// Spans written, ever (wrapping). Written by the producer only.
    head: Padded<AtomicUsize>,
    /// Spans taken out, ever (wrapping). Written by the consumer only.
    tail: Padded<AtomicUsize>,
    /// The producing thread has exited: drain once more, then forget it.
    closed: AtomicBool,
}

// SAFETY: the slots are reached only through the single-producer,
// single-consumer protocol above: a slot between `tail` and `head` belongs
// to the consumer, any other to the producer, and each side hands slots
// over with a release store that the other side reads with an acquire
// load. The items are `Send`.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    fn new(cap: usize) -> Ring<T> {
        let cap = cap.max(1);
        let len = cap.next_power_of_two();
        Ring {
            slots: (0..len)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            mask: len - 1,
            cap,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
            closed: AtomicBool::new(false),
        }
    }

    /// Moves the span out of `slot` into the ring, copying it once, and
    /// returns how many spans the ring held as the producer last saw it,
    /// or `None` when the ring is full (the span stays in `slot`).
    ///
    /// # Safety
    /// Only the ring's one producer calls this, with its own `head` (the
    /// value it last published) and `tail_seen` (a value of `tail` it has
    /// read).
    #[inline]
    unsafe fn push(
        &self,
        head: &mut usize,
        tail_seen: &mut usize,
        slot: &mut Option<T>,
    ) -> Option<usize> {
        let span = slot.as_mut()?;
        if head.wrapping_sub(*tail_seen) >= self.cap {
            *tail_seen = self.tail.0.load(Ordering::Acquire);
            if head.wrapping_sub(*tail_seen) >= self.cap {
                return None;
            }
        }
        let dst = self.slots[*head & self.mask].get().cast::<T>();
        // SAFETY: the slot at `head` is outside [tail, head): the consumer
        // is done with it (its release of `tail` was acquired above or
        // earlier) and holds no value there. The span is copied bit for bit
        // and its `Option` overwritten with `None` without being dropped,
        // so the ring's slot is its one owner. Nothing here can panic.
        unsafe {
            dst.copy_from_nonoverlapping(span, 1);
            std::ptr::write(slot, None);
        }
        *head = head.wrapping_add(1);
        self.head.0.store(*head, Ordering::Release);
        // The slots a few items on are asked for, for writing, now: by the
        // time they are written their lines are here (the ring is larger
        // than a core's cache, and the consumer on another core read them
        // last). A write that misses holds up the next locked instruction
        // of this thread (the registry's, the layer's) until it lands.
        prefetch_for_write(self.slots[head.wrapping_add(PREFETCH_AHEAD) & self.mask].get());
        Some(head.wrapping_sub(*tail_seen))
    }

    /// Moves up to `max` spans out of the ring onto `out`.
    ///
    /// # Safety
    /// Only one consumer at a time calls this (the caller holds
    /// [`Shared::consume`]).
    unsafe fn drain(&self, max: usize, out: &mut Vec<T>) -> usize {
        let tail = self.tail.0.load(Ordering::Relaxed);
        let head = self.head.0.load(Ordering::Acquire);
        let n = head.wrapping_sub(tail).min(max);
        out.reserve(n);
        // The spans lie in at most two runs (the second when they wrap
        // round the end): each is moved with one bulk copy.
        let start = tail & self.mask;
        let first = n.min(self.slots.len() - start);
        for (from, len) in [(start, first), (0, n - first)] {
            if len == 0 {
                continue;
            }
            // SAFETY: slots in [tail, tail + n) hold spans the producer
            // wrote before its release of `head`, acquired above; the two
            // runs cover exactly those slots, `reserve` made room in `out`,
            // and `UnsafeCell<MaybeUninit<T>>` has the layout of `T`. Each
            // span is moved once: `tail` passes it below, giving the slot
            // back without dropping it.
            unsafe {
                let src = self.slots.as_ptr().add(from).cast::<T>();
                let dst = out.as_mut_ptr().add(out.len());
                dst.copy_from_nonoverlapping(src, len);
                out.set_len(out.len() + len);
            }
        }
        self.tail.0.store(tail.wrapping_add(n), Ordering::Release);
        n
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        let mut rest = Vec::new();
        // SAFETY: `&mut self`: no producer or consumer is left.
        unsafe { self.drain(usize::MAX, &mut rest) };
    }
}

/// What a batch processor carries: spans or log records. Each kind names
/// its exporter trait; the processor is the same.
pub trait Exportable: Send + Sized + 'static {
    /// The exporter trait object batches of this kind go to.
    type Exporter: ?Sized + Send + Sync + 'static;
    /// Hands a batch to the exporter.
    fn export(exporter: &Self::Exporter, batch: &mut Vec<Self>);
    /// Tells the exporter that the processor is shutting down and must be
    /// done by `deadline` (an exporter that retries stops then).
    fn shutdown(exporter: &Self::Exporter, deadline: Instant);
}

impl Exportable for SpanData {
    type Exporter = dyn SpanExporter;
    fn export(exporter: &dyn SpanExporter, batch: &mut Vec<Self>) {
        exporter.export(batch);
    }
    fn shutdown(exporter: &dyn SpanExporter, deadline: Instant) {
        exporter.shutdown(deadline);
    }
}

impl Exportable for LogRecord {
    type Exporter = dyn LogExporter;
    fn export(exporter: &dyn LogExporter, batch: &mut Vec<Self>) {
        exporter.export(batch);
    }
    fn shutdown(exporter: &dyn LogExporter, deadline: Instant) {
        exporter.shutdown(deadline);
    }
}

/// An exporter a [`BatchProcessor`] of `T` can take.
pub trait IntoExporter<T: Exportable> {
    /// Boxes it as the exporter trait object of `T`.
    fn into_exporter(self) -> Box<T::Exporter>;
}

impl<E: SpanExporter + 'static> IntoExporter<SpanData> for E {
    fn into_exporter(self) -> Box<dyn SpanExporter> {
        Box::new(self)
    }
}

impl<E: LogExporter + 'static> IntoExporter<LogRecord> for E {
    fn into_exporter(self) -> Box<dyn LogExporter> {
        Box::new(self)
    }
}

struct Shared<T: Exportable> {
    /// Every thread's ring; a closed one is dropped after its last drain.
    rings: Mutex<Vec<Arc<Ring<T>>>>,
    /// Held while draining: the export thread, `force_flush` and
    /// `shutdown` may all drain, one at a time.
    consume: Mutex<()>,
    /// Set (under its lock) to wake the export thread early.
    wake: Mutex<bool>,
    wake_cv: Condvar,
    /// A producer has asked for a drain that the export thread has not
    /// begun: producers past half full ask once, not on every item.
    asked: AtomicBool,
    exporter: Box<T::Exporter>,
    config: BatchConfig,
    exported: AtomicU64,
    dropped: AtomicU64,
    shutdown: AtomicBool,
    /// Set by the export thread when it has exported its last batch.
    done: Mutex<bool>,
    done_cv: Condvar,
    /// Items pushed into rings that are gone (closed and drained).
    removed_pushed: AtomicU64,
    /// Notified after every exported batch, for producers waiting for room.
    drained: Mutex<()>,
    drained_cv: Condvar,
}

impl<T: Exportable> Shared<T> {
    /// Drains every ring and exports what it held, in batches of at most
    /// `max_export_batch_size`, on the calling thread.
    fn export_all(&self) {
        let _consumer = self.consume.lock().unwrap_or_else(|e| e.into_inner());
        let rings: Vec<Arc<Ring<T>>> = {
            let mut all = self.rings.lock().unwrap_or_else(|e| e.into_inner());
            let snapshot = all.clone();
            // Closed rings are drained below one last time.
            all.retain(|r| {
                let open = !r.closed.load(Ordering::Acquire);
                if !open {
                    let pushed = r.head.0.load(Ordering::Acquire) as u64;
                    self.removed_pushed.fetch_add(pushed, Ordering::Relaxed);
                }
                open
            });
            snapshot
        };
        let max = self.config.max_export_batch_size.max(1);
        let mut batch = Vec::with_capacity(max);
        for ring in rings {
            // What the ring holds now, and no more: a producer that goes on
            // pushing is not chased (drained at its heels, each of its
            // pushes would pull the lines it writes back from this thread);
            // it asks again when its queue is half full.
            let mut left = ring
                .head
                .0
                .load(Ordering::Acquire)
                .wrapping_sub(ring.tail.0.load(Ordering::Relaxed));
            while left > 0 {
                // SAFETY: this thread holds `consume`.
                let n = unsafe { ring.drain(max.min(left), &mut batch) };
                if n == 0 {
                    break;
                }
                left -= n;
                let n = batch.len() as u64;
                T::export(&self.exporter, &mut batch);
                self.exported.fetch_add(n, Ordering::Relaxed);
                batch.clear();
                self.drained_cv.notify_all();
            }
        }
    }

    /// Items ever pushed into a queue (not those dropped at the door).
    fn pushed(&self) -> u64 {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        let live: u64 = rings
            .iter()
            .map(|r| r.head.0.load(Ordering::Acquire) as u64)
            .sum();
        live + self.removed_pushed.load(Ordering::Relaxed)
    }

    /// Items waiting in the queues now.
    fn queued(&self) -> u64 {
        let rings = self.rings.lock().unwrap_or_else(|e| e.into_inner());
        rings
            .iter()
            .map(|r| {
                let head = r.head.0.load(Ordering::Acquire);
                head.wrapping_sub(r.tail.0.load(Ordering::Acquire)) as u64
            })
            .sum()
    }

    /// Asks the export thread to drain, unless a drain it has not begun
    /// is asked for already (a load, no write, in that case).
    #[inline]
    fn ask(&self) {
        if !self.asked.load(Ordering::Relaxed) && !self.asked.swap(true, Ordering::AcqRel) {
            self.wake();
        }
    }

    fn wake(&self) {
        let mut w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
        *w = true;
        self.wake_cv.notify_one();
    }

    fn run(&self) {
        loop {
            {
                let w = self.wake.lock().unwrap_or_else(|e| e.into_inner());
                let mut w = self
                    .wake_cv
                    .wait_timeout_while(w, self.config.scheduled_delay, |w| {
                        !*w && !self.shutdown.load(Ordering::Acquire)
                    })
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                *w = false;
            }
            // From here on, a producer past half full asks again.
            self.asked.store(false, Ordering::Release);
            // Read before the drain: a shutdown asked for while it runs
            // gets one more, which takes what was queued after this one's
            // snapshot (the threads that end items stop before they ask).
            let stopping = self.shutdown.load(Ordering::Acquire);
            self.export_all();
            if stopping {
                *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                self.done_cv.notify_all();
                return;
            }
        }
    }
}

/// The ring's side a thread's entry needs whatever it carries.
trait RingControl: Send + Sync {
    fn close(&self);
}

impl<T: Send> RingControl for Ring<T> {
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// A thread's ring for one processor, with the producer's side of the
/// indices. One thread-local list serves processors of every item type:
/// an entry is found by its processor's address, which fixes the type.
struct Local {
    /// The processor's `Shared`, by address (and kept alive by `_owner`).
    owner: *const (),
    _owner: Arc<dyn Any + Send + Sync>,
    ring: Arc<dyn RingControl>,
    /// `ring` as a `*const Ring<T>` of the owner's `T`.
    ring_ptr: *const (),
    head: usize,
    tail_seen: usize,
}

impl Drop for Local {
    fn drop(&mut self) {
        self.ring.close();
    }
}

thread_local! {
    static LOCAL: RefCell<Vec<Local>> = const { RefCell::new(Vec::new()) };
}

/// Batches finished spans with no lock on the path of a span: each thread
/// writes its spans into a queue of its own (a ring with one producer and
/// one consumer), which a background thread drains and exports in batches.
/// A queue is bounded and what does not fit is dropped and counted.
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
pub struct BatchProcessor<T: Exportable = SpanData> {
    shared: Arc<Shared<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// A [`BatchProcessor`] of log records.
pub type BatchLogProcessor = BatchProcessor<LogRecord>;

impl<T: Exportable> std::fmt::Debug for BatchProcessor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("config", &self.shared.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl<T: Exportable> BatchProcessor<T> {
    /// A processor exporting to `exporter` from a background thread.
    pub fn new(exporter: impl IntoExporter<T>, config: BatchConfig) -> Self {
        let shared = Arc::new(Shared {
            rings: Mutex::new(Vec::new()),
            consume: Mutex::new(()),
            wake: Mutex::new(false),
            wake_cv: Condvar::new(),
            asked: AtomicBool::new(false),
            exporter: exporter.into_exporter(),
            config,
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            done: Mutex::new(false),
            done_cv: Condvar::new(),
            removed_pushed: AtomicU64::new(0),
            drained: Mutex::new(()),
            drained_cv: Condvar::new(),
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
            queued: self.shared.queued(),
        }
    }

    /// Items ever moved into a queue (the ones dropped because their
    /// queue was full are not among them): with what the exporter took in
    /// and settled, what is left unaccounted for at a shutdown that gave up.
    pub fn pushed(&self) -> u64 {
        self.shared.pushed()
    }

    /// This thread's entry for this processor, made (and its ring
    /// registered) on first use.
    #[cold]
    fn local_index(&self, l: &mut Vec<Local>) -> usize {
        let owner = Arc::as_ptr(&self.shared).cast::<()>();
        if let Some(i) = l.iter().position(|b| b.owner == owner) {
            return i;
        }
        let ring = Arc::new(Ring::<T>::new(self.shared.config.max_queue_size));
        self.shared
            .rings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ring.clone());
        l.push(Local {
            owner,
            _owner: self.shared.clone(),
            ring_ptr: Arc::as_ptr(&ring).cast::<()>(),
            ring,
            head: 0,
            tail_seen: 0,
        });
        l.len() - 1
    }

    /// Moves an item into this thread's queue; a full queue (or a thread
    /// being torn down) drops it, counted.
    #[inline]
    fn push(&self, slot: &mut Option<T>) {
        let owner = Arc::as_ptr(&self.shared).cast::<()>();
        let queued = LOCAL.try_with(|l| {
            let mut l = l.borrow_mut();
            let i = match l.first() {
                Some(b) if b.owner == owner => 0,
                _ => self.local_index(&mut l),
            };
            let local = &mut l[i];
            // SAFETY: entries are found by their processor's address, and
            // this processor made the entry with a `Ring<T>` of its own `T`
            // (kept alive by `local.ring`).
            let ring = unsafe { &*local.ring_ptr.cast::<Ring<T>>() };
            // SAFETY: `local` is this thread's, and this thread is its
            // ring's one producer.
            match unsafe { ring.push(&mut local.head, &mut local.tail_seen, slot) } {
                Some(held) if held >= ring.cap.div_ceil(2) => {
                    // Past half full by this thread's last look at the
                    // tail: look again, and if it really is, ask for a
                    // drain (once, until the export thread begins it: a
                    // wake only at exactly half was missed whenever the
                    // drain came late and the queue filled, and the queue
                    // then waited for the timer, dropping).
                    local.tail_seen = ring.tail.0.load(Ordering::Acquire);
                    if local.head.wrapping_sub(local.tail_seen) >= ring.cap.div_ceil(2) {
                        self.shared.ask();
                    }
                }
                Some(_) => {}
                None if slot.is_some() => {
                    self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                    self.shared.ask();
                }
                None => {}
            }
        });
        // An item ended while its thread is being torn down (its queue is
        // gone): dropped, and counted.
        if queued.is_err() && slot.is_some() {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Items waiting in the calling thread's queue.
    pub fn backlog(&self) -> usize {
        let owner = Arc::as_ptr(&self.shared).cast::<()>();
        LOCAL
            .try_with(|l| {
                let l = l.borrow();
                l.iter().find(|b| b.owner == owner).map_or(0, |local| {
                    // SAFETY: as in `push`: the entry's ring is a `Ring<T>`.
                    let ring = unsafe { &*local.ring_ptr.cast::<Ring<T>>() };
                    local.head.wrapping_sub(ring.tail.0.load(Ordering::Acquire))
                })
            })
            .unwrap_or(0)
    }

    /// Waits until the calling thread's queue holds at most `target` items
    /// (the export thread is woken to drain it), or `timeout` passes.
    /// Returns whether there is room. For producers that would rather
    /// slow down than drop (a node reading its input can wait; a service
    /// thread should not).
    pub fn wait_for_room(&self, target: usize, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if self.backlog() <= target {
                return true;
            }
            let now = Instant::now();
            if now >= end || self.shared.shutdown.load(Ordering::Acquire) {
                return false;
            }
            self.shared.ask();
            let g = self
                .shared
                .drained
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // Short waits: a batch may be exported between the check above
            // and this wait.
            let wait = (end - now).min(Duration::from_millis(5));
            let _ = self.shared.drained_cv.wait_timeout(g, wait);
        }
    }

    /// The most items one thread's queue holds.
    pub fn queue_capacity(&self) -> usize {
        self.shared.config.max_queue_size.max(1)
    }

    /// Stops the export thread after exporting what the queues hold,
    /// however long the exporter takes.
    pub fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
        self.shared.export_all();
    }

    /// Exports what the queues hold, giving up at `deadline`: the exporter
    /// is told the deadline (it stops retrying then), and this returns by
    /// then even when an export request is still in flight; the export
    /// thread is then left behind. Returns whether everything was handed
    /// over; when not, [`pushed`](Self::pushed) against what the exporter
    /// settled tells how much was not.
    pub fn shutdown_by(&self, deadline: Instant) -> bool {
        T::shutdown(&self.shared.exporter, deadline);
        self.shared.shutdown.store(true, Ordering::Release);
        self.shared.wake();
        let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return true;
        };
        let done = self.shared.done.lock().unwrap_or_else(|e| e.into_inner());
        let (done, _) = self
            .shared
            .done_cv
            .wait_timeout_while(
                done,
                deadline.saturating_duration_since(Instant::now()),
                |d| !*d,
            )
            .unwrap_or_else(|e| e.into_inner());
        let finished = *done;
        drop(done);
        if finished {
            let _ = worker.join();
        }
        finished && self.shared.queued() == 0
    }
}

impl SpanProcessor for BatchProcessor<SpanData> {
    #[inline]
    fn on_end(&self, span: SpanData) {
        self.push(&mut Some(span));
    }

    #[inline]
    fn on_end_in(&self, slot: &mut Option<SpanData>) {
        self.push(slot);
    }

    /// Exports everything the queues hold, on the calling thread.
    fn force_flush(&self) {
        self.shared.export_all();
    }
}

impl LogProcessor for BatchProcessor<LogRecord> {
    fn emit(&self, record: LogRecord) {
        self.push(&mut Some(record));
    }

    fn force_flush(&self) {
        self.shared.export_all();
    }
}

impl<T: Exportable> Drop for BatchProcessor<T> {
    fn drop(&mut self) {
        if self
            .worker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryExporter, KeyValue, Sampler, Tracer, Value};

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

    /// A finished span that owns heap data (made without a clock, so that
    /// the ring's tests also run under Miri).
    fn span_data(name: String) -> SpanData {
        SpanData {
            context: crate::SpanContext::new(
                crate::TraceId::from_u128(1),
                crate::SpanId::from_u64(2),
                crate::TraceFlags::SAMPLED,
                false,
                crate::TraceState::EMPTY,
            ),
            parent_span_id: None,
            name: name.into(),
            kind: crate::SpanKind::Internal,
            start_unix_nanos: 1,
            end_unix_nanos: 2,
            attributes: vec![KeyValue::new("k", "v".to_owned())],
            events: vec![],
            links: vec![],
            status: crate::Status::Unset,
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
    fn a_full_queue_drops_and_counts_per_thread() {
        let mem = Arc::new(InMemoryExporter::new());
        // The export thread sleeps for a minute unless a queue passes half
        // full: what is dropped depends on each thread's queue alone.
        let cfg = BatchConfig {
            max_queue_size: 10,
            max_export_batch_size: 1_000,
            scheduled_delay: Duration::from_secs(60),
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
        // Four spans fit a thread's 10-span queue (no wake: under half).
        run_trace(&tracer, 3);
        assert_eq!(p.stats().dropped, 0);
        // A thread ending 12 spans has a queue of its own: 10 fit even if
        // the exporter (woken at 5) drains none in time, and every span is
        // exported or counted.
        run_trace(&tracer, 11);
        p.shutdown();
        let st = p.stats();
        let got = mem.take().len() as u64;
        assert_eq!(
            got + st.dropped,
            4 + 12,
            "every span is exported or counted"
        );
        assert_eq!(st.exported, 4 + got);
        assert!(st.dropped <= 2, "each thread's queue holds 10: {st:?}");
    }

    #[test]
    fn a_queue_that_is_never_drained_keeps_its_cap_and_counts_the_rest() {
        let mem = Arc::new(InMemoryExporter::new());
        let cfg = BatchConfig {
            max_queue_size: 10,
            max_export_batch_size: 1_000,
            scheduled_delay: Duration::from_secs(60),
        };
        let p = BatchProcessor::new(mem.clone(), cfg);
        // Holding the consumer's lock keeps the export thread from
        // draining: the ring fills to its cap and the rest is dropped.
        let consumer = p.shared.consume.lock().unwrap();
        for _ in 0..25 {
            p.on_end_in(&mut Some(span_data("s".into())));
        }
        assert_eq!(p.stats().dropped, 15);
        drop(consumer);
        p.shutdown();
        assert_eq!(mem.take().len(), 10);
        assert_eq!(
            p.stats(),
            ProcessorStats {
                exported: 10,
                dropped: 15,
                queued: 0,
            }
        );
    }

    /// Spans that own heap data (a built name, attributes, events) come
    /// out of the queue whole: moved once, dropped once.
    #[test]
    fn spans_keep_their_data_through_the_queue() {
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
                s.add_event(format!("event-{i}"), vec![KeyValue::new("k", "v")]);
            }
        }
        tracer.force_flush();
        let spans = mem.take();
        assert_eq!(spans.len(), 601);
        for (i, s) in spans.iter().filter(|s| s.name != "root-7").enumerate() {
            assert_eq!(s.name, format!("child-{i}"));
            assert_eq!(s.attribute("i"), Some(&Value::from(i as i64)));
            assert_eq!(s.events[0].name, format!("event-{i}"));
        }
        assert_eq!(p.stats().dropped, 0);
    }

    /// Spans left in a ring when everything is dropped are freed once
    /// (a leak or a double free shows under the test allocator or Miri).
    #[test]
    fn a_ring_dropped_with_spans_in_it_frees_them() {
        let ring = Ring::new(4);
        let (mut head, mut tail_seen) = (0, 0);
        for i in 0..3 {
            let mut slot = Some(span_data(format!("s{i}")));
            // SAFETY: this test is the ring's one producer.
            assert!(unsafe { ring.push(&mut head, &mut tail_seen, &mut slot) }.is_some());
            assert!(slot.is_none());
        }
        drop(ring);
    }

    /// One producer thread and one consumer pass spans through a small
    /// ring, wrapping it many times: every span arrives once, in order.
    /// (Under Miri this checks the ring's synchronisation and ownership.)
    #[test]
    fn a_ring_passes_spans_between_two_threads_in_order() {
        let total = if cfg!(miri) { 200 } else { 100_000 };
        let ring = Arc::new(Ring::new(8));
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                let (mut head, mut tail_seen) = (0, 0);
                for i in 0..total {
                    let mut slot = Some(span_data(i.to_string()));
                    // SAFETY: this thread is the ring's one producer.
                    while unsafe { ring.push(&mut head, &mut tail_seen, &mut slot) }.is_none() {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < total {
            // SAFETY: this thread is the ring's one consumer.
            if unsafe { ring.drain(3, &mut got) } == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        for (i, s) in got.iter().enumerate() {
            assert_eq!(s.name, i.to_string());
        }
    }

    #[test]
    fn a_half_full_queue_wakes_the_exporter_and_batches_stay_within_the_cap() {
        let rec = Arc::new(Recorder::default());
        let cfg = BatchConfig {
            max_queue_size: 100,
            max_export_batch_size: 8,
            scheduled_delay: Duration::from_secs(60),
        };
        let p = Arc::new(BatchProcessor::new(rec.clone(), cfg));
        let tracer = Tracer::new(Sampler::AlwaysOn, p.clone());
        // 60 spans: the queue passes 50 and the export thread runs long
        // before its minute is up.
        run_trace(&tracer, 59);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while p.stats().exported < 50 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(p.stats().exported >= 50, "{:?}", p.stats());
        p.shutdown();
        let batches = rec.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 60);
        assert!(batches.iter().all(|&n| n <= 8), "{batches:?}");
    }

    #[test]
    fn spans_from_many_threads_all_arrive() {
        let mem = Arc::new(InMemoryExporter::new());
        let cfg = BatchConfig {
            max_queue_size: 64,
            max_export_batch_size: 16,
            scheduled_delay: Duration::from_millis(1),
        };
        let p = Arc::new(BatchProcessor::new(mem.clone(), cfg));
        let tracer = Tracer::new(Sampler::AlwaysOn, p.clone());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let t = tracer.clone();
                std::thread::spawn(move || {
                    for _ in 0..2_000 {
                        let _root = t.start("root").entered();
                        t.start("child");
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        p.shutdown();
        let st = p.stats();
        assert_eq!(st.exported + st.dropped, 4 * 2_000 * 2);
        assert_eq!(mem.take().len() as u64, st.exported);
    }

    #[test]
    fn a_producer_past_half_full_gets_its_queue_drained_without_the_timer() {
        // The export thread's timer is a minute: only the producer's asking
        // drains the queue, though its view of the queue is stale between
        // looks (it reads the consumer's index only when it must).
        let mem = Arc::new(InMemoryExporter::new());
        let cfg = BatchConfig {
            max_queue_size: 64,
            max_export_batch_size: 1_000,
            scheduled_delay: Duration::from_secs(60),
        };
        let p = BatchProcessor::new(mem.clone(), cfg);
        let deadline = Instant::now() + Duration::from_secs(20);
        for i in 0..1_000 {
            p.on_end(span_data(format!("s{i}")));
            // A producer that leaves the export thread time to drain.
            while p.backlog() > 40 {
                assert!(
                    Instant::now() < deadline,
                    "not drained at {i}: {:?}",
                    p.stats()
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        p.shutdown();
        assert_eq!(p.stats().dropped, 0);
        assert_eq!(mem.take().len(), 1_000);
    }

    /// Counts what it exports; the first export waits until opened.
    #[derive(Default)]
    struct Gate {
        open: Mutex<bool>,
        cv: Condvar,
        entered: AtomicBool,
        got: AtomicU64,
    }

    impl SpanExporter for Arc<Gate> {
        fn export(&self, batch: &mut Vec<SpanData>) {
            self.entered.store(true, Ordering::SeqCst);
            let g = self.open.lock().unwrap();
            drop(self.cv.wait_while(g, |open| !*open).unwrap());
            self.got.fetch_add(batch.len() as u64, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_shutdown_asked_for_during_a_drain_still_exports_what_came_after_it() {
        let gate = Arc::new(Gate::default());
        let cfg = BatchConfig {
            max_queue_size: 100,
            max_export_batch_size: 1_000,
            scheduled_delay: Duration::from_secs(60),
        };
        let p = Arc::new(BatchProcessor::new(gate.clone(), cfg));
        // Past half full: the export thread is asked, takes what is queued
        // and waits in the exporter.
        for i in 0..60 {
            p.on_end(span_data(format!("before {i}")));
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !gate.entered.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the export thread was not asked");
            std::thread::sleep(Duration::from_millis(1));
        }
        // Queued after that drain's snapshot, then the shutdown, asked for
        // while the drain is still in the exporter.
        for i in 0..10 {
            p.on_end(span_data(format!("after {i}")));
        }
        let stopping = {
            let p = p.clone();
            std::thread::spawn(move || p.shutdown_by(Instant::now() + Duration::from_secs(20)))
        };
        while !p.shared.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        *gate.open.lock().unwrap() = true;
        gate.cv.notify_all();
        assert!(
            stopping.join().unwrap(),
            "everything was exported by the deadline"
        );
        assert_eq!(gate.got.load(Ordering::SeqCst), 70);
    }

    /// Never returns from an export until released.
    struct Stuck(Mutex<bool>, Condvar);

    impl SpanExporter for Arc<Stuck> {
        fn export(&self, _batch: &mut Vec<SpanData>) {
            let g = self.0.lock().unwrap();
            let _g = self.1.wait_while(g, |released| !*released).unwrap();
        }
    }

    #[test]
    fn shutdown_by_returns_at_the_deadline_with_an_export_in_flight() {
        let stuck = Arc::new(Stuck(Mutex::new(false), Condvar::new()));
        let cfg = BatchConfig {
            max_queue_size: 100,
            max_export_batch_size: 10,
            scheduled_delay: Duration::from_millis(1),
        };
        let p = BatchProcessor::new(stuck.clone(), cfg);
        for _ in 0..30 {
            p.on_end(span_data("s".into()));
        }
        let start = Instant::now();
        let all = p.shutdown_by(start + Duration::from_millis(150));
        let took = start.elapsed();
        assert!(!all, "the exporter never finished");
        assert!(took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(p.pushed(), 30, "every span went into the queue");
        let st = p.stats();
        assert!(st.queued >= 20, "still queued: {st:?}");
        // Release the export thread so that the test leaves nothing behind.
        *stuck.0.lock().unwrap() = true;
        stuck.1.notify_all();
    }

    #[test]
    fn a_producer_can_wait_for_room_instead_of_dropping() {
        let mem = Arc::new(InMemoryExporter::new());
        let cfg = BatchConfig {
            max_queue_size: 64,
            max_export_batch_size: 16,
            scheduled_delay: Duration::from_secs(60),
        };
        let p = BatchProcessor::new(mem.clone(), cfg);
        for i in 0..10_000 {
            if p.backlog() >= 48 {
                assert!(p.wait_for_room(16, Duration::from_secs(5)));
            }
            p.on_end(span_data(format!("s{i}")));
        }
        p.shutdown();
        assert_eq!(p.stats().dropped, 0);
        assert_eq!(mem.take().len(), 10_000);
    }

    #[test]
    fn log_records_take_the_same_path() {
        let out = Arc::new(Mutex::new(Vec::<LogRecord>::new()));
        let p = BatchLogProcessor::new(out.clone(), BatchConfig::default());
        for i in 0..1_000u32 {
            p.emit(LogRecord {
                time_unix_nanos: u64::from(i),
                service: "svc".into(),
                level: None,
                body: format!("line {i}").into(),
                trace_id: None,
                span_id: None,
                attributes: vec![],
            });
        }
        assert!(p.shutdown_by(Instant::now() + Duration::from_secs(5)));
        let got = out.lock().unwrap();
        assert_eq!(got.len(), 1_000);
        assert_eq!(&*got[999].body, "line 999", "in order");
        assert_eq!(
            p.stats(),
            ProcessorStats {
                exported: 1_000,
                dropped: 0,
                queued: 0
            }
        );
    }
}
