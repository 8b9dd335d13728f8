//! What a handler sees: the request, the node's shared state, its own
//! plugin state, the sidecar's span, and the calls it leaves behind (RPCs
//! waiting for replies, timers).

use crate::codec::{Body, CowStr, Envelope, SentBody};
use crate::config::Config;
use crate::error::Error;
use crate::sidecar;
use crate::state::State;
use crate::stores::{LogEntry, LogStore, TraceStore};
use crate::timers::{TimerId, Timers, TimersFull};
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};
use tracer_core::otlp::ExportStats;
use tracer_core::{now_unix_nanos, Span, SpanContext, SpanData, SpanId, Tracer};

/// The request being handled.
pub(crate) struct Request<'a> {
    pub(crate) msg_type: &'a str,
    pub(crate) msg_id: Option<u64>,
    pub(crate) src: Option<&'a str>,
    pub(crate) dest: Option<&'a str>,
    pub(crate) reply_src: &'a str,
    pub(crate) reply_dest: &'a str,
    pub(crate) extra: &'a [(CowStr<'a>, &'a RawValue)],
    pub(crate) always_reply: bool,
}

/// RPCs in flight at once, at most.
pub const MAX_PENDING_RPCS: usize = 65_536;

/// Timers pending at once, at most (RPC deadlines included).
pub const MAX_TIMERS: usize = 2 * MAX_PENDING_RPCS;

/// A callback waiting for an RPC reply.
pub(crate) type RpcCallback = Box<dyn FnOnce(&mut Ctx<'_>, Result<&Body<'_>, RpcError>) + Send>;

/// A callback waiting for its timer.
pub(crate) type TimerCallback = Box<dyn FnOnce(&mut Ctx<'_>) + Send>;

/// An RPC in flight.
pub(crate) struct Pending {
    pub(crate) timer: TimerId,
    pub(crate) sent: Instant,
    pub(crate) dest: String,
    pub(crate) span: Span,
    pub(crate) callback: RpcCallback,
}

/// What a timer is for.
pub(crate) enum Due {
    /// An RPC's deadline, by its `msg_id`.
    Rpc(u64),
    /// A plugin's callback.
    Call(TimerCallback),
}

/// The calls handlers leave behind: RPCs waiting for a reply, and timers
/// (an RPC's deadline is one of them).
pub(crate) struct Calls {
    pub(crate) timers: Timers<Due>,
    pub(crate) rpcs: HashMap<u64, Pending>,
    /// Input has ended: no reply can come, so new RPCs fail at once.
    pub(crate) closed: bool,
}

impl Calls {
    pub(crate) fn new() -> Self {
        Calls {
            timers: Timers::new(MAX_TIMERS),
            rpcs: HashMap::new(),
            closed: false,
        }
    }
}

/// Counters of the runtime's own bookkeeping, for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeStats {
    /// Timers pending (RPC deadlines included).
    pub timers_pending: usize,
    /// Timers refused because [`MAX_TIMERS`] were pending.
    pub timers_refused: u64,
    /// RPCs waiting for a reply.
    pub rpcs_pending: usize,
}

/// A handler's view of one message and of the node.
pub struct Ctx<'a> {
    pub(crate) state: &'a mut State,
    pub(crate) calls: &'a mut Calls,
    pub(crate) req: Request<'a>,
    pub(crate) span: Option<Span>,
    pub(crate) incoming: Option<SpanContext>,
    pub(crate) replied: bool,
}

impl<'a> Ctx<'a> {
    /// The message type.
    pub fn msg_type(&self) -> &str {
        self.req.msg_type
    }

    /// The request's `msg_id`.
    pub fn msg_id(&self) -> Option<u64> {
        self.req.msg_id
    }

    /// The envelope's `src` (`None` for a bare body).
    pub fn src(&self) -> Option<&str> {
        self.req.src
    }

    /// The envelope's `dest` (`None` for a bare body).
    pub fn dest(&self) -> Option<&str> {
        self.req.dest
    }

    /// Who this node answers as: the request's `dest`, else the node id.
    pub fn me(&self) -> &str {
        self.req.reply_src
    }

    /// The node's id from `init`, if it had one.
    pub fn node_id(&self) -> Option<&str> {
        self.state.node_id.as_deref()
    }

    /// The cluster's node ids from `init`.
    pub fn node_ids(&self) -> &[String] {
        &self.state.node_ids
    }

    /// Whether `name` is another node of the cluster.
    pub fn is_peer(&self, name: &str) -> bool {
        self.state.is_peer(name)
    }

    /// An envelope member other than `src`, `dest` and `body` (the course
    /// sends `sampling_rate` there), as raw JSON.
    pub fn envelope(&self, name: &str) -> Option<&RawValue> {
        self.req
            .extra
            .iter()
            .find(|(k, _)| k.0 == name)
            .map(|(_, v)| *v)
    }

    /// The envelope's `sampling_rate`, checked (a number from 0 to 1).
    pub fn sampling_rate(&self) -> Result<Option<f64>, Error> {
        sidecar::sampling_rate(self.envelope("sampling_rate"))
    }

    /// The node's settings.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// This plugin's state, made with `Default` on first use.
    pub fn state<T: Any + Send + Default>(&mut self) -> &mut T {
        self.state
            .plugins
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("plugin state is keyed by its own TypeId")
    }

    /// The node's log store.
    pub fn logs(&self) -> MutexGuard<'_, LogStore> {
        self.state.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a log entry, and hands it to the export when export is on.
    pub fn push_log(&mut self, entry: LogEntry) {
        self.push_log_in(entry, None);
    }

    /// Stores a log entry written in a span; the export carries that span's
    /// id even where the stored entry names none.
    pub fn push_log_in(&mut self, entry: LogEntry, span: Option<SpanId>) {
        if self.state.pipeline.logs.is_some() {
            let record = entry.to_record(now_unix_nanos(), span);
            self.state.pipeline.export_log(record);
        }
        self.logs().push(entry);
    }

    /// Whether finished spans leave the node (OTLP or file export).
    pub fn exports_spans(&self) -> bool {
        self.state.pipeline.spans.is_some()
    }

    /// Hands a span the node took in from elsewhere (a collector's intake)
    /// to the export; spans made with the node's tracer reach it as they
    /// end.
    pub fn export_span(&self, span: SpanData) {
        self.state.pipeline.export_span(span);
    }

    /// Counters of the span and log export, when export is on.
    pub fn export_stats(&self) -> (Option<ExportStats>, Option<ExportStats>) {
        let p = &self.state.pipeline;
        (
            p.spans.as_ref().map(|s| s.stats()),
            p.logs.as_ref().map(|s| s.stats()),
        )
    }

    /// Counters of the runtime's timers and RPCs.
    pub fn runtime_stats(&self) -> RuntimeStats {
        RuntimeStats {
            timers_pending: self.calls.timers.len(),
            timers_refused: self.calls.timers.refused,
            rpcs_pending: self.calls.rpcs.len(),
        }
    }

    /// Counts `n` things dropped or refused at `what` (a `"place.reason"`
    /// name, such as `"collector.traces_forgotten"`): every place that lets
    /// something go says so, and `stats` shows it under `drops`.
    pub fn count_drop(&mut self, what: &'static str, n: u64) {
        self.state.count_drop(what, n);
    }

    /// What was dropped or refused so far, by place and reason.
    pub fn drops(&self) -> &std::collections::BTreeMap<&'static str, u64> {
        &self.state.drops
    }

    /// The node's trace store: user data only (see the sidecar's rule).
    pub fn traces(&self) -> MutexGuard<'_, TraceStore> {
        self.state.traces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's tracer.
    pub fn tracer(&self) -> &Tracer {
        &self.state.tracer
    }

    /// Opens a CLIENT span named `name` for a call to `dest` (outside the
    /// cluster: an HTTP call a sidecar forwards, say), child of the current
    /// span, with the W3C headers that carry its context downstream. The
    /// sidecar's own sends make theirs in [`send`](Self::send).
    pub fn client_span(&self, name: &'static str, dest: &str) -> (Span, sidecar::Injected) {
        sidecar::client_span(&self.state.tracer, name, self.req.reply_src, dest)
    }

    /// Opens the SERVER span of a request this handler serves for a user
    /// (an `own_span` handler's, like `proxy_request`'s HTTP request), the
    /// way the sidecar opens a message's: `parent` from the request's own
    /// headers, where `None` starts a user trace (never the node's own
    /// telemetry), sampled at the message's `sampling_rate` when it gives
    /// one (error 12 naming the field when that is bad).
    pub fn server_span(
        &self,
        name: &'static str,
        parent: Option<SpanContext>,
    ) -> Result<Span, Error> {
        Ok(sidecar::server_span(
            &self.state.tracer,
            sidecar::Server {
                name,
                service: self.req.reply_src,
                parent,
                own_root: false,
                rate: self.sampling_rate()?,
                telemetry_exported: self.state.pipeline.spans.is_some(),
            },
        ))
    }

    /// The SERVER span the sidecar opened for this message (`None` for
    /// handlers registered with `own_span`).
    pub fn span(&mut self) -> Option<&mut Span> {
        self.span.as_mut()
    }

    /// The valid trace context the message arrived with, if any.
    pub fn incoming(&self) -> Option<&SpanContext> {
        self.incoming.as_ref()
    }

    /// Sends the reply: once, and only when the request had a `msg_id` or
    /// the handler always replies. `body` serializes to a JSON object with
    /// its `type`; `in_reply_to` is added here.
    pub fn reply<T: Serialize + ?Sized>(&mut self, body: &T) {
        if self.req.msg_id.is_some() || self.req.always_reply {
            self.answer(body);
        }
    }

    /// Sends the reply even when the request had no `msg_id` (a message
    /// type that is answered only in some cases, like a dropped span).
    pub fn answer<T: Serialize + ?Sized>(&mut self, body: &T) {
        if self.replied {
            return;
        }
        self.replied = true;
        self.state.write_reply(
            self.req.reply_src,
            self.req.reply_dest,
            body,
            self.req.msg_id,
        );
    }

    /// Writes a request to a cluster peer with the node's next `msg_id`,
    /// inside a new CLIENT span (child of the current span) whose context
    /// the sidecar injects; returns both, the span unended.
    fn start_request<T: Serialize + ?Sized>(&mut self, dest: &str, body: &T) -> (u64, Span) {
        self.state.last_msg_id += 1;
        let msg_id = self.state.last_msg_id;
        let (span, injected) =
            sidecar::client_span(&self.state.tracer, "send", self.req.reply_src, dest);
        let env = Envelope {
            src: self.req.reply_src,
            dest,
            body: SentBody {
                body,
                msg_id,
                injected,
            },
        };
        self.state.write_line(&env);
        (msg_id, span)
    }

    /// Sends a message this node starts. To a cluster peer it carries the
    /// node's next `msg_id` (returned) and the context of a CLIENT span the
    /// sidecar records: handlers write no tracing code. To anyone else (a
    /// client) it is a notice with exactly the body's fields.
    pub fn send<T: Serialize + ?Sized>(&mut self, dest: &str, body: &T) -> Option<u64> {
        if self.state.is_peer(dest) {
            return Some(self.start_request(dest, body).0);
        }
        let env = Envelope {
            src: self.req.reply_src,
            dest,
            body,
        };
        self.state.write_line(&env);
        None
    }

    /// Sends a request to another node and calls `callback` with its reply
    /// body, or with an [`RpcError`] when none came within `timeout` (or
    /// none can come: input ended). The CLIENT span lasts until then
    /// (status ERROR on a timeout). The callback runs on the node's thread
    /// between two messages, with a `Ctx` of its own whose `incoming()` is
    /// that CLIENT span; to answer the request that started it, capture a
    /// [`ReplyTo`] from [`Ctx::defer`].
    pub fn rpc<T, F>(&mut self, dest: &str, body: &T, timeout: Duration, callback: F) -> u64
    where
        T: Serialize + ?Sized,
        F: FnOnce(&mut Ctx<'_>, Result<&Body<'_>, RpcError>) + Send + 'static,
    {
        if self.calls.closed {
            callback(
                self,
                Err(RpcError::Timeout {
                    dest: dest.to_owned(),
                    after: Duration::ZERO,
                }),
            );
            return 0;
        }
        if self.calls.rpcs.len() >= MAX_PENDING_RPCS {
            // Bounded like every store: refuse rather than grow.
            self.count_drop("runtime.rpcs_refused", 1);
            let err = RpcError::Overloaded {
                dest: dest.to_owned(),
                in_flight: self.calls.rpcs.len(),
            };
            callback(self, Err(err));
            return 0;
        }
        let sent = Instant::now();
        let (msg_id, span) = self.start_request(dest, body);
        let timer = match self.calls.timers.schedule(sent + timeout, Due::Rpc(msg_id)) {
            Ok(t) => t,
            Err(full) => {
                drop(span);
                self.count_drop("runtime.rpcs_refused", 1);
                let err = RpcError::Overloaded {
                    dest: dest.to_owned(),
                    in_flight: full.cap,
                };
                callback(self, Err(err));
                return 0;
            }
        };
        self.calls.rpcs.insert(
            msg_id,
            Pending {
                timer,
                sent,
                dest: dest.to_owned(),
                span,
                callback: Box::new(callback),
            },
        );
        msg_id
    }

    /// Calls `callback` after `delay`, on the node's thread between two
    /// messages (while it waits for input too), with a `Ctx` of its own.
    /// Refused past [`MAX_TIMERS`] pending (counted in `stats`). At end of
    /// input, timers due within the flush timeout still fire.
    pub fn after<F>(&mut self, delay: Duration, callback: F) -> Result<TimerId, TimersFull>
    where
        F: FnOnce(&mut Ctx<'_>) + Send + 'static,
    {
        self.calls
            .timers
            .schedule(Instant::now() + delay, Due::Call(Box::new(callback)))
    }

    /// Cancels a timer; whether it was still pending.
    pub fn cancel(&mut self, timer: TimerId) -> bool {
        // Only `after` hands out timer ids: an RPC's deadline is not
        // reachable from here.
        self.calls.timers.cancel(timer).is_some()
    }

    /// Takes over the reply: the handler's return value is not sent, and
    /// the returned token answers the request later (from an RPC callback).
    pub fn defer(&mut self) -> ReplyTo {
        self.replied = true;
        ReplyTo {
            src: self.req.reply_src.to_owned(),
            dest: self.req.reply_dest.to_owned(),
            in_reply_to: self.req.msg_id,
            always: self.req.always_reply,
        }
    }

    /// Answers a deferred request (once per token's request).
    pub fn reply_to<T: Serialize + ?Sized>(&mut self, to: &ReplyTo, body: &T) {
        if to.in_reply_to.is_none() && !to.always {
            return;
        }
        self.state
            .write_reply(&to.src, &to.dest, body, to.in_reply_to);
    }

    /// Answers a deferred request with an error.
    pub fn error_to(&mut self, to: &ReplyTo, e: &Error) {
        self.state.write_error(&to.src, &to.dest, to.in_reply_to, e);
    }
}

/// Where a deferred reply goes. Made by [`Ctx::defer`].
#[derive(Clone, Debug)]
pub struct ReplyTo {
    src: String,
    dest: String,
    in_reply_to: Option<u64>,
    always: bool,
}

/// Why an RPC came back without a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// No reply within the timeout, or none can come (input ended).
    Timeout {
        /// The node that did not answer.
        dest: String,
        /// How long it was waited for.
        after: Duration,
    },
    /// Not sent: [`MAX_PENDING_RPCS`] were in flight already (or the
    /// timers were full).
    Overloaded {
        /// The node it was for.
        dest: String,
        /// RPCs in flight.
        in_flight: usize,
    },
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Timeout { dest, after } => {
                write!(f, "no reply from {dest} within {} ms", after.as_millis())
            }
            RpcError::Overloaded { dest, in_flight } => {
                write!(
                    f,
                    "not sent to {dest}: {in_flight} requests already in flight"
                )
            }
        }
    }
}

impl std::error::Error for RpcError {}

/// The return value of a handler that answers later: it must have called
/// [`Ctx::defer`], which is what stops the runtime from replying now.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Deferred {}
