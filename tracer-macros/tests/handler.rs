//! `#[handler("type")]`: registration through `inventory`, request decoding,
//! the reply, and the `always_reply` / `own_span` flags, run in-process.

mod support;

use serde::{Deserialize, Serialize};
use tracer_core::TraceId;
use tracer_macros::{handler, traced};
use tracer_node::{Config, Ctx, Error, Node, Registry};

#[derive(Deserialize)]
struct Echo {
    echo: String,
    #[serde(default)]
    times: Option<u32>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "macro_test_echo_ok")]
struct EchoOk {
    echo: String,
    seen_type: String,
    has_span: bool,
}

#[handler("macro_test_echo")]
fn echo(ctx: &mut Ctx<'_>, req: Echo) -> Result<EchoOk, Error> {
    Ok(EchoOk {
        echo: req.echo.repeat(req.times.unwrap_or(1) as usize),
        seen_type: ctx.msg_type().to_owned(),
        has_span: ctx.span().is_some(),
    })
}

#[derive(Deserialize, Debug)]
struct Value {
    value: i64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "macro_test_value_ok")]
struct ValueOk {
    value: i64,
    has_span: bool,
}

#[handler("macro_test_always", always_reply)]
fn always(ctx: &mut Ctx<'_>, req: Value) -> Result<ValueOk, Error> {
    Ok(ValueOk {
        value: req.value + 1,
        has_span: ctx.span().is_some(),
    })
}

#[handler("macro_test_own_span", own_span)]
fn own(ctx: &mut Ctx<'_>, req: Value) -> Result<ValueOk, Error> {
    Ok(ValueOk {
        value: req.value,
        has_span: ctx.span().is_some(),
    })
}

#[handler("macro_test_fail")]
fn fail(_ctx: &mut Ctx<'_>, req: Value) -> Result<ValueOk, Error> {
    Err(Error::precondition_failed(format!(
        "value {} refused",
        req.value
    )))
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "macro_test_traced_ok")]
struct TracedOk {
    trace_id: String,
    sidecar_span_id: String,
}

#[handler("macro_test_traced")]
#[traced(skip(ctx))]
fn traced_handler(ctx: &mut Ctx<'_>, req: Value) -> Result<TracedOk, Error> {
    let _ = req;
    let sidecar = ctx.span().expect("the sidecar's span").context().clone();
    Ok(TracedOk {
        trace_id: sidecar.trace_id().to_hex(),
        sidecar_span_id: sidecar.span_id().to_hex(),
    })
}

/// Runs a fresh node over `input`; its output lines.
fn serve(input: &str) -> Vec<String> {
    let registry = Registry::collect().expect("no duplicate handler types");
    let mut node = Node::new(registry, Config::default()).expect("no export configured");
    let mut out = Vec::new();
    node.run(std::io::Cursor::new(input.as_bytes().to_vec()), &mut out)
        .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn handlers_are_registered_by_type_with_their_flags() {
    let registry = Registry::collect().unwrap();
    let h = registry.get("macro_test_echo").expect("registered");
    assert_eq!(h.msg_type, "macro_test_echo");
    assert!(h.name.ends_with("::echo"), "{}", h.name);
    assert!(!h.always_reply && !h.own_span);
    let a = registry.get("macro_test_always").unwrap();
    assert!(a.name.ends_with("::always"), "{}", a.name);
    assert!(a.always_reply && !a.own_span);
    let o = registry.get("macro_test_own_span").unwrap();
    assert!(!o.always_reply && o.own_span);
    assert!(registry
        .get("macro_test_traced")
        .unwrap()
        .name
        .ends_with("::traced_handler"));
    let types = registry.types();
    for t in [
        "macro_test_always",
        "macro_test_echo",
        "macro_test_fail",
        "macro_test_own_span",
        "macro_test_traced",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    assert!(registry.get("echo").is_none());
}

#[test]
fn request_is_decoded_and_reply_sent_with_in_reply_to() {
    let out = serve(concat!(
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_echo","msg_id":1,"echo":"hi"}}"#,
        "\n",
        r#"{"src":"c2","dest":"n1","body":{"type":"macro_test_echo","msg_id":7,"echo":"ab","times":3,"extra":null}}"#,
        "\n",
    ));
    assert_eq!(
        out,
        [
            r#"{"src":"n1","dest":"c1","body":{"type":"macro_test_echo_ok","echo":"hi","seen_type":"macro_test_echo","has_span":true,"in_reply_to":1}}"#,
            r#"{"src":"n1","dest":"c2","body":{"type":"macro_test_echo_ok","echo":"ababab","seen_type":"macro_test_echo","has_span":true,"in_reply_to":7}}"#,
        ]
    );
}

#[test]
fn missing_or_mistyped_field_is_error_12_naming_it() {
    let out = serve(concat!(
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_echo","msg_id":2}}"#,
        "\n",
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_echo","msg_id":3,"echo":5}}"#,
        "\n",
    ));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(
        out[0],
        r#"{"src":"n1","dest":"c1","body":{"type":"error","in_reply_to":2,"code":12,"text":"missing field `echo`"}}"#
    );
    assert!(
        out[1].starts_with(
            r#"{"src":"n1","dest":"c1","body":{"type":"error","in_reply_to":3,"code":12,"text":"field `echo`: invalid type: integer `5`"#
        ),
        "{}",
        out[1]
    );
}

#[test]
fn handler_error_is_the_error_reply() {
    let out =
        serve(r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_fail","msg_id":4,"value":9}}"#);
    assert_eq!(
        out,
        [
            r#"{"src":"n1","dest":"c1","body":{"type":"error","in_reply_to":4,"code":22,"text":"value 9 refused"}}"#
        ]
    );
}

#[test]
fn always_reply_replies_without_msg_id() {
    let out = serve(concat!(
        // Without `always_reply`, no msg_id means no reply...
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_echo","echo":"quiet"}}"#,
        "\n",
        // ...with it, a reply without `in_reply_to`.
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_always","value":41}}"#,
        "\n",
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_always","msg_id":5,"value":1}}"#,
        "\n",
    ));
    assert_eq!(
        out,
        [
            r#"{"src":"n1","dest":"c1","body":{"type":"macro_test_value_ok","value":42,"has_span":true}}"#,
            r#"{"src":"n1","dest":"c1","body":{"type":"macro_test_value_ok","value":2,"has_span":true,"in_reply_to":5}}"#,
        ]
    );
}

#[test]
fn own_span_handlers_get_no_sidecar_span() {
    let out = serve(
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_own_span","msg_id":6,"value":3}}"#,
    );
    assert_eq!(
        out,
        [
            r#"{"src":"n1","dest":"c1","body":{"type":"macro_test_value_ok","value":3,"has_span":false,"in_reply_to":6}}"#
        ]
    );
}

#[test]
fn traced_handler_is_a_child_of_the_sidecar_span() {
    let collector = support::collector();
    let out = serve(
        r#"{"src":"c1","dest":"n1","body":{"type":"macro_test_traced","msg_id":8,"value":0}}"#,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let field = |name: &str| {
        let start = out[0].find(&format!("\"{name}\":\"")).unwrap() + name.len() + 4;
        let len = out[0][start..].find('"').unwrap();
        out[0][start..start + len].to_owned()
    };
    let trace_id = TraceId::from_hex(&field("trace_id")).unwrap();
    let spans = collector.spans_of(trace_id);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].name, "traced_handler");
    assert_eq!(
        spans[0].parent_span_id.map(|id| id.to_hex()),
        Some(field("sidecar_span_id"))
    );
    assert_eq!(
        spans[0].attribute("req").unwrap().as_str(),
        Some("Value { value: 0 }")
    );
}
