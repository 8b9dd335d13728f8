//! Export to the OpenTelemetry ecosystem, the one pipeline of finished
//! telemetry: tracer-core's batch processor (a lock-free queue per thread,
//! drained by an export thread) feeds an OTLP exporter per signal, which
//! encodes each batch, sends it to a sink (OTLP/HTTP or the export file),
//! retries with exponential backoff (honouring `Retry-After`), and counts
//! whatever it has to drop. The flush deadline bounds the whole exit, a
//! request in flight included.

use super::config::{Config, Error, Protocol, Wire};
use super::encode as otlp;
use crate::{
    BatchConfig, BatchProcessor, LogExporter, LogProcessor, LogRecord, SpanData, SpanExporter,
    SpanProcessor,
};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
    /// Sends one export request body, giving up after `timeout`.
    fn send(&self, body: &[u8], timeout: Duration) -> Sent;
}

/// OTLP/HTTP, through `ureq`: protobuf or JSON bodies, gzipped or not.
pub struct HttpSink {
    agent: ureq::Agent,
    url: String,
    headers: Vec<(String, String)>,
    wire: Wire,
}

impl HttpSink {
    /// A sink posting to `url` with extra headers, bodies encoded and
    /// compressed as `wire` says.
    pub fn new(url: &str, headers: &[(String, String)], wire: Wire) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        HttpSink {
            agent,
            url: url.to_owned(),
            headers: headers.to_vec(),
            wire,
        }
    }
}

fn retry_after(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

impl Sink for HttpSink {
    fn send(&self, body: &[u8], timeout: Duration) -> Sent {
        let content_type = match self.wire.protocol {
            Protocol::Protobuf => "application/x-protobuf",
            Protocol::Json => "application/json",
        };
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", content_type);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let gzipped;
        let body = if self.wire.gzip {
            use std::io::Write as _;
            let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gzipped = match z.write_all(body).and_then(|()| z.finish()) {
                Ok(b) => b,
                Err(e) => return Sent::Fail(format!("gzip: {e}")),
            };
            req = req.header("Content-Encoding", "gzip");
            &gzipped[..]
        } else {
            body
        };
        let req = req.config().timeout_global(Some(timeout)).build();
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
    fn send(&self, body: &[u8], _timeout: Duration) -> Sent {
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        match f
            .write_all(body)
            .and_then(|()| f.write_all(b"\n"))
            .and_then(|()| f.flush())
        {
            Ok(()) => Sent::Ok,
            Err(e) => Sent::Retry {
                after: None,
                why: e.to_string(),
            },
        }
    }
}

/// Counters of one signal's export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportStats {
    /// Items the backend accepted.
    pub exported: u64,
    /// Items dropped: a full queue, refused for good, or still unsent when
    /// the flush deadline passed (queued or in flight).
    pub dropped: u64,
    /// Items waiting in the queue now (a batch being sent is not queued).
    pub queued: u64,
    /// Attempts that failed and were tried again.
    pub retries: u64,
}

/// Encodes a batch into one export request body.
pub type Encoder<T> = Box<dyn Fn(&[T]) -> Vec<u8> + Send + Sync>;

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a producer is held back for one full queue.
const HOLD_BACK_LIMIT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// An OTLP exporter of one signal: encode, send, retry, count. Implements
/// tracer-core's exporter traits, so a batch processor drives it.
pub struct OtlpExporter<T> {
    name: &'static str,
    sink: Box<dyn Sink>,
    encode: Encoder<T>,
    /// One request's time limit (`OTEL_BSP_EXPORT_TIMEOUT`).
    timeout: Duration,
    exported: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
    /// Items of the request being sent now.
    in_flight: AtomicU64,
    /// The shutdown gave up on this exporter: what it drains from now on is
    /// not sent (the shutdown counted it as dropped, or it is counted here).
    abandoned: AtomicBool,
    /// The last attempt failed (the backend is down or refusing): producers
    /// are not held back for it, what does not fit is dropped and counted.
    failing: AtomicBool,
    /// Set at shutdown: no retry, no wait, no request goes past it.
    deadline: Mutex<Option<Instant>>,
    wake: Condvar,
}

impl<T> OtlpExporter<T> {
    /// An exporter sending what `encode` makes to `sink`.
    pub fn new(
        name: &'static str,
        sink: Box<dyn Sink>,
        encode: Encoder<T>,
        timeout: Duration,
    ) -> Self {
        OtlpExporter {
            name,
            sink,
            encode,
            timeout,
            exported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            deadline: Mutex::new(None),
            wake: Condvar::new(),
        }
    }

    fn deadline(&self) -> Option<Instant> {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits `d`, or until the deadline when one is set (or set meanwhile).
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut g = self.deadline.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let end = g.map_or(until, |dl| dl.min(until));
            let now = Instant::now();
            if now >= end {
                return;
            }
            g = self
                .wake
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Counts the batch in flight as exported or dropped, once: whoever
    /// takes `in_flight` to zero first (this, or a shutdown that gave up on
    /// the request) counts it.
    fn settle(&self, counter: &AtomicU64) -> u64 {
        let n = self.in_flight.swap(0, Ordering::SeqCst);
        counter.fetch_add(n, Ordering::Relaxed);
        n
    }

    fn send_batch(&self, batch: &[T]) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        self.in_flight.store(n, Ordering::SeqCst);
        if self.abandoned.load(Ordering::SeqCst) {
            // Drained after the shutdown gave up: counted here or there.
            self.settle(&self.dropped);
            return;
        }
        let body = (self.encode)(batch);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let timeout = match self.deadline() {
                Some(d) => self
                    .timeout
                    .min(d.saturating_duration_since(Instant::now())),
                None => self.timeout,
            };
            if timeout.is_zero() {
                let n = self.settle(&self.dropped);
                eprintln!(
                    "tracer: {} export: the flush deadline passed; {n} dropped",
                    self.name
                );
                return;
            }
            match self.sink.send(&body, timeout) {
                Sent::Ok => {
                    self.settle(&self.exported);
                    self.failing.store(false, Ordering::Relaxed);
                    return;
                }
                Sent::Fail(why) => {
                    self.failing.store(true, Ordering::Relaxed);
                    let n = self.settle(&self.dropped);
                    eprintln!("tracer: {} export refused ({why}); {n} dropped", self.name);
                    return;
                }
                Sent::Retry { after, why } => {
                    self.failing.store(true, Ordering::Relaxed);
                    let wait = after.unwrap_or(backoff).min(MAX_BACKOFF);
                    if self.deadline().is_some_and(|d| Instant::now() + wait >= d) {
                        let n = self.settle(&self.dropped);
                        eprintln!(
                            "tracer: {} export failed at the flush deadline ({why}); {n} dropped",
                            self.name
                        );
                        return;
                    }
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    self.pause(wait);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn set_deadline(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
        self.wake.notify_all();
    }
}

impl SpanExporter for OtlpExporter<SpanData> {
    fn export(&self, batch: &mut Vec<SpanData>) {
        self.send_batch(batch);
    }
    fn shutdown(&self, deadline: Instant) {
        self.set_deadline(deadline);
    }
}

impl LogExporter for OtlpExporter<LogRecord> {
    fn export(&self, batch: &mut Vec<LogRecord>) {
        self.send_batch(batch);
    }
    fn shutdown(&self, deadline: Instant) {
        self.set_deadline(deadline);
    }
}

/// One signal's pipeline: the batch processor and the exporter behind it.
pub struct Signal<T: crate::Exportable> {
    /// The processor spans (or records) are handed to.
    pub processor: Arc<BatchProcessor<T>>,
    exporter: Arc<OtlpExporter<T>>,
}

impl<T: crate::Exportable> Signal<T>
where
    Arc<OtlpExporter<T>>: crate::IntoExporter<T>,
{
    fn start(exporter: OtlpExporter<T>, config: BatchConfig) -> Self {
        let exporter = Arc::new(exporter);
        Signal {
            processor: Arc::new(BatchProcessor::new(exporter.clone(), config)),
            exporter,
        }
    }
}

impl<T: crate::Exportable> Signal<T> {
    /// The counters, summed over the processor and the exporter.
    pub fn stats(&self) -> ExportStats {
        let p = self.processor.stats();
        let e = &self.exporter;
        ExportStats {
            exported: e.exported.load(Ordering::Relaxed),
            dropped: p.dropped + e.dropped.load(Ordering::Relaxed),
            queued: p.queued,
            retries: e.retries.load(Ordering::Relaxed),
        }
    }

    /// Holds the calling thread back while its queue is more than three
    /// quarters full and the backend is healthy, until it is a quarter
    /// full: a node reading its input would rather slow its reader than
    /// drop what it was sent. A failing backend holds nobody back (what
    /// does not fit is dropped and counted), nor does a stuck one for
    /// longer than a second.
    fn hold_back(&self) {
        let cap = self.processor.queue_capacity();
        if self.processor.backlog() > cap - cap / 4
            && !self.exporter.failing.load(Ordering::Relaxed)
        {
            self.processor.wait_for_room(cap / 4, HOLD_BACK_LIMIT);
        }
    }

    /// Delivers what is queued until `deadline`; a request still in flight
    /// then is abandoned and its items counted as dropped.
    fn shutdown(&self, deadline: Instant) -> ExportStats {
        if self.processor.shutdown_by(deadline) {
            return self.stats();
        }
        // The export thread is left behind: from now on it sends nothing.
        // What was not exported by now is dropped (refused, in flight, or
        // still queued), however the threads race: everything that went
        // into a queue, less what was exported, plus what never got in.
        self.exporter.abandoned.store(true, Ordering::SeqCst);
        let exported = self.exporter.exported.load(Ordering::SeqCst);
        let p = self.processor.stats();
        ExportStats {
            exported,
            dropped: p.dropped + self.processor.pushed().saturating_sub(exported),
            queued: 0,
            retries: self.exporter.retries.load(Ordering::Relaxed),
        }
    }
}

/// Both signals' pipelines; each is `None` when its export is off.
#[derive(Default)]
pub struct Pipeline {
    /// Spans.
    pub spans: Option<Signal<SpanData>>,
    /// Log records.
    pub logs: Option<Signal<LogRecord>>,
}

/// A signal's sink and the encoding it takes.
type SinkAndProtocol = (Box<dyn Sink>, Protocol);

/// Where one signal goes, and how its batches are encoded: the export
/// file takes JSON lines; OTLP/HTTP the signal's protocol.
fn sink(
    config: &Config,
    endpoint: Option<&str>,
    wire: Wire,
) -> Result<Option<SinkAndProtocol>, Error> {
    let e = config;
    if let Some(path) = &e.file {
        let f = FileSink::open(path)
            .map_err(|err| Error(format!("TRACER_EXPORT_FILE={}: {err}", path.display())))?;
        return Ok(Some((Box::new(f), Protocol::Json)));
    }
    Ok(endpoint.map(|url| {
        let s: Box<dyn Sink> = Box::new(HttpSink::new(url, &e.headers, wire));
        (s, wire.protocol)
    }))
}

impl Pipeline {
    /// The pipelines the configuration asks for. Fails only when an export
    /// file cannot be opened.
    pub fn from_config(config: &Config) -> Result<Pipeline, Error> {
        let e = config;
        let batch = BatchConfig {
            max_queue_size: e.batch.max_queue_size,
            max_export_batch_size: e.batch.max_export_batch_size,
            scheduled_delay: e.batch.schedule_delay,
        };
        let mut p = Pipeline::default();
        if e.traces_enabled() {
            if let Some((s, protocol)) = sink(config, e.traces_endpoint.as_deref(), e.traces_wire)?
            {
                let (resource, service) = (e.resource.clone(), e.service_name.clone());
                let encode: Encoder<SpanData> = match protocol {
                    Protocol::Json => Box::new(move |spans| {
                        otlp::encode_spans(&resource, &service, spans).into_bytes()
                    }),
                    Protocol::Protobuf => {
                        Box::new(move |spans| otlp::encode_spans_proto(&resource, &service, spans))
                    }
                };
                let exporter = OtlpExporter::new("traces", s, encode, e.batch.export_timeout);
                p.spans = Some(Signal::start(exporter, batch));
            }
        }
        if e.logs_enabled() {
            if let Some((s, protocol)) = sink(config, e.logs_endpoint.as_deref(), e.logs_wire)? {
                let resource = e.resource.clone();
                let encode: Encoder<LogRecord> = match protocol {
                    Protocol::Json => {
                        Box::new(move |logs| otlp::encode_logs(&resource, logs).into_bytes())
                    }
                    Protocol::Protobuf => {
                        Box::new(move |logs| otlp::encode_logs_proto(&resource, logs))
                    }
                };
                let exporter = OtlpExporter::new("logs", s, encode, e.batch.export_timeout);
                p.logs = Some(Signal::start(exporter, batch));
            }
        }
        Ok(p)
    }

    /// The span processor of the export, when it is on.
    pub fn span_processor(&self) -> Option<Arc<BatchProcessor<SpanData>>> {
        self.spans.as_ref().map(|s| s.processor.clone())
    }

    /// Hands a span taken in from elsewhere (a collector's intake) to the
    /// export; spans made with the node's tracer reach it as they end.
    pub fn export_span(&self, span: SpanData) {
        if let Some(s) = &self.spans {
            s.processor.on_end(span);
        }
    }

    /// Hands a log record to the export.
    pub fn export_log(&self, record: LogRecord) {
        if let Some(l) = &self.logs {
            l.processor.emit(record);
        }
    }

    /// Holds the calling thread back while an export queue is nearly full
    /// and its backend healthy (see [`Signal`]'s policy): called by the
    /// node between input lines.
    pub fn hold_back(&self) {
        if let Some(s) = &self.spans {
            s.hold_back();
        }
        if let Some(l) = &self.logs {
            l.hold_back();
        }
    }

    /// Delivers what both signals hold, until `deadline` (shared: the
    /// deadline bounds the whole exit), and reports each signal's counters.
    pub fn shutdown(&self, deadline: Instant) -> Vec<(&'static str, ExportStats)> {
        let mut out = Vec::new();
        if let Some(s) = &self.spans {
            out.push(("spans", s.shutdown(deadline)));
        }
        if let Some(l) = &self.logs {
            out.push(("logs", l.shutdown(deadline)));
        }
        out
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
        fn send(&self, body: &[u8], _timeout: Duration) -> Sent {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Sent::Retry {
                    after: Some(Duration::from_millis(1)),
                    why: "down".into(),
                };
            }
            self.bodies
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(body).into_owned());
            Sent::Ok
        }
    }

    fn record(i: u32) -> LogRecord {
        LogRecord {
            time_unix_nanos: u64::from(i),
            service: "svc".into(),
            level: None,
            body: i.to_string().into(),
            trace_id: None,
            span_id: None,
            attributes: vec![],
        }
    }

    /// A log pipeline over a sink that refuses its first `fail_first`
    /// bodies; each body lists the batch's record numbers.
    fn flaky_logs(
        fail_first: usize,
        queue: usize,
        batch: usize,
    ) -> (Arc<Flaky>, Signal<LogRecord>) {
        let sink = Arc::new(Flaky {
            fail_first,
            calls: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
        });
        let encode: Encoder<LogRecord> = Box::new(|b: &[LogRecord]| {
            b.iter()
                .map(|r| &*r.body)
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()
        });
        let exporter = OtlpExporter::new(
            "test",
            Box::new(sink.clone()),
            encode,
            Duration::from_secs(1),
        );
        let config = BatchConfig {
            max_queue_size: queue,
            max_export_batch_size: batch,
            scheduled_delay: Duration::from_millis(10),
        };
        (sink, Signal::start(exporter, config))
    }

    #[test]
    fn retries_until_the_sink_accepts_and_batches_by_size() {
        let (sink, logs) = flaky_logs(3, 100, 4);
        for i in 0..10 {
            logs.processor.emit(record(i));
        }
        let st = logs.shutdown(Instant::now() + Duration::from_secs(5));
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
    fn a_dead_sink_drops_everything_at_the_deadline_and_counts_it() {
        let (_sink, logs) = flaky_logs(usize::MAX, 1_000, 2);
        for i in 0..50 {
            logs.processor.emit(record(i));
        }
        let start = Instant::now();
        let st = logs.shutdown(Instant::now() + Duration::from_millis(200));
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "gave up at the deadline: {:?}",
            start.elapsed()
        );
        assert_eq!(st.exported, 0);
        assert_eq!(st.dropped, 50, "every item is counted: {st:?}");
        assert_eq!(st.queued, 0);
    }
}
