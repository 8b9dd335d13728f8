//! What a handler sees: the request, the node's shared state, its own
//! plugin state, and the sidecar's span.

use crate::codec::{CowStr, Envelope, ReplyBody, SentBody};
use crate::config::Config;
use crate::error::Error;
use crate::export::ExportStats;
use crate::node::Shared;
use crate::otlp::TimedLog;
use serde::Serialize;
use serde_json::value::RawValue;
use std::any::{Any, TypeId};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};
use tracer_core::{
    now_unix_nanos, LogEntry, LogStore, Span, SpanContext, SpanData, SpanId, SpanKind, TraceStore,
    Traceparent, Tracer,
};

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

/// A handler's view of one message and of the node.
pub struct Ctx<'a> {
    pub(crate) shared: &'a mut Shared,
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
        self.shared.node_id.as_deref()
    }

    /// The cluster's node ids from `init`.
    pub fn node_ids(&self) -> &[String] {
        &self.shared.node_ids
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

    /// The node's settings.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// This plugin's state, made with `Default` on first use.
    pub fn state<T: Any + Send + Default>(&mut self) -> &mut T {
        self.shared
            .plugins
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("plugin state is keyed by its own TypeId")
    }

    /// The node's log store.
    pub fn logs(&self) -> MutexGuard<'_, LogStore> {
        self.shared.logs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a log entry, and queues it for export when export is on.
    pub fn push_log(&mut self, entry: LogEntry) {
        self.push_log_in(entry, None);
    }

    /// Stores a log entry written in a span; the export carries that span's
    /// id even where the stored entry names none.
    pub fn push_log_in(&mut self, entry: LogEntry, span: Option<SpanId>) {
        if let Some(e) = &self.shared.log_export {
            e.push(TimedLog {
                time_unix_nanos: now_unix_nanos(),
                entry: entry.clone(),
                span,
            });
        }
        self.logs().push(entry);
    }

    /// Whether finished spans leave the node (OTLP or file export).
    pub fn exports_spans(&self) -> bool {
        self.shared.span_export.is_some()
    }

    /// Queues a span the node took in from elsewhere (a collector's intake)
    /// for export; spans made with the node's tracer are queued as they end.
    pub fn export_span(&self, span: SpanData) {
        if let Some(e) = &self.shared.span_export {
            e.push(span);
        }
    }

    /// Counters of the span and log exporters, when export is on.
    pub fn export_stats(&self) -> (Option<ExportStats>, Option<ExportStats>) {
        (
            self.shared.span_export.as_ref().map(|e| e.stats()),
            self.shared.log_export.as_ref().map(|e| e.stats()),
        )
    }

    /// The node's trace store (every finished span of this node).
    pub fn traces(&self) -> MutexGuard<'_, TraceStore> {
        self.shared.traces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node's tracer.
    pub fn tracer(&self) -> &Tracer {
        &self.shared.tracer
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
        if self.replied || !(self.req.msg_id.is_some() || self.req.always_reply) {
            return;
        }
        self.replied = true;
        let env = Envelope {
            src: self.req.reply_src,
            dest: self.req.reply_dest,
            body: ReplyBody {
                body,
                in_reply_to: self.req.msg_id,
            },
        };
        self.shared.write_line(&env);
    }

    /// Writes a message this node starts, with its own next `msg_id` and
    /// the context of a new CLIENT span (child of the current span), which
    /// it returns unended.
    fn start_message<T: Serialize + ?Sized>(&mut self, dest: &str, body: &T) -> (u64, Span) {
        self.shared.last_msg_id += 1;
        let msg_id = self.shared.last_msg_id;
        // Parent: the current span (the sidecar's, or a #[traced] one inside).
        let span = self
            .shared
            .tracer
            .span_builder("send")
            .kind(SpanKind::Client)
            .attribute("messaging.destination.name", dest.to_owned())
            .attribute("service.name", self.req.reply_src.to_owned())
            .start();
        let ctx = span.context();
        let (traceparent, tracestate) = if ctx.is_valid() {
            let state = ctx.trace_state();
            (
                Some(Traceparent::format(ctx)),
                (!state.is_empty()).then(|| state.header()),
            )
        } else {
            (None, None)
        };
        let env = Envelope {
            src: self.req.reply_src,
            dest,
            body: SentBody {
                body,
                msg_id,
                traceparent,
                tracestate,
            },
        };
        self.shared.write_line(&env);
        (msg_id, span)
    }

    /// Sends a message this node starts (a notice to a client, a request to
    /// another node) with the node's own next `msg_id`, which it returns.
    /// The sidecar records it as a CLIENT span, child of the current span,
    /// and injects that span's context (`traceparent`, and `tracestate`
    /// when there is one) into the body: handlers write no tracing code.
    pub fn send<T: Serialize + ?Sized>(&mut self, dest: &str, body: &T) -> u64 {
        self.start_message(dest, body).0
    }

    /// Sends a request to another node and calls `callback` with its reply
    /// body, or with [`RpcError::Timeout`] when none came within `timeout`.
    /// The CLIENT span lasts until then (status ERROR on a timeout). The
    /// callback runs on the node's thread between two messages, with a `Ctx`
    /// of its own whose `incoming()` is that CLIENT span; to answer the
    /// request that started it, capture a [`ReplyTo`] from [`Ctx::defer`].
    pub fn rpc<T, F>(&mut self, dest: &str, body: &T, timeout: Duration, callback: F) -> u64
    where
        T: Serialize + ?Sized,
        F: FnOnce(&mut Ctx<'_>, Result<&RawValue, RpcError>) + Send + 'static,
    {
        if self.shared.pending.len() >= MAX_PENDING_RPCS {
            // Bounded like every store: refuse rather than grow.
            let err = RpcError::Overloaded {
                dest: dest.to_owned(),
                in_flight: self.shared.pending.len(),
            };
            callback(self, Err(err));
            return 0;
        }
        let (msg_id, span) = self.start_message(dest, body);
        self.shared.pending.insert(
            msg_id,
            Pending {
                deadline: Instant::now() + timeout,
                timeout,
                dest: dest.to_owned(),
                span,
                callback: Box::new(callback),
            },
        );
        msg_id
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
        self.shared.write_line(&Envelope {
            src: &to.src,
            dest: &to.dest,
            body: ReplyBody {
                body,
                in_reply_to: to.in_reply_to,
            },
        });
    }

    /// Answers a deferred request with an error.
    pub fn error_to(&mut self, to: &ReplyTo, e: &Error) {
        self.shared
            .write_error(&to.src, &to.dest, to.in_reply_to, e);
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

/// RPCs in flight at once, at most.
pub const MAX_PENDING_RPCS: usize = 65_536;

/// Why an RPC came back without a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcError {
    /// No reply within the timeout.
    Timeout {
        /// The node that did not answer.
        dest: String,
        /// How long it was given.
        after: Duration,
    },
    /// Not sent: [`MAX_PENDING_RPCS`] were in flight already.
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

/// The return value of a handler that answers later: it must have called
/// [`Ctx::defer`], which is what stops the runtime from replying now.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Deferred {}

/// A callback waiting for an RPC reply.
pub(crate) type RpcCallback = Box<dyn FnOnce(&mut Ctx<'_>, Result<&RawValue, RpcError>) + Send>;

/// An RPC in flight.
pub(crate) struct Pending {
    pub(crate) deadline: Instant,
    pub(crate) timeout: Duration,
    pub(crate) dest: String,
    pub(crate) span: Span,
    pub(crate) callback: RpcCallback,
}
