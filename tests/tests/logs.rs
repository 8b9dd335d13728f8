//! Log-trace correlation: `log` and `search_logs`.

use serde_json::{json, Value};
use tests::{assert_error, assert_keys, Node};

fn search(node: &mut Node, filters: Value) -> Vec<Value> {
    let mut body = filters;
    body["type"] = json!("search_logs");
    let reply = node.call(body);
    assert_eq!(reply["type"], "search_results", "{reply}");
    assert_keys(&reply, &["type", "in_reply_to", "logs"]);
    reply["logs"].as_array().expect("logs is an array").clone()
}

fn messages(logs: &[Value]) -> Vec<&str> {
    logs.iter()
        .map(|l| l["message"].as_str().expect("message is a string"))
        .collect()
}

fn store(node: &mut Node, entry: Value) {
    let mut body = entry;
    body["type"] = json!("log");
    let reply = node.call(body);
    assert_eq!(reply["type"], "log_ok", "{reply}");
}

/// A node holding five logs with assorted traces, services and levels.
fn populated() -> Node {
    let mut node = Node::spawn();
    for entry in [
        json!({"message": "alpha start", "trace_id": "t1", "service": "web", "level": "INFO"}),
        json!({"message": "beta", "trace_id": "t2", "service": "api", "level": "ERROR"}),
        json!({"message": "alpha end", "trace_id": "t1", "service": "api", "level": "ERROR"}),
        json!({"message": "gamma"}),
        json!({"message": "alpha again", "trace_id": "t1", "service": "web", "level": "ERROR"}),
    ] {
        store(&mut node, entry);
    }
    node
}

#[test]
fn log_replies_log_ok_with_no_extra_fields() {
    let mut node = Node::spawn();
    let reply = node.call(json!({"type": "log", "message": "m", "trace_id": "t", "level": "INFO"}));
    assert_keys(&reply, &["type", "in_reply_to"]);
    assert_eq!(reply["type"], "log_ok");
}

#[test]
fn log_without_msg_id_gets_no_reply_but_is_stored() {
    let mut node = Node::spawn();
    node.send(&json!({"src": "c1", "dest": "n1", "body": {"type": "log", "message": "silent"}}));
    let logs = search(&mut node, json!({}));
    let stray = node.take_pending();
    assert!(
        stray.is_empty(),
        "log without msg_id was answered: {stray:?}"
    );
    assert_eq!(messages(&logs), ["silent"]);
    let (_, rest, _) = node.finish();
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn no_filter_returns_every_entry_oldest_first() {
    let mut node = populated();
    let logs = search(&mut node, json!({}));
    assert_eq!(
        messages(&logs),
        ["alpha start", "beta", "alpha end", "gamma", "alpha again"]
    );
}

#[test]
fn filter_by_trace_id() {
    let mut node = populated();
    let logs = search(&mut node, json!({"trace_id": "t1"}));
    assert_eq!(messages(&logs), ["alpha start", "alpha end", "alpha again"]);
    assert!(search(&mut node, json!({"trace_id": "t9"})).is_empty());
}

#[test]
fn filter_by_service() {
    let mut node = populated();
    let logs = search(&mut node, json!({"service": "api"}));
    assert_eq!(messages(&logs), ["beta", "alpha end"]);
    let logs = search(&mut node, json!({"service": "service"}));
    assert_eq!(messages(&logs), ["gamma"], "default service is \"service\"");
}

#[test]
fn filter_by_level() {
    let mut node = populated();
    let logs = search(&mut node, json!({"level": "ERROR"}));
    assert_eq!(messages(&logs), ["beta", "alpha end", "alpha again"]);
    let logs = search(&mut node, json!({"level": "INFO"}));
    assert_eq!(messages(&logs), ["alpha start"]);
}

#[test]
fn filter_by_contains() {
    let mut node = populated();
    let logs = search(&mut node, json!({"contains": "alpha"}));
    assert_eq!(messages(&logs), ["alpha start", "alpha end", "alpha again"]);
    let logs = search(&mut node, json!({"contains": "end"}));
    assert_eq!(messages(&logs), ["alpha end"]);
    assert!(search(&mut node, json!({"contains": "delta"})).is_empty());
}

#[test]
fn filters_combine_with_and() {
    let mut node = populated();
    let logs = search(&mut node, json!({"trace_id": "t1", "level": "ERROR"}));
    assert_eq!(messages(&logs), ["alpha end", "alpha again"]);
    let logs = search(
        &mut node,
        json!({"trace_id": "t1", "level": "ERROR", "service": "web"}),
    );
    assert_eq!(messages(&logs), ["alpha again"]);
    let logs = search(&mut node, json!({"service": "api", "contains": "alpha"}));
    assert_eq!(messages(&logs), ["alpha end"]);
    assert!(search(&mut node, json!({"trace_id": "t2", "service": "web"})).is_empty());
}

#[test]
fn limit_caps_the_results_keeping_oldest_first_order() {
    let mut node = populated();
    let all = search(&mut node, json!({}));
    let order = messages(&all);
    let logs = search(&mut node, json!({"limit": 2}));
    assert_eq!(logs.len(), 2, "{logs:?}");
    let got = messages(&logs);
    let positions: Vec<usize> = got
        .iter()
        .map(|m| order.iter().position(|o| o == m).expect("a stored message"))
        .collect();
    assert!(positions[0] < positions[1], "not oldest first: {got:?}");
    let logs = search(&mut node, json!({"trace_id": "t1", "limit": 1}));
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(search(&mut node, json!({"limit": 0})).len(), 0);
    assert_eq!(search(&mut node, json!({"limit": 50})).len(), 5);
}

#[test]
fn default_limit_is_1000() {
    let mut node = Node::spawn();
    let mut burst = String::new();
    for i in 0..1005 {
        burst.push_str(&json!({"type": "log", "message": format!("entry {i}")}).to_string());
        burst.push('\n');
    }
    node.send_bytes(burst.as_bytes());
    let logs = search(&mut node, json!({}));
    assert_eq!(logs.len(), 1000);
    let logs = search(&mut node, json!({"limit": 2000}));
    assert_eq!(logs.len(), 1005);
    assert_eq!(logs[0]["message"], "entry 0");
    assert_eq!(logs[1004]["message"], "entry 1004");
}

#[test]
fn default_service_is_service() {
    let mut node = Node::spawn();
    store(&mut node, json!({"message": "m"}));
    let logs = search(&mut node, json!({}));
    assert_eq!(logs, [json!({"service": "service", "message": "m"})]);
}

#[test]
fn entry_shape_has_only_the_fields_the_log_had() {
    let mut node = Node::spawn();
    store(&mut node, json!({"message": "bare"}));
    store(&mut node, json!({"message": "traced", "trace_id": "t"}));
    store(
        &mut node,
        json!({
            "message": "full", "trace_id": "t", "span_id": "s1", "service": "web",
            "level": "WARN", "attributes": {"user.id": 42, "ok": true, "nested": {"a": [1]}}
        }),
    );
    store(&mut node, json!({"message": "leveled", "level": "DEBUG"}));
    let logs = search(&mut node, json!({}));
    assert_eq!(
        logs,
        [
            json!({"service": "service", "message": "bare"}),
            json!({"service": "service", "message": "traced", "trace_id": "t"}),
            json!({
                "service": "web", "message": "full", "trace_id": "t", "span_id": "s1",
                "level": "WARN", "attributes": {"user.id": 42, "ok": true, "nested": {"a": [1]}}
            }),
            json!({"service": "service", "message": "leveled", "level": "DEBUG"}),
        ]
    );
}

#[test]
fn ids_are_echoed_exactly_as_sent() {
    let mut node = Node::spawn();
    store(
        &mut node,
        json!({"message": "m", "trace_id": "AbC-123", "span_id": "00F067AA0BA902B7"}),
    );
    let logs = search(&mut node, json!({"trace_id": "AbC-123"}));
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["trace_id"], "AbC-123");
    assert_eq!(logs[0]["span_id"], "00F067AA0BA902B7");
}

#[test]
fn hex_and_uuid_spellings_of_a_trace_id_are_one_trace() {
    let mut node = Node::spawn();
    store(
        &mut node,
        json!({"message": "hex", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
    );
    store(
        &mut node,
        json!({"message": "other", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4737"}),
    );
    store(
        &mut node,
        json!({"message": "uuid", "trace_id": "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736"}),
    );
    for spelling in [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",
        "4BF92F3577B34DA6A3CE929D0E0E4736",
        "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736",
    ] {
        let logs = search(&mut node, json!({"trace_id": spelling}));
        assert_eq!(messages(&logs), ["hex", "uuid"], "searching {spelling}");
        assert_eq!(
            logs[0]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "logged spelling kept"
        );
        assert_eq!(
            logs[1]["trace_id"], "4BF92F35-77B3-4DA6-A3CE-929D0E0E4736",
            "logged spelling kept"
        );
    }
}

#[test]
fn opaque_trace_ids_match_only_themselves() {
    let mut node = Node::spawn();
    store(&mut node, json!({"message": "m", "trace_id": "abc123"}));
    assert_eq!(
        messages(&search(&mut node, json!({"trace_id": "abc123"}))),
        ["m"]
    );
    assert!(search(&mut node, json!({"trace_id": "ABC123"})).is_empty());
    assert!(search(&mut node, json!({"trace_id": "abc-123"})).is_empty());
    assert!(search(&mut node, json!({"trace_id": "abc12"})).is_empty());
}

#[test]
fn bad_message_gets_error_12_and_is_not_stored() {
    let mut node = Node::spawn();
    assert_error(&node.call(json!({"type": "log"})), 12, &["message"]);
    assert_error(
        &node.call(json!({"type": "log", "message": 42})),
        12,
        &["message"],
    );
    assert_error(
        &node.call(json!({"type": "log", "message": null})),
        12,
        &["message"],
    );
    assert_error(
        &node.call(json!({"type": "log", "message": ["a"]})),
        12,
        &["message"],
    );
    assert!(search(&mut node, json!({})).is_empty());
}

#[test]
fn non_string_trace_id_gets_error_12() {
    let mut node = Node::spawn();
    let body = node.call(json!({"type": "log", "message": "m", "trace_id": 123}));
    assert_error(&body, 12, &["trace_id"]);
    let body = node.call(json!({"type": "search_logs", "trace_id": 123}));
    assert_error(&body, 12, &["trace_id"]);
    assert!(search(&mut node, json!({})).is_empty());
}

#[test]
fn bad_limit_gets_error_12() {
    let mut node = populated();
    for limit in [json!(-1), json!(1.5), json!("10"), json!([3])] {
        let body = node.call(json!({"type": "search_logs", "limit": limit}));
        assert_error(&body, 12, &["limit"]);
    }
    assert_eq!(search(&mut node, json!({})).len(), 5);
}

#[test]
fn non_object_attributes_get_error_12() {
    let mut node = Node::spawn();
    for attributes in [json!("x"), json!([1, 2]), json!(7)] {
        let body = node.call(json!({"type": "log", "message": "m", "attributes": attributes}));
        assert_error(&body, 12, &["attributes"]);
    }
    assert!(search(&mut node, json!({})).is_empty());
}
