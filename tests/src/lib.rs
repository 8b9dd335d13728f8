//! Black-box harness for the `tracer-node` binary: spawn the real process,
//! talk JSON lines over stdin/stdout, and check replies against
//! `PROTOCOL.md`.

pub mod collector;
pub mod matching;
pub mod net;
pub mod node;

pub use matching::{find_match, match_line, match_value};
pub use node::{node_bin, Finished, Node, REPLY_TIMEOUT};

use regex::Regex;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

/// The directory holding the `*.in.jsonl` / `*.out.jsonl` cases.
pub fn cases_dir() -> &'static Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("cases"))
}

/// How long the course's harness waits for a case's expected lines (its
/// performance analysis gets twice the usual 5 s).
pub fn case_timeout(name: &str) -> std::time::Duration {
    std::time::Duration::from_secs(if name.contains("performance") { 10 } else { 5 })
}

/// Runs one case the way the course does: a fresh node gets every input
/// line, and each expected line must match some output line that arrives
/// while stdin is still open (within [`case_timeout`]); only then does
/// stdin close. Non-JSON output, a non-zero exit and a node that does not
/// exit are failures too.
pub fn run_case(in_path: &Path, out_path: &Path) -> Result<(), String> {
    let input = std::fs::read_to_string(in_path)
        .map_err(|e| format!("cannot read {}: {e}", in_path.display()))?;
    let expected_text = std::fs::read_to_string(out_path)
        .map_err(|e| format!("cannot read {}: {e}", out_path.display()))?;
    let mut expected = Vec::new();
    for (i, line) in expected_text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "{}:{}: expected line is not JSON: {e}",
                out_path.display(),
                i + 1
            )
        })?;
        expected.push(v);
    }

    let mut node = Node::spawn();
    for line in input.lines() {
        node.send_raw(line);
    }
    // Stdin stays open until every expected line has come (or the time is
    // up): a notice that needs end of input to appear does not count.
    let name = in_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let deadline = std::time::Instant::now() + case_timeout(name.as_deref().unwrap_or(""));
    let mut late = Vec::new();
    for exp in &expected {
        while find_match(exp, node.history()).is_err() {
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else {
                break;
            };
            if node.recv_timeout(left).is_none() {
                break;
            }
        }
        if find_match(exp, node.history()).is_err() {
            late.push(exp.clone());
        }
    }
    let finished = node.try_finish()?;

    let mut problems = Vec::new();
    for exp in &late {
        problems.push(format!(
            "the expected line did not come while stdin was open\n  {exp}"
        ));
    }
    for bad in &finished.bad_lines {
        problems.push(format!("non-JSON stdout line: {bad:?}"));
    }
    if !finished.status.success() {
        problems.push(format!("the node exited with {}", finished.status));
    }
    for exp in &expected {
        if let Err(why) = find_match(exp, &finished.all_lines) {
            problems.push(format!(
                "no output line matches the expected line\n  {exp}\n{why}"
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = problems.join("\n");
    msg.push_str("\nactual output lines:");
    for line in &finished.all_lines {
        msg.push_str(&format!("\n  {line}"));
    }
    if finished.all_lines.is_empty() {
        msg.push_str("\n  (none)");
    }
    if !finished.stderr.is_empty() {
        msg.push_str(&format!("\nstderr:\n{}", finished.stderr));
    }
    Err(msg)
}

/// The key set of a JSON object (empty for anything else).
pub fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Asserts that `v` is an object with exactly these keys.
#[track_caller]
pub fn assert_keys(v: &Value, expected: &[&str]) {
    let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert!(
        v.is_object(),
        "expected an object with keys {want:?}, got {v}"
    );
    assert_eq!(keys(v), want, "key set of {v}");
}

/// Asserts an error body with this code whose text contains each of
/// `mentions` (the field names the protocol says the text must name).
#[track_caller]
pub fn assert_error(body: &Value, code: i64, mentions: &[&str]) {
    assert_eq!(body["type"], "error", "expected an error reply, got {body}");
    assert_eq!(body["code"], code, "wrong error code in {body}");
    let text = body["text"]
        .as_str()
        .unwrap_or_else(|| panic!("error without a string `text`: {body}"));
    for m in mentions {
        assert!(
            text.contains(m),
            "error text {text:?} should name `{m}` (body {body})"
        );
    }
}

/// Lowercase hyphenated UUID v4, as the node writes trace ids it creates.
pub fn uuid_v4_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            .unwrap()
    })
}

/// 16 lowercase hex digits, not all zero: a span id the node creates.
pub fn is_span_id(s: &str) -> bool {
    s.len() == 16
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && s.bytes().any(|b| b != b'0')
}

/// The 128 bits of a trace id as 32 lowercase hex digits, when `s` is a
/// hyphenated UUID or 32 hex digits; `None` for any other string.
pub fn trace_id_bits(s: &str) -> Option<String> {
    let hex: String = if s.len() == 36 {
        let b = s.as_bytes();
        if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
            return None;
        }
        s.replace('-', "")
    } else {
        s.to_string()
    };
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uuid_regex_accepts_v4_only() {
        assert!(uuid_v4_re().is_match("3f2b8c1e-9a4d-4e2f-8b1a-0c9d8e7f6a5b"));
        assert!(!uuid_v4_re().is_match("3f2b8c1e-9a4d-1e2f-8b1a-0c9d8e7f6a5b"));
        assert!(!uuid_v4_re().is_match("3f2b8c1e-9a4d-4e2f-cb1a-0c9d8e7f6a5b"));
        assert!(!uuid_v4_re().is_match("3F2B8C1E-9A4D-4E2F-8B1A-0C9D8E7F6A5B"));
        assert!(!uuid_v4_re().is_match("3f2b8c1e9a4d4e2f8b1a0c9d8e7f6a5b"));
    }

    #[test]
    fn span_id_shape() {
        assert!(is_span_id("00f067aa0ba902b7"));
        assert!(!is_span_id("00F067AA0BA902B7"));
        assert!(!is_span_id("0000000000000000"));
        assert!(!is_span_id("00f067aa0ba902b"));
    }

    #[test]
    fn trace_id_spellings() {
        let bits = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_string());
        assert_eq!(trace_id_bits("4bf92f3577b34da6a3ce929d0e0e4736"), bits);
        assert_eq!(trace_id_bits("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"), bits);
        assert_eq!(trace_id_bits("abc123"), None);
        assert_eq!(trace_id_bits("4bf92f35777b34da6a3ce929d0e0e4736xx"), None);
    }

    #[test]
    fn assert_error_checks_code_and_text() {
        let body = json!({"type": "error", "code": 12, "text": "missing field `message`"});
        assert_error(&body, 12, &["message"]);
        assert!(std::panic::catch_unwind(|| assert_error(&body, 10, &[])).is_err());
        assert!(std::panic::catch_unwind(|| assert_error(&body, 12, &["trace_id"])).is_err());
        let not_err = json!({"type": "log_ok", "code": 12, "text": "message"});
        assert!(std::panic::catch_unwind(|| assert_error(&not_err, 12, &[])).is_err());
    }

    #[test]
    fn assert_keys_is_exact() {
        assert_keys(&json!({"a": 1, "b": 2}), &["b", "a"]);
        assert!(std::panic::catch_unwind(|| assert_keys(&json!({"a": 1}), &["a", "b"])).is_err());
        assert!(
            std::panic::catch_unwind(|| assert_keys(&json!({"a": 1, "c": 1}), &["a"])).is_err()
        );
    }
}
