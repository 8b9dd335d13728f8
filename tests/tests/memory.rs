//! The memory budget (`TRACER_MAX_MEMORY`, issue 11): the stores of user
//! data hold at most their share of it in bytes, the oldest user data goes
//! first, every drop is counted, and the process stays within the budget
//! plus a fixed overhead however much is sent.

use serde_json::{json, Value};
use tests::{assert_error, Node};

const BUDGET: u64 = 8 << 20;
/// What the node takes besides its stores: code, the allocator's own
/// overhead and fragmentation, input and output buffers, a debug build.
const OVERHEAD: u64 = 40 << 20;

fn logs(from: usize, n: usize, size: usize) -> String {
    let text = "x".repeat(size);
    let mut s = String::with_capacity(n * (size + 80));
    for i in from..from + n {
        s.push_str(
            &json!({"type": "log", "message": format!("{i} {text}"), "trace_id": format!("t-{}", i % 100)})
                .to_string(),
        );
        s.push('\n');
    }
    s
}

fn spans(from: usize, n: usize, size: usize) -> String {
    let name = "n".repeat(size);
    let mut s = String::with_capacity(n * (size + 120));
    for i in from..from + n {
        let trace = format!("trace-{}", i / 10);
        let parent = (i % 10 != 0).then(|| format!("s{}", i - i % 10));
        s.push_str(
            &json!({"type": "span", "trace_id": trace, "span_id": format!("s{i}"),
                "parent_span_id": parent, "service": "svc", "name": name})
            .to_string(),
        );
        s.push('\n');
    }
    s
}

fn stats(node: &mut Node) -> Value {
    let s = node.call(json!({"type": "stats"}));
    assert_eq!(s["type"], "stats_ok", "{s}");
    s
}

/// Sends what fills each store, then three times as much, in chunks: the
/// stores stay within their shares, the counters add up, the newest data is
/// kept, and the process's peak memory stays within the budget plus a
/// fixed overhead. `budget` is `None` for the default.
fn soak(budget: Option<u64>) {
    let env = budget.map(|b| b.to_string());
    let vars: Vec<(&str, &str)> = env
        .iter()
        .map(|b| ("TRACER_MAX_MEMORY", b.as_str()))
        .collect();
    let budget = budget.unwrap_or(256 << 20);
    let mut node = Node::spawn_with_env(&vars);
    let size = 1_000;
    let share = budget / 100 * 45;
    // A 1 KB log is charged about 1,170 bytes, a 1 KB span about 1,400:
    // this many of each more than fills a share.
    // (Whole traces of ten spans in every round.)
    let fill = (share / 1_100) as usize / 10 * 10;
    let (mut sent_logs, mut sent_spans) = (0, 0);
    for round in [fill, 3 * fill] {
        let chunk = 20_000;
        let mut left = round;
        while left > 0 {
            let n = left.min(chunk);
            node.send_bytes(logs(sent_logs, n, size).as_bytes());
            node.send_bytes(spans(sent_spans, n, size).as_bytes());
            sent_logs += n;
            sent_spans += n;
            left -= n;
        }
        let s = stats(&mut node);
        let (l, t) = (&s["logs"], &s["traces"]);
        assert_eq!(l["max_bytes"], share, "{s}");
        assert_eq!(t["max_bytes"], share, "{s}");
        assert!(l["bytes"].as_u64().unwrap() <= share, "{s}");
        assert_eq!(l["stored"], sent_logs as u64, "{s}");
        let held = l["entries"].as_u64().unwrap();
        assert_eq!(
            l["dropped"].as_u64().unwrap(),
            sent_logs as u64 - held,
            "every log that left is counted: {s}"
        );
        assert_eq!(l["dropped_for_bytes"], l["dropped"], "all for bytes: {s}");
        assert!(
            held * size as u64 > share * 3 / 4,
            "the share is used, not wasted: {s}"
        );
        assert!(t["bytes"].as_u64().unwrap() <= share, "{s}");
        assert_eq!(t["spans_stored"], sent_spans as u64, "{s}");
        if round > fill {
            assert!(t["traces_evicted_for_bytes"].as_u64().unwrap() > 0, "{s}");
            assert_eq!(t["traces_evicted"], t["traces_evicted_for_bytes"], "{s}");
            let first = node.call(json!({"type": "get_trace", "trace_id": "trace-0"}));
            assert_error(&first, 20, &[]);
        }
        // The newest data is what is kept.
        let last = format!("trace-{}", (sent_spans - 1) / 10);
        let g = node.call(json!({"type": "get_trace", "trace_id": last}));
        assert_eq!(g["spans"].as_array().map(Vec::len), Some(10), "{g}");
    }
    let peak = node.peak_rss().expect("/proc/<pid>/status");
    eprintln!(
        "budget {} MiB: peak resident memory {} KiB",
        budget >> 20,
        peak >> 10
    );
    assert!(
        peak <= budget + OVERHEAD,
        "peak resident memory {} MiB with a {} MiB budget",
        peak >> 20,
        budget >> 20
    );
    node.finish();
}

#[test]
fn a_small_budget_holds_under_three_times_what_fills_it() {
    soak(Some(BUDGET));
}

#[test]
fn the_default_budget_holds_under_three_times_what_fills_it() {
    soak(None);
}

/// One log larger than the whole log share is refused with an error naming
/// the field, and nothing is evicted for it.
#[test]
fn an_item_larger_than_its_share_is_refused_whole() {
    let mut node = Node::spawn_with_env(&[("TRACER_MAX_MEMORY", "64KiB")]);
    node.call(json!({"type": "log", "message": "kept"}));
    let r = node.call(json!({"type": "log", "message": "y".repeat(40_000)}));
    assert_error(&r, 12, &["message", "TRACER_MAX_MEMORY"]);
    let found = node.call(json!({"type": "search_logs"}));
    assert_eq!(found["logs"].as_array().unwrap().len(), 1, "{found}");
    let s = stats(&mut node);
    assert_eq!(s["logs"]["dropped"], 0, "{s}");
    // A span too large for the trace share is refused too, and counted.
    let r = node.call(
        json!({"type": "span", "trace_id": "big", "span_id": "s", "service": "svc",
        "name": "z".repeat(40_000)}),
    );
    assert_eq!(r["sampled"], false, "{r}");
    let s = stats(&mut node);
    assert_eq!(s["traces"]["spans_refused_for_bytes"], 1, "{s}");
    node.finish();
}

#[test]
fn a_bad_budget_stops_start_up_naming_the_variable() {
    for bad in ["lots", "12XB", "1K"] {
        let mut node = Node::spawn_with_env(&[("TRACER_MAX_MEMORY", bad)]);
        node.close_stdin();
        let f = node.finish_full();
        assert!(!f.status.success(), "{bad} accepted");
        assert!(f.stderr.contains("TRACER_MAX_MEMORY"), "{}", f.stderr);
    }
}
