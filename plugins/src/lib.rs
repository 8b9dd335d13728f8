//! The node's features. Each module is one plugin: a set of `#[handler]`s
//! that register themselves with the runtime through `inventory`. No plugin
//! imports another; what they share lives in `tracer-core` or the runtime.

pub mod analysis;
pub mod auto_instrument;
pub mod collector;
pub mod debug;
pub mod logs;
pub mod manual_instrument;
pub mod proxy;
pub mod reconstruct;
pub mod spans;
pub mod stats;
pub mod traces;

/// The message types these plugins serve. The binary calls this at start-up:
/// referencing the crate keeps the linker from dropping its registrations.
pub fn served_types() -> Vec<&'static str> {
    inventory::iter::<tracer_node::Handler>
        .into_iter()
        .map(|h| h.msg_type)
        .collect()
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
