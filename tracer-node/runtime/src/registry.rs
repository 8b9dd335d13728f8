//! The handlers `inventory` collected, looked up by message type.

use crate::codec::Body;
use crate::ctx::Ctx;
use crate::error::Error;
use foldhash::HashMap;
use std::fmt;

/// The function `#[handler]` generates: decode, call, reply.
pub type HandlerFn = fn(&mut Ctx<'_>, &Body<'_>) -> Result<(), Error>;

/// A registered message handler. Made by `#[handler("type")]`.
#[derive(Debug)]
pub struct Handler {
    /// The message `type` it serves.
    pub msg_type: &'static str,
    /// Its path, for diagnostics (`plugins::logs::log`).
    pub name: &'static str,
    /// The generated entry point.
    pub call: HandlerFn,
    /// Reply even when the request has no `msg_id`.
    pub always_reply: bool,
    /// The handler opens its own SERVER span from `ctx.incoming()`.
    pub own_span: bool,
}

inventory::collect!(Handler);

/// Two handlers claimed one message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateHandler {
    /// The message type.
    pub msg_type: &'static str,
    /// The handler seen first.
    pub first: &'static str,
    /// The handler seen second.
    pub second: &'static str,
}

impl fmt::Display for DuplicateHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "two handlers for message type {:?}: {} and {}",
            self.msg_type, self.first, self.second
        )
    }
}

impl std::error::Error for DuplicateHandler {}

/// Handlers by message type.
#[derive(Debug, Default)]
pub struct Registry {
    by_type: HashMap<&'static str, &'static Handler>,
}

/// Message types the runtime answers itself.
pub(crate) const RESERVED: &[&str] = &["init"];

impl Registry {
    /// Every handler linked into the binary.
    pub fn collect() -> Result<Registry, DuplicateHandler> {
        Self::build(inventory::iter::<Handler>)
    }

    /// A registry of the given handlers; a type claimed twice (or a type the
    /// runtime serves itself) is an error naming both.
    pub fn build(
        handlers: impl IntoIterator<Item = &'static Handler>,
    ) -> Result<Registry, DuplicateHandler> {
        let mut by_type: HashMap<&'static str, &'static Handler> = HashMap::default();
        for h in handlers {
            if RESERVED.contains(&h.msg_type) {
                return Err(DuplicateHandler {
                    msg_type: h.msg_type,
                    first: "the tracer_node runtime",
                    second: h.name,
                });
            }
            if let Some(prev) = by_type.insert(h.msg_type, h) {
                let (a, b) = if prev.name <= h.name {
                    (prev.name, h.name)
                } else {
                    (h.name, prev.name)
                };
                return Err(DuplicateHandler {
                    msg_type: h.msg_type,
                    first: a,
                    second: b,
                });
            }
        }
        Ok(Registry { by_type })
    }

    /// The handler of a type.
    pub fn get(&self, msg_type: &str) -> Option<&'static Handler> {
        self.by_type.get(msg_type).copied()
    }

    /// The served types, sorted.
    pub fn types(&self) -> Vec<&'static str> {
        let mut t: Vec<_> = self.by_type.keys().copied().collect();
        t.sort_unstable();
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &mut Ctx<'_>, _: &Body<'_>) -> Result<(), Error> {
        Ok(())
    }

    static A: Handler = Handler {
        msg_type: "echo",
        name: "plugin_a::echo",
        call: noop,
        always_reply: false,
        own_span: false,
    };
    static B: Handler = Handler {
        msg_type: "echo",
        name: "plugin_b::echo",
        call: noop,
        always_reply: false,
        own_span: false,
    };
    static C: Handler = Handler {
        msg_type: "other",
        name: "plugin_c::other",
        call: noop,
        always_reply: false,
        own_span: false,
    };
    static INIT: Handler = Handler {
        msg_type: "init",
        name: "plugin_d::init",
        call: noop,
        always_reply: false,
        own_span: false,
    };

    #[test]
    fn duplicate_types_name_both_handlers() {
        let err = Registry::build([&A, &C, &B]).unwrap_err();
        assert_eq!(err.msg_type, "echo");
        let text = err.to_string();
        assert!(
            text.contains("plugin_a::echo") && text.contains("plugin_b::echo"),
            "{text}"
        );
        assert!(Registry::build([&INIT])
            .unwrap_err()
            .to_string()
            .contains("plugin_d::init"));
    }

    #[test]
    fn lookup_by_type() {
        let r = Registry::build([&A, &C]).unwrap();
        assert_eq!(r.get("other").unwrap().name, "plugin_c::other");
        assert!(r.get("nope").is_none());
        assert_eq!(r.types(), ["echo", "other"]);
    }
}
