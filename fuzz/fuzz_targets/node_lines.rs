//! Feeds arbitrary bytes, line by line, to a node with every plugin in
//! process (the codec, the routing, every handler's request decoding and
//! the handlers themselves): nothing may panic, hang or grow without
//! bound. A handler's panic is caught by the node and answered with error
//! 13; here that answer is a finding too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use tracer_node::{Config, Node, Registry};

thread_local! {
    /// One node for the whole run, so that state carries from input to
    /// input (stores fill and evict, spans stay open, timers pend).
    static NODE: RefCell<Node> = RefCell::new({
        assert!(!plugins::served_types().is_empty());
        let mut config = Config::default();
        // Small stores, so that eviction runs too.
        config.max_memory = 4 << 20;
        config.max_traces = 64;
        config.max_logs = 1_000;
        Node::new(Registry::collect().expect("no duplicate handlers"), config)
            .expect("no export file to open")
    });
}

fuzz_target!(|data: &[u8]| {
    NODE.with(|node| {
        let mut node = node.borrow_mut();
        for line in data.split(|&b| b == b'\n') {
            node.step(line);
        }
        let mut out = Vec::new();
        node.write_output(&mut out).expect("writing to a Vec");
        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: serde_json::Value = serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("the node wrote a line that is not JSON ({e})"));
            assert!(
                v["body"]["code"] != 13,
                "a handler panicked: {}",
                String::from_utf8_lossy(line)
            );
        }
    });
});
