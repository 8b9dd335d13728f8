//! Remote-driven spans (`create_span`, `span_event`, `span_link`,
//! `span_end`, `span_error`), reading them back (`get_span`, `get_trace`),
//! and `parse_traceparent`.

use serde_json::{json, Value};
use std::time::Duration;
use tests::{assert_error, assert_keys, is_span_id, trace_id_bits, uuid_v4_re, Node};

fn create(node: &mut Node, body: Value) -> String {
    let mut body = body;
    body["type"] = json!("create_span");
    let r = node.call(body);
    assert_eq!(r["type"], "span_created", "{r}");
    assert_keys(&r, &["type", "in_reply_to", "span_id", "kind"]);
    let id = r["span_id"].as_str().unwrap().to_owned();
    assert!(is_span_id(&id), "{r}");
    id
}

fn end(node: &mut Node, span_id: &str) -> Value {
    let r = node.call(json!({"type": "span_end", "span_id": span_id}));
    assert_eq!(r["type"], "span_complete", "{r}");
    r
}

fn get_span(node: &mut Node, span_id: &str) -> Value {
    let r = node.call(json!({"type": "get_span", "span_id": span_id}));
    assert_eq!(r["type"], "span", "{r}");
    r
}

#[test]
fn create_then_end_reports_duration_and_status() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "checkout", "kind": "server"}));
    std::thread::sleep(Duration::from_millis(30));
    let r = node.call(json!({"type": "span_end", "span_id": id, "status": "ok"}));
    assert_keys(
        &r,
        &["type", "in_reply_to", "span_id", "duration_us", "status"],
    );
    assert_eq!(r["type"], "span_complete");
    assert_eq!(r["span_id"], id.as_str());
    assert_eq!(r["status"], "OK");
    let us = r["duration_us"].as_u64().unwrap();
    assert!(
        (30_000..5_000_000).contains(&us),
        "duration {us} us after a 30 ms sleep"
    );
    let s = get_span(&mut node, &id);
    assert_eq!(s["name"], "checkout");
    assert_eq!(s["kind"], "SERVER");
    assert_eq!(s["status"], "OK");
    assert_eq!(s["duration_us"], us);
    assert_eq!(s["parent_span_id"], Value::Null);
    assert!(
        uuid_v4_re().is_match(s["trace_id"].as_str().unwrap()),
        "{s}"
    );
    node.finish();
}

#[test]
fn get_span_has_the_fields_of_a_get_trace_span_plus_trace_id() {
    let mut node = Node::spawn();
    let id = create(
        &mut node,
        json!({"name": "op", "attributes": {"service.name": "pay"}}),
    );
    end(&mut node, &id);
    let s = get_span(&mut node, &id);
    let tid = s["trace_id"].as_str().unwrap().to_owned();
    let t = node.call(json!({"type": "get_trace", "trace_id": tid}));
    let mut from_trace = t["spans"][0].clone();
    from_trace["type"] = json!("span");
    from_trace["trace_id"] = json!(tid);
    from_trace["in_reply_to"] = s["in_reply_to"].clone();
    assert_eq!(s, from_trace);
    assert_eq!(s["service"], "pay");
    node.finish();
}

#[test]
fn kind_is_read_in_any_case_and_answered_upper_case() {
    let mut node = Node::spawn();
    for (given, want) in [
        (json!("client"), "CLIENT"),
        (json!("Producer"), "PRODUCER"),
        (json!("CONSUMER"), "CONSUMER"),
        (json!("internal"), "INTERNAL"),
        (json!("sErVeR"), "SERVER"),
    ] {
        let r = node.call(json!({"type": "create_span", "name": "k", "kind": given}));
        assert_eq!(r["kind"], want, "{given}: {r}");
    }
    let r = node.call(json!({"type": "create_span", "name": "k"}));
    assert_eq!(r["kind"], "INTERNAL", "default kind: {r}");
    node.finish();
}

#[test]
fn span_error_sets_error_and_records_an_exception() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "charge"}));
    let r = node.call(json!({"type": "span_error", "span_id": id, "error": "card declined"}));
    assert_keys(
        &r,
        &[
            "type",
            "in_reply_to",
            "span_id",
            "duration_us",
            "status",
            "error",
        ],
    );
    assert_eq!(r["status"], "ERROR");
    assert_eq!(r["error"], "card declined");
    let s = get_span(&mut node, &id);
    assert_eq!(s["status"], "ERROR");
    assert_eq!(s["status_message"], "card declined");
    let ev = &s["events"][0];
    assert_eq!(ev["name"], "exception", "{s}");
    assert_eq!(ev["attributes"]["exception.message"], "card declined");
    node.finish();
}

#[test]
fn span_end_with_status_error_carries_its_description() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"}));
    let r = node.call(
        json!({"type": "span_end", "span_id": id, "status": "error", "description": "timeout"}),
    );
    assert_eq!(
        (&r["status"], &r["error"]),
        (&json!("ERROR"), &json!("timeout")),
        "{r}"
    );
    let id = create(&mut node, json!({"name": "y"}));
    let r = node.call(json!({"type": "span_end", "span_id": id, "status": "UNSET"}));
    assert_eq!(r["status"], "UNSET");
    assert!(r.get("error").is_none(), "{r}");
    node.finish();
}

#[test]
fn events_links_and_attributes_are_recorded() {
    let mut node = Node::spawn();
    let id = create(
        &mut node,
        json!({"name": "op", "attributes": {"user": "ada", "n": 3, "ratio": 0.5, "ok": true, "tags": ["a", "b"]}}),
    );
    let r = node.call(json!({"type": "span_event", "span_id": id, "event": "retry", "attributes": {"attempt": 2}}));
    assert_keys(&r, &["type", "in_reply_to"]);
    assert_eq!(r["type"], "span_event_ok");
    let r = node.call(json!({
        "type": "span_link", "span_id": id,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "linked_span_id": "00f067aa0ba902b7"
    }));
    assert_keys(&r, &["type", "in_reply_to"]);
    assert_eq!(r["type"], "span_link_ok");
    end(&mut node, &id);
    let s = get_span(&mut node, &id);
    assert_eq!(
        s["attributes"],
        json!({"user": "ada", "n": 3, "ratio": 0.5, "ok": true, "tags": ["a", "b"]})
    );
    assert_eq!(s["events"][0]["name"], "retry");
    assert_eq!(s["events"][0]["attributes"], json!({"attempt": 2}));
    assert_eq!(
        s["links"],
        json!([{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"}])
    );
    node.finish();
}

#[test]
fn a_child_joins_its_parents_trace_open_or_ended() {
    let mut node = Node::spawn();
    let root = create(&mut node, json!({"name": "root"}));
    let open_child = create(&mut node, json!({"name": "a", "parent_span_id": root}));
    end(&mut node, &open_child);
    end(&mut node, &root);
    let late_child = create(&mut node, json!({"name": "b", "parent_span_id": root}));
    end(&mut node, &late_child);

    let r = get_span(&mut node, &root);
    let tid = r["trace_id"].as_str().unwrap().to_owned();
    assert!(uuid_v4_re().is_match(&tid), "{r}");
    for child in [&open_child, &late_child] {
        let c = get_span(&mut node, child);
        assert_eq!(c["trace_id"], tid.as_str(), "{c}");
        assert_eq!(c["parent_span_id"], root.as_str(), "{c}");
    }
    // The other spelling of the same 128 bits finds the trace too.
    let hex = trace_id_bits(&tid).unwrap();
    let t = node.call(json!({"type": "get_trace", "trace_id": hex}));
    assert_eq!(t["trace_id"], hex.as_str());
    let names: Vec<&str> = t["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["root", "a", "b"]);
    node.finish();
}

#[test]
fn an_opaque_trace_id_groups_spans_and_is_echoed() {
    let mut node = Node::spawn();
    let a = create(&mut node, json!({"name": "a", "trace_id": "abc123"}));
    let b = create(
        &mut node,
        json!({"name": "b", "trace_id": "abc123", "parent_span_id": a}),
    );
    let c = create(&mut node, json!({"name": "c", "trace_id": "abc123"}));
    for id in [&b, &a, &c] {
        end(&mut node, id);
    }
    let t = node.call(json!({"type": "get_trace", "trace_id": "abc123"}));
    assert_eq!(t["type"], "trace", "{t}");
    assert_eq!(t["trace_id"], "abc123");
    let spans = t["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{t}");
    let by_name = |n: &str| spans.iter().find(|s| s["name"] == n).unwrap().clone();
    assert_eq!(
        by_name("a")["parent_span_id"],
        Value::Null,
        "a root in a client's trace: {t}"
    );
    assert_eq!(by_name("c")["parent_span_id"], Value::Null, "{t}");
    assert_eq!(by_name("b")["parent_span_id"], a.as_str());
    assert_eq!(get_span(&mut node, &b)["trace_id"], "abc123");
    // Only the exact string finds an opaque trace.
    for other in ["ABC123", "abc12"] {
        let r = node.call(json!({"type": "get_trace", "trace_id": other}));
        assert_error(&r, 20, &[other]);
    }
    node.finish();
}

#[test]
fn a_client_hex_trace_id_is_echoed_exactly_and_found_by_either_spelling() {
    let mut node = Node::spawn();
    let given = "4BF92F3577B34DA6A3CE929D0E0E4736";
    let id = create(&mut node, json!({"name": "x", "trace_id": given}));
    end(&mut node, &id);
    assert_eq!(get_span(&mut node, &id)["trace_id"], given);
    let uuid = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736";
    let t = node.call(json!({"type": "get_trace", "trace_id": uuid}));
    assert_eq!(t["trace_id"], uuid);
    assert_eq!(t["spans"][0]["span_id"], id.as_str());
    node.finish();
}

#[test]
fn an_unknown_parent_starts_a_new_trace_that_keeps_the_parent_id() {
    let mut node = Node::spawn();
    let id = create(
        &mut node,
        json!({"name": "x", "parent_span_id": "00f067aa0ba902b7"}),
    );
    end(&mut node, &id);
    let s = get_span(&mut node, &id);
    assert_eq!(s["parent_span_id"], "00f067aa0ba902b7");
    assert!(
        uuid_v4_re().is_match(s["trace_id"].as_str().unwrap()),
        "{s}"
    );
    node.finish();
}

#[test]
fn ending_twice_is_22_and_unknown_spans_are_20() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"}));
    end(&mut node, &id);
    let ops = |span: &str| {
        vec![
            json!({"type": "span_end", "span_id": span}),
            json!({"type": "span_error", "span_id": span, "error": "e"}),
            json!({"type": "span_event", "span_id": span, "event": "e"}),
            json!({"type": "span_link", "span_id": span, "trace_id": "t", "linked_span_id": "s"}),
        ]
    };
    for body in ops(&id) {
        let r = node.call(body.clone());
        assert_error(&r, 22, &[id.as_str(), "ended"]);
    }
    for body in ops("00000000000000aa").into_iter().chain(ops("nope")) {
        let r = node.call(body.clone());
        assert_error(&r, 20, &[body["span_id"].as_str().unwrap()]);
    }
    let r = node.call(json!({"type": "get_span", "span_id": "00000000000000aa"}));
    assert_error(&r, 20, &["00000000000000aa"]);
    // An open span is not stored yet.
    let open = create(&mut node, json!({"name": "open"}));
    let r = node.call(json!({"type": "get_span", "span_id": open}));
    assert_error(&r, 20, &[open.as_str()]);
    node.finish();
}

#[test]
fn notices_about_a_span_go_to_its_creator() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"})); // created by c1
    let reply = node.request_to("c2", "n1", json!({"type": "span_end", "span_id": id}));
    assert_eq!(reply["dest"], "c2");
    assert_eq!(reply["body"]["type"], "span_complete");
    let notices: Vec<Value> = node
        .history()
        .iter()
        .filter(|l| l["dest"] == "c1" && l["body"]["type"] == "span_complete")
        .cloned()
        .collect();
    assert_eq!(
        notices.len(),
        1,
        "one notice to the creator: {:?}",
        node.history()
    );
    let n = &notices[0]["body"];
    assert_eq!(n["span_id"], id.as_str());
    assert_eq!(n["duration_us"], reply["body"]["duration_us"]);
    assert!(
        n.get("in_reply_to").is_none()
            && n.get("msg_id").is_none()
            && n.get("traceparent").is_none(),
        "a notice to a client carries its documented fields only: {n}"
    );

    // The creator ending its own span gets the reply only.
    let seen = node.take_pending();
    assert_eq!(seen, notices, "only the notice was pending");
    let id = create(&mut node, json!({"name": "y"}));
    end(&mut node, &id);
    let (_, rest, _) = node.finish();
    assert!(rest.is_empty(), "no extra notice: {rest:?}");
}

#[test]
fn span_end_without_msg_id_still_answers() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"}));
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": "span_end", "span_id": id}}));
    let line = node.recv();
    assert_eq!(line["dest"], "c1");
    assert_keys(&line["body"], &["type", "span_id", "duration_us", "status"]);
    assert_eq!(line["body"]["span_id"], id.as_str());
    node.finish();
}

#[test]
fn bad_input_is_error_12_naming_the_field() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"}));
    let many: serde_json::Map<String, Value> =
        (0..129).map(|i| (format!("k{i}"), json!(i))).collect();
    let cases = [
        (json!({"type": "create_span"}), "name"),
        (json!({"type": "create_span", "name": 42}), "name"),
        (json!({"type": "create_span", "name": ""}), "name"),
        (
            json!({"type": "create_span", "name": "n", "kind": 5}),
            "kind",
        ),
        (
            json!({"type": "create_span", "name": "n", "kind": "weird"}),
            "kind",
        ),
        (
            json!({"type": "create_span", "name": "n", "trace_id": 7}),
            "trace_id",
        ),
        (
            json!({"type": "create_span", "name": "n", "trace_id": ""}),
            "trace_id",
        ),
        (
            json!({"type": "create_span", "name": "n", "trace_id": "00000000000000000000000000000000"}),
            "trace_id",
        ),
        (
            json!({"type": "create_span", "name": "n", "parent_span_id": 1}),
            "parent_span_id",
        ),
        (
            json!({"type": "create_span", "name": "n", "parent_span_id": ""}),
            "parent_span_id",
        ),
        (
            json!({"type": "create_span", "name": "n", "attributes": "x"}),
            "attributes",
        ),
        (
            json!({"type": "create_span", "name": "n", "attributes": {"a": null}}),
            "attributes.a",
        ),
        (
            json!({"type": "create_span", "name": "n", "attributes": {"a": {"b": 1}}}),
            "attributes.a",
        ),
        (
            json!({"type": "create_span", "name": "n", "attributes": {"a": [1, "x"]}}),
            "attributes.a",
        ),
        (
            json!({"type": "create_span", "name": "n", "attributes": many}),
            "attributes",
        ),
        (json!({"type": "span_event", "event": "e"}), "span_id"),
        (json!({"type": "span_event", "span_id": id}), "event"),
        (
            json!({"type": "span_event", "span_id": id, "event": ""}),
            "event",
        ),
        (
            json!({"type": "span_event", "span_id": id, "event": "e", "attributes": [1]}),
            "attributes",
        ),
        (
            json!({"type": "span_link", "span_id": id, "linked_span_id": "s"}),
            "trace_id",
        ),
        (
            json!({"type": "span_link", "span_id": id, "trace_id": "t"}),
            "linked_span_id",
        ),
        (
            json!({"type": "span_link", "span_id": id, "trace_id": "t", "linked_span_id": ""}),
            "linked_span_id",
        ),
        (json!({"type": "span_end"}), "span_id"),
        (json!({"type": "span_end", "span_id": 3}), "span_id"),
        (
            json!({"type": "span_end", "span_id": id, "status": "done"}),
            "status",
        ),
        (
            json!({"type": "span_end", "span_id": id, "status": 1}),
            "status",
        ),
        (json!({"type": "span_error", "span_id": id}), "error"),
        (
            json!({"type": "span_error", "span_id": id, "error": 5}),
            "error",
        ),
        (json!({"type": "get_span"}), "span_id"),
        (json!({"type": "get_span", "span_id": []}), "span_id"),
        (json!({"type": "parse_traceparent"}), "traceparent"),
        (
            json!({"type": "parse_traceparent", "traceparent": 1}),
            "traceparent",
        ),
    ];
    for (body, field) in cases {
        let r = node.call(body.clone());
        assert_error(&r, 12, &[field]);
    }
    // None of that touched the span.
    let r = node.call(json!({"type": "span_end", "span_id": id, "status": "OK"}));
    assert_eq!(r["status"], "OK", "{r}");
    let s = get_span(&mut node, &id);
    assert_eq!(s["events"], json!([]));
    assert_eq!(s["links"], json!([]));
    node.finish();
}

#[test]
fn parse_traceparent_reads_each_part() {
    let mut node = Node::spawn();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = node.call(json!({"type": "parse_traceparent", "traceparent": tp}));
    assert_keys(
        &r,
        &[
            "type",
            "in_reply_to",
            "trace_id",
            "parent_span_id",
            "sampled",
        ],
    );
    assert_eq!(r["type"], "parse_ok");
    assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r["parent_span_id"], "00f067aa0ba902b7");
    assert_eq!(r["sampled"], true);
    let r =
        node.call(json!({"type": "parse_traceparent", "traceparent": tp.replace("-01", "-00")}));
    assert_eq!(r["sampled"], false);
    for (bad, part) in [
        (
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "version",
        ),
        (
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "trace-id",
        ),
        (
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "trace-id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "parent-id",
        ),
        (
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "trace-flags",
        ),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736", "55 characters"),
        (
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "separated",
        ),
    ] {
        let r = node.call(json!({"type": "parse_traceparent", "traceparent": bad}));
        assert_error(&r, 12, &["traceparent", part]);
    }
    node.finish();
}

#[test]
fn open_spans_are_capped_and_the_oldest_is_ended_by_the_node() {
    let mut node = Node::spawn();
    let first = create(&mut node, json!({"name": "first"}));
    let second = create(&mut node, json!({"name": "second"}));
    // 9,998 more without msg_id (no reply): the cap of 10,000 is reached.
    let mut burst = String::new();
    for _ in 0..9_998 {
        burst.push_str(r#"{"src":"c1","dest":"n1","body":{"type":"create_span","name":"bulk"}}"#);
        burst.push('\n');
    }
    node.send_bytes(burst.as_bytes());
    let r = node.call(json!({"type": "span_event", "span_id": first, "event": "still open"}));
    assert_eq!(r["type"], "span_event_ok", "10,000 open spans fit: {r}");
    create(&mut node, json!({"name": "one too many"}));
    let r = node.call(json!({"type": "span_end", "span_id": first}));
    assert_error(&r, 22, &["ended by the node"]);
    let s = get_span(&mut node, &first);
    assert_eq!(
        s["events"][0]["name"], "still open",
        "the evicted span is stored: {s}"
    );
    let r = node.call(json!({"type": "span_end", "span_id": second}));
    assert_eq!(
        r["type"], "span_complete",
        "the second oldest is still open: {r}"
    );
    node.finish();
}

#[test]
fn events_per_span_are_capped() {
    let mut node = Node::spawn();
    let id = create(&mut node, json!({"name": "x"}));
    let mut burst = String::new();
    for i in 0..128 {
        burst.push_str(
            &json!({"type": "span_event", "span_id": id, "event": format!("e{i}")}).to_string(),
        );
        burst.push('\n');
    }
    node.send_bytes(burst.as_bytes());
    let r = node.call(json!({"type": "span_event", "span_id": id, "event": "over"}));
    assert_error(&r, 22, &["128 events"]);
    end(&mut node, &id);
    assert_eq!(
        get_span(&mut node, &id)["events"].as_array().unwrap().len(),
        128
    );
    node.finish();
}
