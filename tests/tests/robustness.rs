//! Nothing a client sends may crash the node, hang it, or lose what it
//! holds: thousands of mangled lines (the demo input with bytes flipped,
//! cut, duplicated and shuffled), then a check that the node still answers
//! and still has what it stored before.

use serde_json::json;
use tests::Node;

/// xorshift64*: a fixed seed, so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mangle(rng: &mut Rng, line: &[u8]) -> Vec<u8> {
    let mut l = line.to_vec();
    for _ in 0..=rng.below(4) {
        if l.is_empty() {
            break;
        }
        let i = rng.below(l.len());
        match rng.below(6) {
            0 => l[i] = (rng.next() & 0xff) as u8,
            1 => l.truncate(i),
            2 => {
                let tail = l[i..].to_vec();
                l.extend_from_slice(&tail);
            }
            3 => l.insert(i, b"{}[]\",:\\0123456789"[rng.below(18)]),
            4 => {
                l.remove(i);
            }
            _ => l[i] = l[rng.below(l.len())],
        }
    }
    // One line per message: a newline inside would split it in two.
    l.retain(|&b| b != b'\n');
    l
}

#[test]
fn mangled_input_never_stops_the_node() {
    let demo = include_str!("../../examples/demo.jsonl");
    let lines: Vec<&[u8]> = demo.lines().map(str::as_bytes).collect();
    let mut node = Node::spawn();
    let kept =
        node.call(json!({"type": "log", "message": "before the storm", "trace_id": "keep-1"}));
    assert_eq!(kept["type"], "log_ok");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut sent = 0;
    for _ in 0..4000 {
        let base = lines[rng.below(lines.len())];
        let mut line = mangle(&mut rng, base);
        line.push(b'\n');
        node.send_bytes(&line);
        sent += 1;
    }
    // Still serving, still holding what it had.
    let found = node.call(json!({"type": "search_logs", "trace_id": "keep-1"}));
    assert_eq!(found["type"], "search_results", "{found}");
    assert_eq!(found["logs"][0]["message"], "before the storm");
    let f = node.finish_full();
    assert!(
        f.status.success(),
        "exit {:?} after {sent} mangled lines:\n{}",
        f.status,
        f.stderr
    );
    assert!(
        f.bad_lines.is_empty(),
        "non-JSON output: {:?}",
        &f.bad_lines[..f.bad_lines.len().min(3)]
    );
    assert!(
        !f.stderr.contains("panicked"),
        "a mangled line made a handler panic:\n{}",
        &f.stderr[..f.stderr.len().min(2000)]
    );
}
