//! The `tracer-node` runtime: the Maelstrom codec (JSON lines on stdin and
//! stdout, each line parsed once), the registry of `#[handler]`s that
//! `inventory` collects, the sidecar that opens a SERVER span for every
//! message, timers, the stores of user data, the export pipeline, and the
//! state handlers share. The `tracer-node` binary is this runtime with the
//! `plugins` linked in.
//!
//! A plugin is a function:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use tracer_node::{handler, Ctx, Error};
//!
//! #[derive(Deserialize)]
//! struct Echo { echo: String }
//!
//! #[derive(Serialize)]
//! #[serde(tag = "type", rename = "echo_ok")]
//! struct EchoOk { echo: String }
//!
//! #[handler("echo")]
//! fn echo(_ctx: &mut Ctx<'_>, req: Echo) -> Result<EchoOk, Error> {
//!     Ok(EchoOk { echo: req.echo })
//! }
//!
//! let registry = tracer_node::Registry::collect().unwrap();
//! let mut node = tracer_node::Node::new(registry, tracer_node::Config::default()).unwrap();
//! let mut out = Vec::new();
//! node.run(&br#"{"src":"c1","dest":"n1","body":{"type":"echo","msg_id":1,"echo":"hi"}}"#[..], &mut out).unwrap();
//! assert_eq!(
//!     String::from_utf8(out).unwrap(),
//!     "{\"src\":\"n1\",\"dest\":\"c1\",\"body\":{\"type\":\"echo_ok\",\"echo\":\"hi\",\"in_reply_to\":1}}\n"
//! );
//! ```

mod bounded;
mod codec;
mod config;
mod ctx;
mod error;
mod input;
mod node;
mod registry;
pub mod sidecar;
mod state;
pub mod stores;
mod timers;

pub use bounded::BoundedMap;
pub use codec::Body;
pub use config::{Config, DEFAULT_MAX_LINE};
pub use ctx::{Ctx, Deferred, ReplyTo, RpcError, RuntimeStats, MAX_PENDING_RPCS, MAX_TIMERS};
pub use error::{decode, Error, ErrorCode};
pub use node::Node;
pub use registry::{DuplicateHandler, Handler, HandlerFn, Registry};
pub use sidecar::headers_from_json;
pub use timers::{TimerId, TimersFull};
pub use tracer_macros::{handler, traced};

/// Used by the code `#[handler]` generates.
#[doc(hidden)]
pub mod __private {
    pub use crate::codec::Body;
    pub use crate::error::decode;
    pub use inventory;
}
