//! What the node holds between messages: its identity, the stores, the
//! tracer, plugin state, and the output not yet written.

use crate::bounded::BoundedMap;
use crate::codec::{Envelope, ErrorBody};
use crate::config::Config;
use crate::error::Error;
use crate::stores::{LogStore, TraceStore};
use serde::Serialize;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tracer_core::otlp::Pipeline;
use tracer_core::Tracer;

/// Output is written out once this much is pending, even mid-burst.
pub(crate) const OUT_HIGH_WATER: usize = 64 << 10;

/// Requests from cluster peers remembered as handled, at most.
const SEEN_CAP: usize = 65_536;

/// State every handler shares through its [`Ctx`](crate::Ctx).
pub(crate) struct State {
    pub(crate) node_id: Option<String>,
    pub(crate) node_ids: Vec<String>,
    pub(crate) last_src: Option<String>,
    pub(crate) plugins: HashMap<TypeId, Box<dyn Any + Send>>,
    pub(crate) logs: Arc<Mutex<LogStore>>,
    pub(crate) traces: Arc<Mutex<TraceStore>>,
    pub(crate) tracer: Tracer,
    pub(crate) config: Config,
    /// Where finished spans and logs go besides the stores.
    pub(crate) pipeline: Pipeline,
    /// The last `msg_id` of a message this node started.
    pub(crate) last_msg_id: u64,
    /// Requests from cluster peers already handled, by (src, msg_id): a
    /// duplicated message is not handled twice (no duplicate spans).
    pub(crate) seen: BoundedMap<(String, u64), ()>,
    /// What was dropped or refused, by place and reason (`stats.drops`).
    pub(crate) drops: BTreeMap<&'static str, u64>,
    pub(crate) out: Vec<u8>,
}

impl State {
    pub(crate) fn new(
        config: Config,
        tracer: Tracer,
        traces: Arc<Mutex<TraceStore>>,
        pipeline: Pipeline,
    ) -> Self {
        State {
            node_id: None,
            node_ids: Vec::new(),
            last_src: None,
            plugins: HashMap::new(),
            logs: Arc::new(Mutex::new(LogStore::with_bytes(
                config.max_logs,
                config.log_bytes(),
            ))),
            traces,
            tracer,
            config,
            pipeline,
            last_msg_id: 0,
            seen: BoundedMap::new(SEEN_CAP),
            drops: BTreeMap::new(),
            out: Vec::with_capacity(OUT_HIGH_WATER),
        }
    }

    /// Whether `name` is another node of the cluster (`init`'s `node_ids`).
    pub(crate) fn is_peer(&self, name: &str) -> bool {
        self.node_id.as_deref() != Some(name) && self.node_ids.iter().any(|n| n == name)
    }

    /// Counts `n` things dropped or refused at `what` (`"place.reason"`).
    pub(crate) fn count_drop(&mut self, what: &'static str, n: u64) {
        *self.drops.entry(what).or_default() += n;
    }

    /// Where a reply goes when its request names no `src`: the last `src`
    /// seen, else `"client"`.
    pub(crate) fn default_dest(&self) -> &str {
        self.last_src.as_deref().unwrap_or("client")
    }

    /// The node's id: from `init`, else `"tracer"`.
    pub(crate) fn own_id(&self) -> &str {
        self.node_id.as_deref().unwrap_or("tracer")
    }

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

    /// Writes a reply: `body` (which serializes to a JSON object) with
    /// `in_reply_to` added, from `src` to `dest`. The body is written as
    /// serde writes it and `in_reply_to` appended before its closing brace:
    /// the same line as a flattened struct, without serde's buffering of
    /// flattened fields. A body that is not an object is refused, as
    /// flattening refuses it.
    pub(crate) fn write_reply<T: Serialize + ?Sized>(
        &mut self,
        src: &str,
        dest: &str,
        body: &T,
        in_reply_to: Option<u64>,
    ) -> bool {
        let start = self.out.len();
        let written = (|| -> serde_json::Result<bool> {
            let out = &mut self.out;
            out.extend_from_slice(b"{\"src\":");
            serde_json::to_writer(&mut *out, src)?;
            out.extend_from_slice(b",\"dest\":");
            serde_json::to_writer(&mut *out, dest)?;
            out.extend_from_slice(b",\"body\":");
            let body_start = out.len();
            serde_json::to_writer(&mut *out, body)?;
            if out.get(body_start) != Some(&b'{') || out.last() != Some(&b'}') {
                return Ok(false);
            }
            if let Some(id) = in_reply_to {
                out.pop();
                if out.len() > body_start + 1 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"in_reply_to\":");
                out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                out.push(b'}');
            }
            out.extend_from_slice(b"}\n");
            Ok(true)
        })();
        match written {
            Ok(true) => true,
            Ok(false) => {
                self.out.truncate(start);
                eprintln!(
                    "tracer-node: could not serialize a reply: its body is not a JSON object"
                );
                false
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stores::StoreLimits;

    fn state() -> State {
        State::new(
            Config::default(),
            Tracer::noop(),
            Arc::new(Mutex::new(TraceStore::new(StoreLimits::default()))),
            Pipeline::default(),
        )
    }

    #[test]
    fn a_reply_is_its_body_with_in_reply_to_added() {
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        #[serde(tag = "type", rename = "echo_ok")]
        struct Echo<'a> {
            echo: &'a str,
        }
        let mut s = state();
        assert!(s.write_reply("n\"1", "c1", &Echo { echo: "a}b" }, Some(7)));
        assert!(s.write_reply("n1", "c1", &Empty {}, Some(8)));
        assert!(s.write_reply("n1", "c1", &Echo { echo: "x" }, None));
        assert!(!s.write_reply("n1", "c1", "not an object", Some(9)));
        assert_eq!(
            String::from_utf8(s.out.clone()).unwrap(),
            concat!(
                r#"{"src":"n\"1","dest":"c1","body":{"type":"echo_ok","echo":"a}b","in_reply_to":7}}"#,
                "\n",
                r#"{"src":"n1","dest":"c1","body":{"in_reply_to":8}}"#,
                "\n",
                r#"{"src":"n1","dest":"c1","body":{"type":"echo_ok","echo":"x"}}"#,
                "\n",
            ),
            "a refused body writes nothing"
        );
    }
}
