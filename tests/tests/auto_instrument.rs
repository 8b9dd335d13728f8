//! Auto-instrumentation: `instrument_service`, `http_request`, `get_trace`.

use serde_json::{json, Value};
use tests::{assert_error, assert_keys, is_span_id, trace_id_bits, uuid_v4_re, Node};

const PATH: &str = "/api/users/123";
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const HEADER_PARENT: &str = "00f067aa0ba902b7";

fn instrument(node: &mut Node, services: Value, auto: Option<bool>) -> Value {
    let mut body = json!({"type": "instrument_service", "services": services});
    if let Some(auto) = auto {
        body["auto"] = json!(auto);
    }
    node.request_to("instrumentor", "services", body)["body"].clone()
}

/// A node whose call chain is web -> api -> db.
fn web_api_db() -> Node {
    let mut node = Node::spawn();
    let ok = instrument(&mut node, json!(["web", "api", "db"]), Some(true));
    assert_eq!(ok["type"], "instrument_service_ok", "{ok}");
    node
}

/// `http_request` to `dest` with extra fields; returns the reply body.
fn http(node: &mut Node, dest: &str, extra: Value) -> Value {
    let mut body = json!({"type": "http_request", "path": PATH});
    for (k, v) in extra.as_object().expect("extra is an object") {
        body[k] = v.clone();
    }
    node.request_to("user", dest, body)["body"].clone()
}

#[track_caller]
fn assert_trace_complete(body: &Value, services: &[&str]) -> String {
    assert_eq!(body["type"], "trace_complete", "{body}");
    assert_keys(
        body,
        &["type", "in_reply_to", "trace_id", "services", "span_count"],
    );
    assert_eq!(body["services"], json!(services), "{body}");
    assert_eq!(body["span_count"], services.len(), "{body}");
    body["trace_id"]
        .as_str()
        .expect("trace_id is a string")
        .to_string()
}

fn get_trace(node: &mut Node, trace_id: &str) -> Value {
    node.call(json!({"type": "get_trace", "trace_id": trace_id}))
}

/// Checks the spans of a `trace` body and returns them ordered from the
/// root down the parent chain. `root_parent` is the root's parent_span_id.
#[track_caller]
fn span_chain(trace: &Value, root_parent: &Value) -> Vec<Value> {
    assert_eq!(trace["type"], "trace", "{trace}");
    let spans = trace["spans"].as_array().expect("spans is an array");
    for span in spans {
        let id = span["span_id"].as_str().unwrap_or_default();
        assert!(
            is_span_id(id),
            "span_id must be 16 lowercase hex, non-zero: {span}"
        );
        assert_eq!(span["kind"], "SERVER", "{span}");
        assert!(span["attributes"].is_object(), "{span}");
        assert!(span["attributes"]["service.name"].is_string(), "{span}");
        assert!(
            span.get("parent_span_id").is_some(),
            "no parent_span_id: {span}"
        );
    }
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| &s["parent_span_id"] == root_parent)
        .collect();
    assert_eq!(
        roots.len(),
        1,
        "exactly one root (parent {root_parent}) in {trace}"
    );
    let mut chain = vec![roots[0].clone()];
    while chain.len() < spans.len() {
        let last = chain.last().unwrap()["span_id"].clone();
        let children: Vec<&Value> = spans
            .iter()
            .filter(|s| s["parent_span_id"] == last)
            .collect();
        assert_eq!(
            children.len(),
            1,
            "span {last} should have exactly one child in {trace}"
        );
        chain.push(children[0].clone());
    }
    chain
}

fn service_names(chain: &[Value]) -> Vec<&str> {
    chain
        .iter()
        .map(|s| s["attributes"]["service.name"].as_str().unwrap())
        .collect()
}

#[test]
fn instrument_service_replies_with_the_whole_chain() {
    let mut node = Node::spawn();
    let ok = instrument(&mut node, json!(["web", "api", "db"]), Some(true));
    assert_keys(&ok, &["type", "in_reply_to", "services"]);
    assert_eq!(ok["type"], "instrument_service_ok");
    assert_eq!(ok["services"], json!(["web", "api", "db"]));
}

#[test]
fn appending_keeps_order_and_repeated_services_keep_their_place() {
    let mut node = Node::spawn();
    let ok = instrument(&mut node, json!(["web", "api"]), None);
    assert_eq!(ok["services"], json!(["web", "api"]));
    let ok = instrument(&mut node, json!(["db", "web", "cache"]), None);
    assert_eq!(ok["services"], json!(["web", "api", "db", "cache"]));
    let ok = instrument(&mut node, json!(["api"]), Some(false));
    assert_eq!(ok["services"], json!(["web", "api", "db", "cache"]));
}

#[test]
fn bad_services_get_error_12_and_change_nothing() {
    let mut node = Node::spawn();
    instrument(&mut node, json!(["a"]), None);
    let bad = [
        json!({"type": "instrument_service"}),
        json!({"type": "instrument_service", "services": []}),
        json!({"type": "instrument_service", "services": "web"}),
        json!({"type": "instrument_service", "services": {"web": true}}),
        json!({"type": "instrument_service", "services": null}),
        json!({"type": "instrument_service", "services": [""]}),
        json!({"type": "instrument_service", "services": ["web", 3]}),
        json!({"type": "instrument_service", "services": ["web", ["api"]]}),
    ];
    for body in bad {
        let reply = node.call(body.clone());
        assert_error(&reply, 12, &["services"]);
    }
    let ok = instrument(&mut node, json!(["a"]), None);
    assert_eq!(
        ok["services"],
        json!(["a"]),
        "a rejected request changed the chain"
    );
}

#[test]
fn non_boolean_auto_gets_error_12() {
    let mut node = Node::spawn();
    let reply = node.call(json!({"type": "instrument_service", "services": ["a"], "auto": "yes"}));
    assert_error(&reply, 12, &["auto"]);
}

#[test]
fn seed_flow_with_msg_id() {
    let mut node = web_api_db();
    let reply = node.request_to("user", "web", json!({"type": "http_request", "path": PATH}));
    assert_eq!(reply["src"], "web", "{reply}");
    assert_eq!(reply["dest"], "user", "{reply}");
    let id = assert_trace_complete(&reply["body"], &["web", "api", "db"]);
    assert!(
        uuid_v4_re().is_match(&id),
        "trace id {id:?} is not a lowercase UUID v4"
    );
}

#[test]
fn seed_flow_without_msg_id_still_replies() {
    let mut node = web_api_db();
    node.send(
        &json!({"src": "user", "dest": "web", "body": {"type": "http_request", "path": PATH}}),
    );
    let line = node.recv();
    let body = &line["body"];
    assert_eq!(body["type"], "trace_complete", "{line}");
    assert_keys(body, &["type", "trace_id", "services", "span_count"]);
    assert_eq!(body["services"], json!(["web", "api", "db"]));
    assert_eq!(body["span_count"], 3);
    assert!(
        uuid_v4_re().is_match(body["trace_id"].as_str().unwrap_or_default()),
        "{body}"
    );
    assert_eq!(line["dest"], "user", "{line}");
}

#[test]
fn trace_ids_are_fresh_per_request() {
    let mut node = web_api_db();
    let a = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
    let b = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
    assert_ne!(a, b);
}

#[test]
fn request_enters_at_its_dest_service() {
    let mut node = web_api_db();
    assert_trace_complete(&http(&mut node, "api", json!({})), &["api", "db"]);
    assert_trace_complete(&http(&mut node, "db", json!({})), &["db"]);
}

#[test]
fn unknown_dest_enters_at_the_first_service() {
    let mut node = web_api_db();
    assert_trace_complete(
        &http(&mut node, "gateway", json!({})),
        &["web", "api", "db"],
    );
    assert_trace_complete(&http(&mut node, "n1", json!({})), &["web", "api", "db"]);
}

#[test]
fn uninstrumented_services_are_passed_through_without_a_span() {
    let mut node = Node::spawn();
    instrument(&mut node, json!(["web"]), None);
    instrument(&mut node, json!(["cache"]), Some(false));
    let ok = instrument(&mut node, json!(["db"]), Some(true));
    assert_eq!(ok["services"], json!(["web", "cache", "db"]));
    let id = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "db"]);
    let chain = span_chain(&get_trace(&mut node, &id), &Value::Null);
    assert_eq!(service_names(&chain), ["web", "db"]);
    // Entering at the uninstrumented service still flows on to db.
    assert_trace_complete(&http(&mut node, "cache", json!({})), &["db"]);
}

#[test]
fn the_auto_flag_of_a_known_service_is_updated() {
    let mut node = web_api_db();
    let ok = instrument(&mut node, json!(["api"]), Some(false));
    assert_eq!(ok["services"], json!(["web", "api", "db"]));
    assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "db"]);
    instrument(&mut node, json!(["api"]), Some(true));
    assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
}

#[test]
fn each_span_writes_one_log_entry_in_call_order() {
    let mut node = web_api_db();
    let id = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
    // Another trace whose logs must not show up.
    http(&mut node, "api", json!({}));
    let reply = node.call(json!({"type": "search_logs", "trace_id": id}));
    let logs = reply["logs"].as_array().expect("logs array");
    let services: Vec<&Value> = logs.iter().map(|l| &l["service"]).collect();
    assert_eq!(
        services,
        [&json!("web"), &json!("api"), &json!("db")],
        "{reply}"
    );
    for entry in logs {
        assert_eq!(entry["message"], "GET /api/users/123", "{entry}");
        let logged = entry["trace_id"].as_str().expect("trace_id in the entry");
        assert_eq!(trace_id_bits(logged), trace_id_bits(&id), "{entry}");
    }
}

#[test]
fn method_is_part_of_the_log_message_and_span_name() {
    let mut node = web_api_db();
    let id = assert_trace_complete(
        &http(&mut node, "web", json!({"method": "POST"})),
        &["web", "api", "db"],
    );
    let reply = node.call(json!({"type": "search_logs", "trace_id": id}));
    let logs = reply["logs"].as_array().expect("logs array");
    assert_eq!(logs.len(), 3, "{reply}");
    for entry in logs {
        assert_eq!(entry["message"], "POST /api/users/123", "{entry}");
    }
    let chain = span_chain(&get_trace(&mut node, &id), &Value::Null);
    for span in &chain {
        assert_eq!(span["name"], "POST /api/users/123", "{span}");
        assert_eq!(span["attributes"]["http.request.method"], "POST", "{span}");
    }
}

#[test]
fn get_trace_returns_the_span_chain() {
    let mut node = web_api_db();
    let id = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
    let trace = get_trace(&mut node, &id);
    assert_eq!(trace["type"], "trace", "{trace}");
    assert_eq!(trace["trace_id"], id.as_str(), "{trace}");
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3), "{trace}");
    let chain = span_chain(&trace, &Value::Null);
    assert_eq!(service_names(&chain), ["web", "api", "db"]);
    for span in &chain {
        assert_eq!(span["name"], "GET /api/users/123", "{span}");
        assert_eq!(span["attributes"]["http.request.method"], "GET", "{span}");
        assert_eq!(span["attributes"]["url.path"], PATH, "{span}");
    }
    // The array itself lists the spans in call order.
    let spans = trace["spans"].as_array().unwrap();
    for pair in spans.windows(2) {
        assert_eq!(
            pair[1]["parent_span_id"], pair[0]["span_id"],
            "spans not in call order: {trace}"
        );
    }
}

#[test]
fn get_trace_accepts_the_other_spelling() {
    let mut node = web_api_db();
    let id = assert_trace_complete(&http(&mut node, "web", json!({})), &["web", "api", "db"]);
    let hex = id.replace('-', "").to_uppercase();
    let trace = get_trace(&mut node, &hex);
    assert_eq!(trace["type"], "trace", "{trace}");
    assert_eq!(trace["spans"].as_array().map(Vec::len), Some(3), "{trace}");
}

#[test]
fn get_trace_of_an_unknown_id_is_error_20() {
    let mut node = web_api_db();
    assert_error(
        &get_trace(&mut node, "00000000-0000-4000-8000-000000000000"),
        20,
        &[],
    );
    assert_error(&get_trace(&mut node, "nope"), 20, &[]);
    http(&mut node, "web", json!({}));
    assert_error(&get_trace(&mut node, HEADER_TRACE), 20, &[]);
}

#[track_caller]
fn assert_continues_header_trace(node: &mut Node, headers: Value) {
    let body = http(node, "web", json!({"headers": headers}));
    let id = assert_trace_complete(&body, &["web", "api", "db"]);
    assert_eq!(
        id, HEADER_TRACE,
        "the trace must continue the traceparent's"
    );
    let chain = span_chain(&get_trace(node, &id), &json!(HEADER_PARENT));
    assert_eq!(service_names(&chain), ["web", "api", "db"]);
    let logs = node.call(json!({"type": "search_logs", "trace_id": HEADER_TRACE}));
    assert!(
        logs["logs"].as_array().is_some_and(|l| l.len() >= 3),
        "span logs under the header's trace id: {logs}"
    );
}

#[test]
fn traceparent_header_object_continues_the_trace() {
    let mut node = web_api_db();
    assert_continues_header_trace(&mut node, json!({"traceparent": TRACEPARENT}));
}

#[test]
fn header_names_are_case_insensitive() {
    let mut node = web_api_db();
    assert_continues_header_trace(&mut node, json!({"TraceParent": TRACEPARENT}));
}

#[test]
fn traceparent_header_pairs_continue_the_trace() {
    let mut node = web_api_db();
    assert_continues_header_trace(
        &mut node,
        json!([["Accept", "*/*"], ["TraceParent", TRACEPARENT]]),
    );
}

#[test]
fn an_invalid_traceparent_starts_a_new_trace() {
    let mut node = web_api_db();
    for bad in [
        "00-xyz-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let body = http(&mut node, "web", json!({"headers": {"traceparent": bad}}));
        let id = assert_trace_complete(&body, &["web", "api", "db"]);
        assert!(
            uuid_v4_re().is_match(&id),
            "traceparent {bad:?}: expected a new UUID trace id, got {id:?}"
        );
        let chain = span_chain(&get_trace(&mut node, &id), &Value::Null);
        assert_eq!(chain.len(), 3);
    }
}

#[test]
fn without_a_chain_the_node_is_the_traced_service() {
    let mut node = Node::spawn();
    let reply = node.request_to("user", "n1", json!({"type": "http_request", "path": PATH}));
    assert_eq!(reply["src"], "n1", "{reply}");
    let body = &reply["body"];
    assert_eq!(body["type"], "http_response", "{body}");
    assert_keys(body, &["type", "in_reply_to", "span"]);
    let span = &body["span"];
    assert_keys(span, &["trace_id", "span_id", "parent_span_id"]);
    assert!(
        uuid_v4_re().is_match(span["trace_id"].as_str().unwrap_or_default()),
        "{span}"
    );
    assert!(
        is_span_id(span["span_id"].as_str().unwrap_or_default()),
        "{span}"
    );
    assert_eq!(span["parent_span_id"], Value::Null, "{span}");
}

#[test]
fn without_a_chain_a_traceparent_is_continued() {
    let mut node = Node::spawn();
    for headers in [
        json!({"traceparent": TRACEPARENT}),
        json!([["TRACEPARENT", TRACEPARENT]]),
    ] {
        let body = http(&mut node, "n1", json!({"headers": headers}));
        assert_eq!(body["type"], "http_response", "{body}");
        let span = &body["span"];
        assert_eq!(span["trace_id"], HEADER_TRACE, "{span}");
        assert_eq!(span["parent_span_id"], HEADER_PARENT, "{span}");
        let id = span["span_id"].as_str().unwrap_or_default();
        assert!(is_span_id(id) && id != HEADER_PARENT, "{span}");
    }
}

#[test]
fn missing_path_gets_error_12() {
    let mut node = Node::spawn();
    let reply = node.call(json!({"type": "http_request"}));
    assert_error(&reply, 12, &["path"]);
    let reply = node.call(json!({"type": "http_request", "path": 42}));
    assert_error(&reply, 12, &["path"]);
    instrument(&mut node, json!(["web"]), None);
    let reply = node.call(json!({"type": "http_request"}));
    assert_error(&reply, 12, &["path"]);
}

#[test]
fn bad_headers_get_error_12() {
    let mut node = Node::spawn();
    for headers in [json!("traceparent"), json!(42), json!(true)] {
        let reply = node.call(json!({"type": "http_request", "path": PATH, "headers": headers}));
        assert_error(&reply, 12, &["headers"]);
    }
    instrument(&mut node, json!(["web"]), None);
    let reply = node.call(json!({"type": "http_request", "path": PATH, "headers": "x"}));
    assert_error(&reply, 12, &["headers"]);
}

#[test]
fn header_lists_must_hold_name_value_pairs() {
    let mut node = Node::spawn();
    for headers in [json!([1, 2]), json!([["traceparent"]]), json!([["a", 1]])] {
        let reply = node.call(json!({"type": "http_request", "path": PATH, "headers": headers}));
        assert_error(&reply, 12, &["headers"]);
    }
}

/// A chain naming a cluster peer that never answers (nothing routes the
/// node's `hop`): at end of input the hop fails at once (no reply can come)
/// and the node answers with an ERROR span for the silent peer.
#[test]
fn a_silent_peer_becomes_an_error_span_even_at_end_of_input() {
    let mut node = Node::spawn();
    node.send_raw(r#"{"src":"c0","dest":"n1","body":{"type":"init","msg_id":1,"node_id":"n1","node_ids":["n1","n2"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"instrument_service","msg_id":2,"services":["n1","n2"]}}"#);
    node.send_raw(r#"{"src":"c1","dest":"n1","body":{"type":"http_request","msg_id":3,"path":"/x","timeout_ms":100}}"#);
    node.close_stdin();
    let f = node.finish_full();
    assert!(f.status.success());
    let hop = f
        .all_lines
        .iter()
        .find(|l| l["body"]["type"] == "hop")
        .expect("the node sent a hop to n2");
    assert_eq!(hop["dest"], "n2");
    assert!(hop["body"]["traceparent"].is_string(), "{hop}");
    let done = f
        .all_lines
        .iter()
        .find(|l| l["body"]["type"] == "trace_complete")
        .expect("answered after the timeout");
    assert_eq!(done["body"]["services"], serde_json::json!(["n1", "n2"]));
    assert_eq!(done["body"]["span_count"], 2);
    assert_eq!(done["body"]["in_reply_to"], 3);
}
