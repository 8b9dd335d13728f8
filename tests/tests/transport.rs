//! Transport: envelopes, addressing, errors for bad input, robustness.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tests::{assert_error, assert_keys, Node};

fn log(message: &str) -> Value {
    json!({"type": "log", "message": message})
}

/// Proves the node still serves after bad input: a log is stored and found.
#[track_caller]
fn assert_still_serving(node: &mut Node) {
    let ok = node.call(log("still serving"));
    assert_eq!(ok["type"], "log_ok", "node stopped serving: {ok}");
    let found = node.call(json!({"type": "search_logs", "contains": "still serving"}));
    assert_eq!(found["type"], "search_results", "{found}");
    assert!(
        !found["logs"].as_array().expect("logs array").is_empty(),
        "the log written after bad input is not found: {found}"
    );
}

/// The next line must be a reply-less error with code 12.
#[track_caller]
fn expect_line_error_12(node: &mut Node, what: &str) -> Value {
    let line = node.recv();
    let body = &line["body"];
    assert_error(body, 12, &[]);
    assert!(
        body.get("in_reply_to").is_none(),
        "{what}: an error for an unreadable line has no in_reply_to: {line}"
    );
    body.clone()
}

#[test]
fn envelope_request_is_answered() {
    let mut node = Node::spawn();
    let reply = node.request(log("hello"));
    assert_eq!(reply["body"]["type"], "log_ok", "{reply}");
    let (status, rest, _) = node.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "unexpected extra lines: {rest:?}");
}

#[test]
fn bare_body_request_is_answered() {
    let mut node = Node::spawn();
    node.send(&json!({"type": "log", "msg_id": 7, "message": "bare hello"}));
    let reply = node.wait_reply(&json!(7));
    assert_keys(&reply["body"], &["type", "in_reply_to"]);
    assert_eq!(reply["body"]["type"], "log_ok", "{reply}");
    let found = node.call(json!({"type": "search_logs"}));
    assert_eq!(
        found["logs"],
        json!([{"service": "service", "message": "bare hello"}])
    );
}

#[test]
fn extra_envelope_fields_are_harmless() {
    let mut node = Node::spawn();
    node.send(&json!({
        "src": "c1", "dest": "n1", "sampling_rate": 0.01, "id": 17,
        "body": {"type": "log", "msg_id": 3, "message": "sampled"}
    }));
    let reply = node.wait_reply(&json!(3));
    assert_eq!(reply["src"], "n1", "{reply}");
    assert_eq!(reply["dest"], "c1", "{reply}");
    assert_eq!(reply["body"]["type"], "log_ok", "{reply}");
    let found = node.call(json!({"type": "search_logs"}));
    assert_eq!(found["logs"][0]["message"], "sampled", "{found}");
}

#[test]
fn init_gets_init_ok() {
    let mut node = Node::spawn();
    let reply = node.request(json!({"type": "init", "node_id": "n1", "node_ids": ["n1", "n2"]}));
    assert_eq!(reply["src"], "n1");
    assert_eq!(reply["dest"], "c1");
    assert_keys(&reply["body"], &["type", "in_reply_to"]);
    assert_eq!(reply["body"]["type"], "init_ok", "{reply}");
}

#[test]
fn reply_is_addressed_back_to_the_sender() {
    let mut node = Node::spawn();
    for (src, dest) in [("c9", "n3"), ("alice", "web"), ("c1", "n1")] {
        let reply = node.request_to(src, dest, log("addressed"));
        assert_eq!(
            reply["src"], dest,
            "reply src must be the request's dest: {reply}"
        );
        assert_eq!(
            reply["dest"], src,
            "reply dest must be the request's src: {reply}"
        );
    }
}

#[test]
fn bare_body_after_an_envelope_is_answered_to_its_sender() {
    let mut node = Node::spawn();
    node.send(
        &json!({"src": "c7", "dest": "n1", "body": {"type": "log", "msg_id": 1, "message": "a"}}),
    );
    let first = node.wait_reply(&json!(1));
    assert_eq!(first["dest"], "c7");
    node.send(&json!({"type": "log", "msg_id": 2, "message": "b"}));
    let reply = node.wait_reply(&json!(2));
    assert_eq!(
        reply["dest"], "c7",
        "bare body goes to the last envelope's src: {reply}"
    );
    assert_eq!(
        reply["src"], "tracer",
        "no init: the node's id is \"tracer\": {reply}"
    );
}

#[test]
fn bare_body_with_no_envelope_is_answered_to_client() {
    let mut node = Node::spawn();
    node.send(&json!({"type": "log", "msg_id": 1, "message": "a"}));
    let reply = node.wait_reply(&json!(1));
    assert_eq!(reply["dest"], "client", "{reply}");
    assert_eq!(reply["src"], "tracer", "{reply}");
    assert_eq!(reply["body"]["type"], "log_ok", "{reply}");
}

#[test]
fn bare_body_after_init_is_answered_from_the_node_id() {
    let mut node = Node::spawn();
    node.send(&json!({"type": "init", "msg_id": 1, "node_id": "n5", "node_ids": ["n5", "n6"]}));
    let init = node.wait_reply(&json!(1));
    assert_eq!(init["body"]["type"], "init_ok", "{init}");
    node.send(&json!({"type": "log", "msg_id": 2, "message": "a"}));
    let reply = node.wait_reply(&json!(2));
    assert_eq!(reply["src"], "n5", "the id from init: {reply}");
    assert_eq!(reply["dest"], "client", "{reply}");
}

/// A session mixing good requests, errors and requests without msg_id.
/// Returns every line the node printed and the msg_ids it used.
fn mixed_session() -> (Vec<Value>, Vec<u64>) {
    let mut node = Node::spawn();
    let lines = [
        json!({"src": "c1", "dest": "n1", "body": {"type": "init", "msg_id": 1, "node_id": "n1", "node_ids": ["n1"]}}),
        json!({"src": "c1", "dest": "n1", "body": {"type": "log", "msg_id": 2, "message": "m", "trace_id": "t"}}),
        json!({"type": "log", "msg_id": 3, "message": "bare"}),
        json!({"src": "c2", "dest": "n1", "body": {"type": "log", "msg_id": 4}}),
        json!({"src": "c2", "dest": "n1", "body": {"type": "no_such_type", "msg_id": 5}}),
        json!({"src": "c2", "dest": "n1", "body": {"type": "log", "message": "no msg_id"}}),
        json!({"src": "c1", "dest": "n1", "body": {"type": "search_logs", "msg_id": 6}}),
        json!({"src": "i", "dest": "services", "body": {"type": "instrument_service", "msg_id": 7, "services": ["web", "db"]}}),
        json!({"src": "u", "dest": "web", "body": {"type": "http_request", "msg_id": 8, "path": "/x"}}),
        json!({"src": "c1", "dest": "n1", "body": {"type": "search_logs", "msg_id": 9, "limit": -1}}),
    ];
    for line in &lines {
        node.send(line);
    }
    node.send_raw("not json at all");
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": "log", "msg_id": 10, "message": "after"}}));
    let finished = node.finish_full();
    assert!(finished.status.success(), "exit status {}", finished.status);
    (finished.all_lines, (1..=10).collect())
}

#[test]
fn every_output_line_is_an_envelope() {
    let (lines, _) = mixed_session();
    assert!(!lines.is_empty(), "the node printed nothing");
    for line in &lines {
        assert!(line["src"].is_string(), "line without a string src: {line}");
        assert!(
            line["dest"].is_string(),
            "line without a string dest: {line}"
        );
        assert!(
            line["body"].is_object(),
            "line without an object body: {line}"
        );
        assert!(
            line["body"]["type"].is_string(),
            "body without a type: {line}"
        );
    }
}

#[test]
fn exactly_one_reply_per_msg_id() {
    let (lines, ids) = mixed_session();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for line in &lines {
        if let Some(irt) = line["body"].get("in_reply_to") {
            *counts.entry(irt.to_string()).or_default() += 1;
        }
    }
    let expected: BTreeMap<String, usize> = ids.iter().map(|id| (id.to_string(), 1)).collect();
    assert_eq!(counts, expected, "replies per msg_id; lines: {lines:#?}");
}

#[test]
fn replies_carry_no_msg_id_of_their_own() {
    let (lines, _) = mixed_session();
    let replies: Vec<&Value> = lines
        .iter()
        .filter(|l| l["body"].get("in_reply_to").is_some())
        .collect();
    assert!(replies.len() >= 10, "too few replies: {lines:?}");
    for reply in replies {
        assert!(
            reply["body"].get("msg_id").is_none(),
            "a reply carries its own msg_id: {reply}"
        );
    }
}

#[test]
fn a_line_that_is_not_json_gets_error_12() {
    let mut node = Node::spawn();
    node.call(log("before"));
    node.send_raw("this is not json");
    expect_line_error_12(&mut node, "not JSON");
    node.send_raw(r#"{"type": "log", "message": "#);
    expect_line_error_12(&mut node, "truncated JSON");
    assert_still_serving(&mut node);
    let found = node.call(json!({"type": "search_logs", "contains": "before"}));
    assert_eq!(found["logs"].as_array().map(Vec::len), Some(1), "{found}");
}

#[test]
fn empty_and_blank_lines_get_no_output() {
    let mut node = Node::spawn();
    node.send_raw("");
    node.send_raw("   \t  ");
    node.send_raw("");
    let reply = node.request(log("after blanks"));
    assert_eq!(reply["body"]["type"], "log_ok", "{reply}");
    let before = node.take_pending();
    assert!(before.is_empty(), "blank lines produced output: {before:?}");
    let (status, rest, _) = node.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "blank lines produced output: {rest:?}");
}

#[test]
fn json_that_is_not_an_object_gets_error_12() {
    let mut node = Node::spawn();
    for line in ["[1,2]", "42", "\"hello\"", "null", "true"] {
        node.send_raw(line);
        expect_line_error_12(&mut node, line);
    }
    assert_still_serving(&mut node);
}

#[test]
fn envelope_whose_body_is_not_an_object_gets_error_12() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c1","dest":"n1","body":42}"#);
    let line = node.recv();
    assert_error(&line["body"], 12, &["body"]);
    assert_still_serving(&mut node);
}

#[test]
fn body_without_type_gets_error_12_naming_type() {
    let mut node = Node::spawn();
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"msg_id": 5, "message": "x"}}));
    let reply = node.wait_reply(&json!(5));
    assert_error(&reply["body"], 12, &["type"]);
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": 3, "msg_id": 6}}));
    let reply = node.wait_reply(&json!(6));
    assert_error(&reply["body"], 12, &["type"]);
    assert_still_serving(&mut node);
}

#[test]
fn unknown_type_gets_error_10() {
    let mut node = Node::spawn();
    let body = node.call(json!({"type": "definitely_not_a_message"}));
    assert_error(&body, 10, &[]);
    node.send(&json!({"type": "frobnicate", "msg_id": 31}));
    let reply = node.wait_reply(&json!(31));
    assert_error(&reply["body"], 10, &[]);
    assert_still_serving(&mut node);
}

#[test]
fn missing_required_field_gets_error_12_naming_it() {
    let mut node = Node::spawn();
    let body = node.call(json!({"type": "log"}));
    assert_error(&body, 12, &["message"]);
    assert_still_serving(&mut node);
}

#[test]
fn wrongly_typed_field_gets_error_12_naming_it() {
    let mut node = Node::spawn();
    node.send(&json!({"type": "log", "msg_id": 5, "message": 42}));
    let reply = node.wait_reply(&json!(5));
    assert_error(&reply["body"], 12, &["message"]);
    assert_still_serving(&mut node);
}

#[test]
fn string_msg_id_gets_error_12_naming_msg_id() {
    let mut node = Node::spawn();
    node.send(
        &json!({"src": "c1", "dest": "n1", "body": {"type": "log", "msg_id": "5", "message": "x"}}),
    );
    let line = node.recv();
    assert_error(&line["body"], 12, &["msg_id"]);
    assert_still_serving(&mut node);
}

#[test]
fn a_line_over_the_limit_gets_error_12_and_the_node_goes_on() {
    let mut node = Node::spawn();
    node.call(log("kept before the huge line"));
    let huge = "a".repeat(9 * 1024 * 1024);
    let line =
        json!({"src": "c1", "dest": "n1", "body": {"type": "log", "msg_id": 77, "message": huge}});
    node.send(&line);
    drop(line);
    let reply = node
        .recv_timeout(Duration::from_secs(20))
        .expect("no reply to a 9 MiB line within 20 s");
    let body = &reply["body"];
    assert_error(body, 12, &[]);
    let text = body["text"].as_str().unwrap();
    let mentions_limit = regex::Regex::new(r"(?i)8\s*MiB|8388608|8_388_608|8,388,608").unwrap();
    assert!(
        mentions_limit.is_match(text),
        "the error text should mention the 8 MiB line limit: {text:?}"
    );
    assert_still_serving(&mut node);
    let all = node.call(json!({"type": "search_logs"}));
    let logs = all["logs"].as_array().expect("logs array");
    assert!(
        logs.iter()
            .any(|l| l["message"] == "kept before the huge line"),
        "earlier log lost"
    );
    assert!(
        logs.iter()
            .all(|l| l["message"].as_str().is_some_and(|m| m.len() < 1024)),
        "the oversized log was stored"
    );
}

#[test]
fn invalid_utf8_gets_error_12() {
    let mut node = Node::spawn();
    node.send_bytes(b"{\"type\":\"log\",\"msg_id\":41,\"message\":\"\xff\xfe bad\"}\n");
    let line = node.recv();
    assert_error(&line["body"], 12, &[]);
    node.send_bytes(b"\xc3\x28\n");
    let line = node.recv();
    assert_error(&line["body"], 12, &[]);
    assert_still_serving(&mut node);
}

#[test]
fn a_panicking_handler_gets_error_13_and_the_node_keeps_its_state() {
    let mut node = Node::spawn_with_env(&[("TRACER_DEBUG_HANDLERS", "1")]);
    node.call(json!({"type": "log", "message": "stored before the panic", "trace_id": "p1"}));
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": "debug_panic", "msg_id": 9}}));
    let reply = node.wait_reply(&json!(9));
    assert_error(&reply["body"], 13, &[]);
    // Once more: a panic does not poison anything.
    let again = node.call(json!({"type": "debug_panic"}));
    assert_error(&again, 13, &[]);
    assert_still_serving(&mut node);
    let found = node.call(json!({"type": "search_logs", "trace_id": "p1"}));
    assert_eq!(
        found["logs"],
        json!([{"service": "service", "message": "stored before the panic", "trace_id": "p1"}]),
        "logs stored before the panic"
    );
    let (status, _, _) = node.finish();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn debug_panic_is_unknown_without_the_debug_env() {
    let mut node = Node::spawn();
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": "debug_panic", "msg_id": 9}}));
    let reply = node.wait_reply(&json!(9));
    assert_error(&reply["body"], 10, &[]);
    assert_still_serving(&mut node);
}

#[test]
fn closing_stdin_exits_0() {
    let node = Node::spawn();
    let (status, rest, _) = node.finish();
    assert_eq!(status.code(), Some(0), "exit with no input");
    assert!(rest.is_empty(), "{rest:?}");

    let mut node = Node::spawn();
    node.call(log("one"));
    node.send(&json!({"type": "log", "message": "no reply"}));
    let (status, rest, _) = node.finish();
    assert_eq!(status.code(), Some(0), "exit after requests");
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn a_burst_of_10000_requests_is_answered_in_order() {
    const N: u64 = 10_000;
    let mut node = Node::spawn();
    let mut burst = String::new();
    for i in 1..=N {
        burst.push_str(
            &json!({"src": "c1", "dest": "n1", "body": {"type": "log", "msg_id": i, "message": format!("burst {i}")}})
                .to_string(),
        );
        burst.push('\n');
    }
    node.send_bytes(burst.as_bytes());
    for i in 1..=N {
        let line = node
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("only {} of {N} replies arrived", i - 1));
        assert_eq!(line["body"]["type"], "log_ok", "reply {i}: {line}");
        assert_eq!(
            line["body"]["in_reply_to"], i,
            "reply {i} out of order: {line}"
        );
    }
    let (status, rest, _) = node.finish();
    assert!(status.success());
    assert!(rest.is_empty(), "{} extra lines", rest.len());
}

/// `tracer-node < input | head -1`: once stdout is closed no reply can be
/// delivered; the node says so on stderr and exits non-zero instead of
/// passing for a run that served its input.
#[test]
fn a_closed_stdout_stops_the_node_with_a_non_zero_exit() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let mut child = Command::new(tests::node_bin())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdin
        .write_all(b"{\"type\":\"log\",\"msg_id\":1,\"message\":\"m\"}\n")
        .unwrap();
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("log_ok"), "{first}");
    drop(stdout); // `head -1` is done reading
    let writer = std::thread::spawn(move || {
        let line = b"{\"type\":\"log\",\"msg_id\":2,\"message\":\"m\"}\n";
        for _ in 0..200_000 {
            if stdin.write_all(line).is_err() {
                break; // the node stopped reading: that is the point
            }
        }
    });
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "exit status {status}");
    assert!(err.contains("stdout was closed"), "{err}");
}

/// A line the parser refuses is answered with what can still be read of
/// it: from its `dest` to its `src`, in reply to its `msg_id`, the text
/// naming the field and the byte offset.
#[track_caller]
fn expect_refused(node: &mut Node, msg_id: u64, text: &str) {
    let reply = node.wait_reply(&json!(msg_id));
    assert_eq!(reply["src"], "n", "from the line's dest: {reply}");
    assert_eq!(reply["dest"], "c", "to the line's src: {reply}");
    assert_error(&reply["body"], 12, &[]);
    assert_eq!(reply["body"]["text"], text, "{reply}");
}

#[test]
fn invalid_utf8_in_a_field_is_answered_to_the_sender_naming_the_field() {
    let mut node = Node::spawn();
    node.send_bytes(
        b"{\"src\":\"c\",\"dest\":\"n\",\"body\":{\"type\":\"log\",\"msg_id\":41,\"message\":\"ok \xff bad\"}}\n",
    );
    expect_refused(&mut node, 41, "field `message`: invalid UTF-8 at byte 69");
    assert_still_serving(&mut node);
}

#[test]
fn a_bare_body_with_invalid_utf8_is_answered_in_reply_to_its_msg_id() {
    let mut node = Node::spawn();
    node.send_bytes(b"{\"msg_id\":7,\"type\":\"log\",\"message\":\"\xff\"}\n");
    let reply = node.wait_reply(&json!(7));
    assert_eq!(reply["dest"], "client", "no envelope seen yet: {reply}");
    assert_eq!(reply["src"], "tracer", "{reply}");
    assert_error(&reply["body"], 12, &[]);
    assert_eq!(
        reply["body"]["text"], "field `message`: invalid UTF-8 at byte 36",
        "{reply}"
    );
    assert_still_serving(&mut node);
}

#[test]
fn a_control_character_in_a_string_is_answered_to_the_sender_naming_the_field() {
    let mut node = Node::spawn();
    node.send_bytes(
        b"{\"src\":\"c\",\"dest\":\"n\",\"body\":{\"type\":\"log\",\"msg_id\":42,\"message\":\"ok \x01 bad\"}}\n",
    );
    expect_refused(
        &mut node,
        42,
        "field `message`: control character in a string at byte 69",
    );
    assert_still_serving(&mut node);
}

#[test]
fn a_trailing_comma_in_the_body_is_answered_to_the_sender_with_its_offset() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c","dest":"n","body":{"type":"log","msg_id":43,"message":"a",}}"#);
    expect_refused(
        &mut node,
        43,
        "not valid JSON: trailing comma at byte 68: expected another member after `,`, found `}`",
    );
    assert_still_serving(&mut node);
}

#[test]
fn a_duplicate_key_gets_error_12_naming_it() {
    let mut node = Node::spawn();
    node.send_raw(
        r#"{"src":"c","dest":"n","body":{"type":"log","msg_id":7,"message":"a","message":"b"}}"#,
    );
    expect_refused(&mut node, 7, "duplicate field `message`");
    let found = node.call(json!({"type": "search_logs"}));
    assert_eq!(found["logs"], json!([]), "nothing was stored: {found}");
    assert_still_serving(&mut node);
}

#[test]
fn a_body_that_is_a_list_gets_error_12_saying_so() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c","dest":"n","body":["stats",5]}"#);
    let line = node.recv();
    assert_eq!(line["src"], "n", "{line}");
    assert_eq!(line["dest"], "c", "{line}");
    assert_eq!(
        line["body"],
        json!({"type": "error", "code": 12, "text": "field `body` must be a JSON object"}),
        "no msg_id, so no in_reply_to: {line}"
    );
    assert_still_serving(&mut node);
}
