//! `manual_instrument`: span-starting call sites and the lifecycle check,
//! through the binary, one snippet per language.

use serde_json::{json, Value};
use tests::{assert_error, assert_keys, Node};

fn analyze(node: &mut Node, code: &str, language: Option<&str>) -> Value {
    let mut body = json!({"type": "manual_instrument", "code": code});
    if let Some(l) = language {
        body["language"] = json!(l);
    }
    node.call(body)
}

fn ok(reply: &Value, spans: u64, warnings: &[&str]) {
    assert_eq!(reply["type"], "instrumentation_ok", "{reply}");
    assert_eq!(reply["spans_created"], spans, "{reply}");
    if warnings.is_empty() {
        assert_keys(reply, &["type", "in_reply_to", "spans_created"]);
    } else {
        assert_keys(reply, &["type", "in_reply_to", "spans_created", "warnings"]);
        let got: Vec<&str> = reply["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap())
            .collect();
        assert_eq!(got, warnings, "{reply}");
    }
}

#[test]
fn one_snippet_per_language_detected_and_declared() {
    let mut node = Node::spawn();
    let snippets: &[(&str, &str, u64, &[&str])] = &[
        (
            "javascript",
            "function f() { const span = tracer.startSpan('a'); // tracer.startSpan('no')\n const s = `${tracer.startSpan('b').end()} and startSpan('text')`; span.end(); }",
            2,
            &[],
        ),
        (
            "typescript",
            "interface Req { id: string }\nfunction f(r: Req): void { tracer.startActiveSpan('op', (span: Span) => { work(r); span.end(); }); const child: Span = tracer.startSpan('child'); }",
            2,
            &["span 'child' is never ended"],
        ),
        (
            "python",
            "def handle(req):\n    with tracer.start_as_current_span('outer') as span:\n        s = tracer.start_span('inner')\n        '''tracer.start_span('doc')'''\n        s.end()\n",
            2,
            &[],
        ),
        (
            "rust",
            "#[traced]\nfn f<'a>(x: &'a str) -> &'a str { let c = 'c'; let s = r#\"start_span(\"no\")\"#; /* start_span( /* nested */ */ let span = tracer.start_span(\"work\"); x }",
            2,
            &[],
        ),
        (
            "go",
            "package main\nfunc h(ctx context.Context) {\n\tctx, span := tracer.Start(ctx, \"handle\")\n\tdefer span.End()\n\ts := `tracer.Start(ctx, \"raw\")`\n\t_, leak := tracer.Start(ctx, \"leak\")\n}\n",
            2,
            &["span 'leak' is never ended"],
        ),
        (
            "java",
            "public class A { void f() { Span span = tracer.spanBuilder(\"op\").setParent(ctx).startSpan(); String t = \"\"\"\n tracer.spanBuilder(\"x\").startSpan()\n\"\"\"; try (Scope s = span.makeCurrent()) { work(); } finally { span.end(); } } }",
            1,
            &[],
        ),
    ];
    for (lang, code, spans, warnings) in snippets {
        let declared = analyze(&mut node, code, Some(lang));
        ok(&declared, *spans, warnings);
        let detected = analyze(&mut node, code, None);
        ok(&detected, *spans, warnings);
    }
    node.finish();
}

#[test]
fn the_seed_case_has_no_warning() {
    let mut node = Node::spawn();
    let code = "async function process() { const span = tracer.startSpan('process'); try { await work(); span.end(); } catch(e) { span.recordException(e); throw; } }";
    ok(&analyze(&mut node, code, None), 1, &[]);
    node.finish();
}

#[test]
fn unlexable_code_is_error_12_with_a_position() {
    let mut node = Node::spawn();
    for (code, lang) in [
        ("const s = 'open;\n", "javascript"),
        ("const t = `a ${b`;", "javascript"),
        ("/* never closed", "javascript"),
        ("fn f() { (", "rust"),
        ("def f():\n    return ]\n", "python"),
        ("s := `raw", "go"),
        ("String t = \"\"\"\nblock", "java"),
    ] {
        let r = analyze(&mut node, code, Some(lang));
        assert_error(&r, 12, &["code", "line"]);
        assert!(r["text"].as_str().unwrap().contains("column"), "{r}");
    }
    node.finish();
}

#[test]
fn bad_fields() {
    let mut node = Node::spawn();
    assert_error(
        &node.call(json!({"type": "manual_instrument"})),
        12,
        &["code"],
    );
    assert_error(
        &node.call(json!({"type": "manual_instrument", "code": 5})),
        12,
        &["code"],
    );
    let r = node.call(json!({"type": "manual_instrument", "code": "x", "language": "cobol"}));
    assert_error(&r, 12, &["language", "javascript"]);
    let big = "a".repeat((1 << 20) + 1);
    let r = node.call(json!({"type": "manual_instrument", "code": big}));
    assert_error(&r, 12, &["code", "1048576"]);
    // The node keeps serving.
    ok(
        &analyze(&mut node, "tracer.startSpan('x').end()", None),
        1,
        &[],
    );
    node.finish();
}
