//! Export to the OpenTelemetry ecosystem: a bounded queue per signal, a
//! worker thread that sends batches by size and by time, retries with
//! exponential backoff, and counts whatever it has to drop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Batching and queueing, as the `OTEL_BSP_*` variables set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// `OTEL_BSP_MAX_QUEUE_SIZE`: items waiting, at most; the oldest goes.
    pub max_queue_size: usize,
    /// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`: items per request, at most.
    pub max_export_batch_size: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY`: a partial batch waits this long.
    pub schedule_delay: Duration,
    /// `OTEL_BSP_EXPORT_TIMEOUT`: one request's time limit.
    pub export_timeout: Duration,
}

impl Default for BatchSettings {
    fn default() -> Self {
        // The OpenTelemetry defaults.
        BatchSettings {
            max_queue_size: 2048,
            max_export_batch_size: 512,
            schedule_delay: Duration::from_millis(5000),
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

/// What one attempt to send came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Accepted.
    Ok,
    /// Worth trying again (connection refused, 429, 5xx), after the server's
    /// `Retry-After` when it gave one.
    Retry {
        /// The server's wish, if any.
        after: Option<Duration>,
        /// For the record.
        why: String,
    },
    /// Refused for good (another 4xx): the batch is dropped and counted.
    Fail(String),
}

/// Where encoded export requests go.
pub trait Sink: Send + Sync {
    /// Sends one export request body.
    fn send(&self, body: &str) -> Sent;
}

/// OTLP/HTTP with JSON bodies, through `ureq`.
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
}

impl HttpSink {
    /// A sink posting to `url` with extra headers.
    pub fn new(url: &str, headers: &[(String, String)], timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        HttpSink {
            agent,
            url: url.to_owned(),
            headers: headers.to_vec(),
        }
    }
}

fn retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl Sink for HttpSink {
    fn send(&self, body: &str) -> Sent {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        match req.send(body) {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let after = retry_after(
                    resp.headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()),
                );
                match status {
                    200..=299 => Sent::Ok,
                    429 | 500..=599 => Sent::Retry {
                        after,
                        why: format!("HTTP {status}"),
                    },
                    _ => Sent::Fail(format!("HTTP {status}")),
                }
            }
            Err(e) => Sent::Retry {
                after: None,
                why: e.to_string(),
            },
        }
    }
}

/// The same OTLP JSON, one export request per line, for offline use.
pub struct FileSink {
    file: Mutex<BufWriter<File>>,
}

impl FileSink {
    /// Appends to `path`, creating it.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(FileSink {
            file: Mutex::new(BufWriter::new(file)),
        })
    }
}

impl Sink for FileSink {
    fn send(&self, body: &str) -> Sent {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        match writeln!(f, "{body}").and_then(|()| f.flush()) {
            Ok(()) => Sent::Ok,
            Err(e) => Sent::Retry {
                after: None,
                why: e.to_string(),
            },
        }
    }
}

/// Counters of one export queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportStats {
    /// Items the backend accepted.
    pub exported: u64,
    /// Items dropped: evicted from a full queue, refused for good, or still
    /// unsent when the flush deadline passed.
    pub dropped: u64,
    /// Items waiting now.
    pub queued: u64,
    /// Attempts that failed and were tried again.
    pub retries: u64,
}

/// Encodes a batch into one export request body.
pub type Encoder<T> = Box<dyn Fn(&[T]) -> String + Send + Sync>;

struct Inner<T> {
    name: &'static str,
    items: Mutex<VecDeque<T>>,
    wake: Condvar,
    settings: BatchSettings,
    sink: Box<dyn Sink>,
    encode: Encoder<T>,
    exported: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    shutdown: AtomicBool,
    deadline: Mutex<Option<Instant>>,
}

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<T: Send + 'static> Inner<T> {
    fn past_deadline(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
            && self
                .deadline
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|d| Instant::now() >= d)
    }

    /// Waits up to `d`, waking early at shutdown.
    fn pause(&self, d: Duration) {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .wake
            .wait_timeout_while(items, d, |_| !self.shutdown.load(Ordering::Acquire));
    }

    fn send_batch(&self, batch: Vec<T>) {
        let n = batch.len() as u64;
        let body = (self.encode)(&batch);
        drop(batch);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            match self.sink.send(&body) {
                Sent::Ok => {
                    self.exported.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Sent::Fail(why) => {
                    eprintln!(
                        "tracer-node: {} export refused ({why}); {n} dropped",
                        self.name
                    );
                    self.dropped.fetch_add(n, Ordering::Relaxed);
                    return;
                }
                Sent::Retry { after, why } => {
                    if self.past_deadline() {
                        eprintln!(
                            "tracer-node: {} export failed at the flush deadline ({why}); {n} dropped",
                            self.name
                        );
                        self.dropped.fetch_add(n, Ordering::Relaxed);
                        return;
                    }
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = after.unwrap_or(backoff).min(MAX_BACKOFF);
                    if self.shutdown.load(Ordering::Acquire) {
                        // Flushing: retry until the deadline, no longer.
                        let left = self
                            .deadline
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .map_or(Duration::ZERO, |d| {
                                d.saturating_duration_since(Instant::now())
                            });
                        std::thread::sleep(wait.min(left));
                    } else {
                        self.pause(wait);
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn run(&self) {
        loop {
            let batch: Vec<T> = {
                let items = self.items.lock().unwrap_or_else(|e| e.into_inner());
                let (mut items, _) = self
                    .wake
                    .wait_timeout_while(items, self.settings.schedule_delay, |q| {
                        q.len() < self.settings.max_export_batch_size
                            && !self.shutdown.load(Ordering::Acquire)
                    })
                    .unwrap_or_else(|e| e.into_inner());
                let n = items.len().min(self.settings.max_export_batch_size);
                items.drain(..n).collect()
            };
            let done = self.shutdown.load(Ordering::Acquire);
            if !batch.is_empty() {
                self.send_batch(batch);
            }
            if done
                && self
                    .items
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_empty()
            {
                return;
            }
        }
    }
}

/// A bounded export queue with its worker thread.
pub struct ExportQueue<T: Send + 'static> {
    inner: Arc<Inner<T>>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Send + 'static> ExportQueue<T> {
    /// Starts the worker.
    pub fn start(
        name: &'static str,
        sink: Box<dyn Sink>,
        encode: Encoder<T>,
        settings: BatchSettings,
    ) -> Self {
        let inner = Arc::new(Inner {
            name,
            items: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            settings,
            sink,
            encode,
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            deadline: Mutex::new(None),
        });
        let worker = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name(format!("tracer-export-{name}"))
                .spawn(move || inner.run())
                .expect("spawn the export thread")
        };
        ExportQueue {
            inner,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Queues an item; when the queue is full the oldest item goes, counted.
    pub fn push(&self, item: T) {
        let s = &self.inner.settings;
        let mut q = self.inner.items.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() >= s.max_queue_size {
            q.pop_front();
            self.inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back(item);
        let full = q.len() == s.max_export_batch_size;
        drop(q);
        if full {
            self.inner.wake.notify_one();
        }
    }

    /// The counters.
    pub fn stats(&self) -> ExportStats {
        ExportStats {
            exported: self.inner.exported.load(Ordering::Relaxed),
            dropped: self.inner.dropped.load(Ordering::Relaxed),
            queued: self
                .inner
                .items
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .len() as u64,
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Sends everything queued, giving up at `deadline`; what is left then
    /// is dropped and counted.
    pub fn shutdown(&self, deadline: Instant) -> ExportStats {
        *self
            .inner
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.inner.shutdown.store(true, Ordering::Release);
        self.inner.wake.notify_all();
        if let Some(w) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = w.join();
        }
        let left = std::mem::take(&mut *self.inner.items.lock().unwrap_or_else(|e| e.into_inner()));
        self.inner
            .dropped
            .fetch_add(left.len() as u64, Ordering::Relaxed);
        self.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Flaky {
        fail_first: usize,
        calls: AtomicUsize,
        bodies: Mutex<Vec<String>>,
    }

    impl Sink for Arc<Flaky> {
        fn send(&self, body: &str) -> Sent {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Sent::Retry {
                    after: Some(Duration::from_millis(1)),
                    why: "down".into(),
                };
            }
            self.bodies.lock().unwrap().push(body.to_owned());
            Sent::Ok
        }
    }

    fn settings(queue: usize, batch: usize) -> BatchSettings {
        BatchSettings {
            max_queue_size: queue,
            max_export_batch_size: batch,
            schedule_delay: Duration::from_millis(10),
            export_timeout: Duration::from_secs(1),
        }
    }

    /// A queue of numbers over a sink that refuses its first `fail_first`
    /// bodies.
    fn flaky_queue(fail_first: usize, settings: BatchSettings) -> (Arc<Flaky>, ExportQueue<u32>) {
        let sink = Arc::new(Flaky {
            fail_first,
            calls: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let q = ExportQueue::start(
            "test",
            Box::new(sink.clone()),
            Box::new(|b: &[u32]| format!("{b:?}")),
            settings,
        );
        (sink, q)
    }

    #[test]
    fn retries_until_the_sink_accepts_and_batches_by_size() {
        let (sink, q) = flaky_queue(3, settings(100, 4));
        for i in 0..10 {
            q.push(i);
        }
        let st = q.shutdown(Instant::now() + Duration::from_secs(5));
        assert_eq!(st.exported, 10);
        assert_eq!(st.dropped, 0);
        assert_eq!(st.retries, 3);
        let bodies = sink.bodies.lock().unwrap();
        assert!(
            bodies.iter().all(|b| b.matches(',').count() < 4),
            "batches of at most 4: {bodies:?}"
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_a_dead_sink_drops_at_the_deadline() {
        let (_sink, q) = flaky_queue(usize::MAX, settings(5, 2));
        for i in 0..50 {
            q.push(i);
        }
        let start = Instant::now();
        let st = q.shutdown(Instant::now() + Duration::from_millis(200));
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "gave up near the deadline"
        );
        assert_eq!(st.exported, 0);
        assert_eq!(st.dropped, 50, "every item is counted: {st:?}");
        assert_eq!(st.queued, 0);
    }
}
