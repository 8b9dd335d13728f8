//! The node: read a line, dispatch it inside the sidecar's span, write the
//! reply; flush only when about to wait for input.

use crate::codec::{self, Envelope, ErrorBody, Line};
use crate::config::Config;
use crate::ctx::Pending;
use crate::ctx::{Ctx, Request};
use crate::error::{Error, ErrorCode};
use crate::export::{BatchSettings, ExportQueue, ExportStats, FileSink, HttpSink, Sink};
use crate::input::{Input, Next};
use crate::otlp::{self, TimedLog};
use crate::registry::Registry;
use crate::sidecar;
use serde::{Deserialize, Serialize};
use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, BufReader, Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracer_core::{
    attach, global, LogBridge, LogStore, Sampler, SpanData, SpanKind, SpanProcessor, Status,
    StoreLimits, TraceStore, Tracer,
};

/// Output is written out once this much is pending, even mid-burst.
const OUT_HIGH_WATER: usize = 64 << 10;

/// State every handler shares through its [`Ctx`].
pub(crate) struct Shared {
    pub(crate) node_id: Option<String>,
    pub(crate) node_ids: Vec<String>,
    last_src: Option<String>,
    pub(crate) plugins: HashMap<TypeId, Box<dyn Any + Send>>,
    pub(crate) logs: Arc<Mutex<LogStore>>,
    pub(crate) traces: Arc<Mutex<TraceStore>>,
    pub(crate) tracer: Tracer,
    pub(crate) config: Config,
    pub(crate) span_export: Option<Arc<ExportQueue<SpanData>>>,
    pub(crate) log_export: Option<Arc<ExportQueue<TimedLog>>>,
    /// The last `msg_id` of a message this node started.
    pub(crate) last_msg_id: u64,
    /// RPCs in flight, by their `msg_id`.
    pub(crate) pending: HashMap<u64, Pending>,
    /// Requests from cluster peers already handled, by (src, msg_id).
    seen: Seen,
    out: Vec<u8>,
}

impl Shared {
    /// Serializes one output line into the pending output, all or nothing.
    pub(crate) fn write_line<T: Serialize>(&mut self, value: &T) -> bool {
        let start = self.out.len();
        match serde_json::to_writer(&mut self.out, value) {
            Ok(()) => {
                self.out.push(b'\n');
                true
            }
            Err(e) => {
                self.out.truncate(start);
                eprintln!("tracer-node: could not serialize a reply: {e}");
                false
            }
        }
    }

    pub(crate) fn write_error(
        &mut self,
        src: &str,
        dest: &str,
        in_reply_to: Option<u64>,
        e: &Error,
    ) {
        self.write_line(&Envelope {
            src,
            dest,
            body: ErrorBody {
                kind: "error",
                in_reply_to,
                code: e.code.code(),
                text: &e.text,
            },
        });
    }
}

/// Finished spans go to the node's store and, when export is on, to the
/// export queue too.
struct StoreAndExport {
    store: Arc<Mutex<TraceStore>>,
    export: Option<Arc<ExportQueue<SpanData>>>,
}

impl SpanProcessor for StoreAndExport {
    fn on_end(&self, span: SpanData) {
        if let Some(e) = &self.export {
            e.push(span.clone());
        }
        self.store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(span);
    }
}

fn sink(config: &Config, endpoint: Option<&str>) -> Result<Option<Box<dyn Sink>>, String> {
    let e = &config.export;
    if let Some(path) = &e.file {
        let f = FileSink::open(path)
            .map_err(|err| format!("TRACER_EXPORT_FILE={}: {err}", path.display()))?;
        return Ok(Some(Box::new(f)));
    }
    Ok(endpoint.map(|url| {
        Box::new(HttpSink::new(url, &e.headers, e.batch.export_timeout)) as Box<dyn Sink>
    }))
}

fn batch(config: &Config) -> BatchSettings {
    config.export.batch
}

/// Requests a peer node sent that were handled already: a duplicated
/// message is not handled twice (no duplicate spans). Bounded, oldest first.
#[derive(Default)]
struct Seen {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl Seen {
    const CAP: usize = 65_536;

    /// Whether the request is new; remembers it.
    fn first_time(&mut self, src: &str, msg_id: u64) -> bool {
        let key = (src.to_owned(), msg_id);
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() >= Self::CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(key.clone());
        self.set.insert(key);
        true
    }
}

/// The node runtime.
pub struct Node {
    registry: Registry,
    shared: Shared,
}

#[derive(Deserialize)]
struct Init {
    node_id: String,
    #[serde(default)]
    node_ids: Vec<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "init_ok")]
struct InitOk {}

fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string panic payload")
}

impl Node {
    /// A node serving the given handlers. Fails only when an export file
    /// cannot be opened.
    pub fn new(registry: Registry, config: Config) -> Result<Self, String> {
        let traces = Arc::new(Mutex::new(TraceStore::new(StoreLimits {
            max_traces: config.max_traces,
            max_spans_per_trace: config.max_spans_per_trace,
        })));
        let span_export = match sink(&config, config.export.traces_endpoint.as_deref())? {
            Some(s) if config.export.traces_enabled() => {
                let resource = config.export.resource.clone();
                let service = config.export.service_name.clone();
                Some(Arc::new(ExportQueue::start(
                    "traces",
                    s,
                    Box::new(move |spans: &[SpanData]| {
                        otlp::encode_spans(&resource, &service, spans)
                    }),
                    batch(&config),
                )))
            }
            _ => None,
        };
        let log_export = match sink(&config, config.export.logs_endpoint.as_deref())? {
            Some(s) if config.export.logs_enabled() => {
                let resource = config.export.resource.clone();
                Some(Arc::new(ExportQueue::start(
                    "logs",
                    s,
                    Box::new(move |logs: &[TimedLog]| otlp::encode_logs(&resource, logs)),
                    batch(&config),
                )))
            }
            _ => None,
        };
        let tracer = Tracer::new(
            config.sampler.clone(),
            StoreAndExport {
                store: traces.clone(),
                export: span_export.clone(),
            },
        );
        Ok(Node {
            registry,
            shared: Shared {
                node_id: None,
                node_ids: Vec::new(),
                last_src: None,
                plugins: HashMap::new(),
                logs: Arc::new(Mutex::new(LogStore::new(config.max_logs))),
                traces,
                tracer,
                config,
                span_export,
                log_export,
                last_msg_id: 0,
                pending: HashMap::new(),
                seen: Seen::default(),
                out: Vec::with_capacity(OUT_HIGH_WATER),
            },
        })
    }

    /// Delivers what the exporters hold, until the flush deadline; reports
    /// what was exported and dropped on stderr. Called at end of input.
    pub fn shutdown(&mut self) -> Vec<(&'static str, ExportStats)> {
        let deadline = Instant::now() + self.shared.config.export.flush_timeout;
        let mut out = Vec::new();
        if let Some(e) = self.shared.span_export.take() {
            out.push(("spans", e.shutdown(deadline)));
        }
        if let Some(e) = self.shared.log_export.take() {
            out.push(("logs", e.shutdown(deadline)));
        }
        for (what, st) in &out {
            eprintln!(
                "tracer-node: export of {what}: {} exported, {} dropped, {} retries",
                st.exported, st.dropped, st.retries
            );
        }
        out
    }

    /// Makes this node's tracer the process-wide one (for `#[traced]`) and
    /// bridges the `log` crate into its log store. Call once, in `main`.
    pub fn install_globals(&self) {
        if global::set_tracer(self.shared.tracer.clone()).is_err() {
            eprintln!(
                "tracer-node: a global tracer was already installed; #[traced] spans go there"
            );
        }
        let bridge = LogBridge::new(
            self.shared.logs.clone(),
            "tracer-node",
            log::LevelFilter::Info,
        );
        if bridge.install().is_err() {
            eprintln!("tracer-node: a logger was already installed; log records are not stored");
        }
    }

    /// Serves lines from `input` until it closes, writing replies to
    /// `output`; then waits for the RPCs in flight (until their deadlines)
    /// and delivers what the exporters hold.
    pub fn run<R: Read + Send + 'static, W: Write>(
        &mut self,
        input: R,
        mut output: W,
    ) -> io::Result<()> {
        // Read directly (fastest) until a timer must be waited for together
        // with input; then hand the reader to a thread of its own.
        let mut direct = Some(BufReader::with_capacity(64 << 10, input));
        let mut threaded: Option<Input> = None;
        let mut line = Vec::new();
        loop {
            let deadline = self.next_deadline();
            let max = self.shared.config.max_line;
            if let Some(reader) = direct.as_mut() {
                if deadline.is_some() && reader.buffer().is_empty() {
                    let reader = direct.take().expect("direct reader");
                    threaded = Some(Input::spawn(reader));
                }
            }
            let next = if let Some(reader) = direct.as_mut() {
                // About to wait for input: nothing may sit in a buffer meanwhile.
                if reader.buffer().is_empty() && !self.shared.out.is_empty() {
                    self.flush(&mut output)?;
                }
                match codec::read_line(reader, &mut line, max)? {
                    Line::Complete => Next::Line,
                    Line::TooLong(n) => Next::TooLong(n),
                    Line::Eof => Next::Eof,
                }
            } else {
                let input = threaded.as_mut().expect("threaded reader");
                let out = &mut self.shared.out;
                let next = input.next(max, deadline, || {
                    if !out.is_empty() {
                        output.write_all(out)?;
                        output.flush()?;
                        out.clear();
                    }
                    Ok(())
                })?;
                if next == Next::Line {
                    std::mem::swap(&mut line, &mut input.line);
                }
                next
            };
            match next {
                Next::Eof => break,
                Next::Line => self.handle_line(&line),
                Next::Timeout => {}
                Next::TooLong(n) => {
                    let e = Error::malformed(format!(
                        "line of {n} bytes exceeds the limit of {} bytes (TRACER_MAX_LINE); skipped",
                        self.shared.config.max_line
                    ));
                    self.error_unaddressed(&e);
                }
            }
            self.fire_timers();
            if self.shared.out.len() >= OUT_HIGH_WATER {
                self.flush(&mut output)?;
            }
        }
        // End of input: finish the RPCs in flight (they may still time out
        // and answer their clients), then deliver exports.
        while let Some(d) = self.next_deadline() {
            self.flush(&mut output)?;
            std::thread::sleep(d.saturating_duration_since(Instant::now()));
            self.fire_timers();
        }
        self.flush(&mut output)?;
        self.shutdown();
        Ok(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.shared.pending.values().map(|p| p.deadline).min()
    }

    /// Calls back the RPCs whose deadline passed, with a timeout.
    fn fire_timers(&mut self) {
        if self.shared.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut expired: Vec<u64> = self
            .shared
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        expired.sort_unstable();
        for id in expired {
            if let Some(p) = self.shared.pending.remove(&id) {
                let err = crate::ctx::RpcError::Timeout {
                    dest: p.dest.clone(),
                    after: p.timeout,
                };
                let mut span = p.span;
                span.set_status(Status::Error(Cow::Owned(err.to_string())));
                let client = span.context().clone();
                drop(span);
                self.call_back(p.callback, client, "rpc_timeout", None, Err(err));
            }
        }
    }

    /// Runs an RPC callback with a `Ctx` of its own, whose `incoming()` is
    /// the RPC's (ended) CLIENT span; a panic in it is reported on stderr
    /// (there is no request to answer).
    fn call_back(
        &mut self,
        callback: crate::ctx::RpcCallback,
        client: tracer_core::SpanContext,
        msg_type: &str,
        src: Option<&str>,
        reply: Result<&serde_json::value::RawValue, crate::ctx::RpcError>,
    ) {
        let me = self.own_id();
        let mut ctx = Ctx {
            shared: &mut self.shared,
            req: Request {
                msg_type,
                msg_id: None,
                src,
                dest: Some(&me),
                reply_src: &me,
                reply_dest: src.unwrap_or("client"),
                extra: &[],
                always_reply: false,
            },
            span: None,
            incoming: Some(client),
            replied: true,
        };
        let _current = attach(ctx.incoming.clone().expect("set above"));
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| callback(&mut ctx, reply))) {
            eprintln!(
                "tracer-node: an RPC callback panicked: {}",
                panic_text(&*payload)
            );
        }
    }

    fn flush<W: Write>(&mut self, output: &mut W) -> io::Result<()> {
        output.write_all(&self.shared.out)?;
        output.flush()?;
        self.shared.out.clear();
        Ok(())
    }

    fn own_id(&self) -> Cow<'static, str> {
        match &self.shared.node_id {
            Some(id) => Cow::Owned(id.clone()),
            None => Cow::Borrowed("tracer"),
        }
    }

    fn last_src(&self) -> Cow<'static, str> {
        match &self.shared.last_src {
            Some(s) => Cow::Owned(s.clone()),
            None => Cow::Borrowed("client"),
        }
    }

    /// An error for a line whose addressing could not be read.
    fn error_unaddressed(&mut self, e: &Error) {
        let (src, dest) = (self.own_id(), self.last_src());
        self.shared.write_error(&src, &dest, None, e);
    }

    /// Handles one line. Never panics on client input; a handler's panic is
    /// caught and answered with error 13.
    pub fn handle_line(&mut self, line: &[u8]) {
        let text = match std::str::from_utf8(line) {
            Ok(t) => t,
            Err(e) => {
                let e = Error::malformed(format!(
                    "input is not valid UTF-8 (bad byte at offset {})",
                    e.valid_up_to()
                ));
                return self.error_unaddressed(&e);
            }
        };
        if text.trim().is_empty() {
            return; // blank lines separate nothing and ask nothing
        }
        let msg = match codec::parse_line(text) {
            Ok(m) => m,
            Err(why) => return self.error_unaddressed(&Error::malformed(why)),
        };
        let reply_src = match &msg.dest {
            Some(d) => Cow::Borrowed(&*d.0),
            None => self.own_id(),
        };
        let reply_dest = match &msg.src {
            Some(s) => {
                if self.shared.last_src.as_deref() != Some(&*s.0) {
                    self.shared.last_src = Some(s.0.to_string());
                }
                Cow::Borrowed(&*s.0)
            }
            None => self.last_src(),
        };
        let head = match codec::parse_head(msg.body) {
            Ok(h) => h,
            Err(why) => {
                return self.shared.write_error(
                    &reply_src,
                    &reply_dest,
                    None,
                    &Error::malformed(why),
                )
            }
        };
        let msg_id = match head.msg_id.map(|r| serde_json::from_str::<u64>(r.get())) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                let e = Error::bad_field("msg_id", "must be a non-negative integer");
                return self.shared.write_error(&reply_src, &reply_dest, None, &e);
            }
        };
        let msg_type: Cow<'_, str> = match head
            .msg_type
            .map(|r| serde_json::from_str::<Cow<'_, str>>(r.get()))
        {
            Some(Ok(t)) => t,
            None => {
                let e = Error::malformed("missing field `type`");
                return self.shared.write_error(&reply_src, &reply_dest, msg_id, &e);
            }
            Some(Err(_)) => {
                let e = Error::bad_field("type", "must be a string");
                return self.shared.write_error(&reply_src, &reply_dest, msg_id, &e);
            }
        };
        if msg_type == "init" {
            return self.init(msg.body, msg_id, &reply_src, &reply_dest);
        }
        // A reply to an RPC of ours goes to its callback.
        let in_reply_to = head
            .in_reply_to
            .and_then(|r| serde_json::from_str::<u64>(r.get()).ok());
        if let Some(id) = in_reply_to {
            if let Some(p) = self.shared.pending.remove(&id) {
                let mut span = p.span;
                if msg_type == "error" {
                    span.set_status(Status::Error(Cow::Borrowed(
                        "the peer answered with an error",
                    )));
                }
                let client = span.context().clone();
                drop(span);
                let src = msg.src.as_ref().map(|s| &*s.0);
                return self.call_back(p.callback, client, &msg_type, src, Ok(msg.body));
            }
        }
        // A peer's request is handled once, however often it arrives.
        if let (Some(id), Some(src)) = (msg_id, msg.src.as_ref()) {
            if self.shared.node_ids.iter().any(|n| *n == *src.0)
                && !self.shared.seen.first_time(&src.0, id)
            {
                return;
            }
        }
        let Some(handler) = self.registry.get(&msg_type) else {
            if in_reply_to.is_some() || msg_type == "error" {
                // Never answer a reply: two nodes would bounce errors forever.
                eprintln!("tracer-node: dropped an unexpected {msg_type:?} reply");
                return;
            }
            let e = Error::not_supported(format!("unsupported message type {msg_type:?}"));
            return self.shared.write_error(&reply_src, &reply_dest, msg_id, &e);
        };

        // The sidecar: the message's own context, and its SERVER span.
        let incoming = sidecar::incoming_context(&head).ok();
        let span = (!handler.own_span).then(|| {
            let rate = msg
                .extra
                .iter()
                .find(|(k, _)| k.0 == "sampling_rate")
                .and_then(|(_, v)| serde_json::from_str::<f64>(v.get()).ok());
            let sampler = rate.map(|r| Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(r))));
            let mut b = self
                .shared
                .tracer
                .span_builder(handler.msg_type)
                .kind(SpanKind::Server)
                .parent_or_root(incoming.clone())
                .attribute("rpc.system", "maelstrom")
                .attribute("rpc.method", handler.msg_type);
            if let Some(s) = &sampler {
                b = b.sampler(s);
            }
            let mut span = b.start();
            if span.is_recording() {
                span.set_attribute("service.name", reply_src.to_string());
            }
            span
        });
        let _current = span.as_ref().map(|s| attach(s.context().clone()));
        let mut ctx = Ctx {
            shared: &mut self.shared,
            req: Request {
                msg_type: handler.msg_type,
                msg_id,
                src: msg.src.as_ref().map(|s| &*s.0),
                dest: msg.dest.as_ref().map(|s| &*s.0),
                reply_src: &reply_src,
                reply_dest: &reply_dest,
                extra: &msg.extra,
                always_reply: handler.always_reply,
            },
            span,
            incoming,
            replied: false,
        };
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| (handler.call)(&mut ctx, msg.body)));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(payload) => Some(Error::new(
                ErrorCode::Crash,
                format!(
                    "handler {} panicked: {}",
                    handler.name,
                    panic_text(&*payload)
                ),
            )),
        };
        if let Some(e) = error {
            if let Some(span) = ctx.span.as_mut() {
                span.set_status(Status::Error(Cow::Owned(e.text.clone())));
            }
            if in_reply_to.is_some() {
                // Never answer a reply, not even with an error.
                eprintln!("tracer-node: a {msg_type:?} reply failed: {}", e.text);
            } else if !ctx.replied {
                ctx.replied = true;
                ctx.shared.write_error(&reply_src, &reply_dest, msg_id, &e);
            }
        }
    }

    fn init(
        &mut self,
        body: &serde_json::value::RawValue,
        msg_id: Option<u64>,
        src: &str,
        dest: &str,
    ) {
        match crate::error::decode::<Init>(body) {
            Ok(init) => {
                self.shared.node_id = Some(init.node_id);
                self.shared.node_ids = init.node_ids;
                if msg_id.is_some() {
                    let reply = Envelope {
                        src,
                        dest,
                        body: codec::ReplyBody {
                            body: &InitOk {},
                            in_reply_to: msg_id,
                        },
                    };
                    self.shared.write_line(&reply);
                }
            }
            Err(e) => self.shared.write_error(src, dest, msg_id, &e),
        }
    }
}
