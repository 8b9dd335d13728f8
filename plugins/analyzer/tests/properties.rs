//! Property tests: `analyze` never panics, terminates, and reports error
//! positions inside the input, whatever it is fed.

use proptest::prelude::*;
use tracer_analyzer::{analyze, detect_language, Language, MAX_CODE_BYTES};

/// Pieces of every supported language, traps included: strings holding
/// calls, comments, templates, raw strings, lifetimes, text blocks...
const FRAGMENTS: &[&str] = &[
    "tracer.startSpan('x')",
    "tracer.startActiveSpan('y', (span) => { span.end(); })",
    "const span = tracer.startSpan(\"child\");",
    "span.end();",
    "`a ${b} c`",
    "`${tracer.startSpan('t')}`",
    "`${`${`",
    "}`",
    "${",
    "/re[/]g/",
    " / ",
    "// comment\n",
    "/* block */",
    "/*",
    "*/",
    "'",
    "\"",
    "`",
    "\\",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "\t",
    " ",
    "def start_span(x):\n",
    "with tracer.start_as_current_span('w') as span:\n    pass\n",
    "span = tracer.start_span('p')\n",
    "'''triple\n'''",
    "\"\"\"",
    "rb'raw'",
    "f\"{x}\"",
    "# hash\n",
    "fn f<'a>(x: &'a str) {}",
    "let span = tracer.start_span(\"r\");",
    "std::mem::forget(span);",
    "#[traced]",
    "#[tracer::traced(name = \"n\")]",
    "r#\"start_span(\"x\")\"#",
    "r##\"",
    "'\\u{1F600}'",
    "'a'",
    "'static",
    "b'x'",
    "/* /* nested */ */",
    "ctx, span := tracer.Start(ctx, \"g\")",
    "defer span.End()",
    "`raw go`",
    "'\\n'",
    "Span span = tracer.spanBuilder(\"j\").startSpan();",
    "try (Scope s = span.makeCurrent()) {}",
    "\"\"\"\ntext block\n\"\"\"",
    "@Override",
    "public class A {}",
    "é",
    "😀",
    "\r\n",
    "\u{0}",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..48).prop_map(|v| v.concat())
}

/// Analyzes `code` in every language (and detected) and checks what an
/// error reports.
fn check_all(code: &str) {
    let _ = detect_language(code);
    let langs = Language::ALL.iter().copied().map(Some).chain([None]);
    for lang in langs {
        match analyze(code, lang) {
            Ok(a) => {
                if let Some(l) = lang {
                    assert_eq!(a.language, l);
                }
                for w in &a.warnings {
                    assert!(
                        w.starts_with("span '") && w.ends_with("' is never ended"),
                        "{w}"
                    );
                }
            }
            Err(e) => check_position(code, e.line, e.column, &e.message),
        }
    }
}

fn check_position(code: &str, line: usize, column: usize, message: &str) {
    assert!(line >= 1 && column >= 1, "{message}");
    let lines: Vec<&str> = code.split('\n').collect();
    assert!(line <= lines.len(), "line {line} past the end: {message}");
    let width = lines[line - 1].chars().count();
    assert!(
        column <= width + 1,
        "column {column} past the line: {message}"
    );
    if code.len() > MAX_CODE_BYTES {
        assert!(message.starts_with("code is"), "{message}");
    } else {
        assert!(
            message.contains(&format!("line {line}, column {column}")),
            "{message}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_strings(code in any::<String>()) {
        check_all(&code);
    }

    #[test]
    fn arbitrary_ascii_punctuation(code in "[ -~\n\t]{0,200}") {
        check_all(&code);
    }

    #[test]
    fn fragment_mixes(code in fragments()) {
        check_all(&code);
    }

    #[test]
    fn analysis_is_deterministic(code in fragments()) {
        for lang in Language::ALL {
            prop_assert_eq!(analyze(&code, Some(lang)), analyze(&code, Some(lang)));
        }
    }

    #[test]
    fn commented_out_code_has_no_sites(code in fragments()) {
        let block = format!("/* {} */", code.replace('*', ""));
        for lang in [Language::JavaScript, Language::TypeScript, Language::Go, Language::Java] {
            let a = analyze(&block, Some(lang)).unwrap();
            prop_assert_eq!(a.spans_created, 0);
            prop_assert!(a.warnings.is_empty());
        }
        let a = analyze(&block, Some(Language::Rust)).unwrap();
        prop_assert_eq!(a.spans_created, 0);
        let hashed: String = code.split('\n').map(|l| format!("#{l}\n")).collect();
        let a = analyze(&hashed, Some(Language::Python)).unwrap();
        prop_assert_eq!(a.spans_created, 0);
    }

    #[test]
    fn counting_is_additive_across_statements(n in 0usize..20, m in 0usize..20) {
        let code = format!(
            "{}{}",
            "tracer.startSpan('a');\n".repeat(n),
            "x.startActiveSpan('b', s => s.end());\n".repeat(m)
        );
        let a = analyze(&code, Some(Language::JavaScript)).unwrap();
        prop_assert_eq!(a.spans_created, n + m);
    }
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 100_000;
    let inputs = [
        "(".repeat(depth),
        ")".repeat(depth),
        format!("{}{}", "(".repeat(depth), ")".repeat(depth)),
        format!("{}{}", "{".repeat(depth), "}".repeat(depth)),
        "`${".repeat(depth),
        format!("{}{}", "`${".repeat(depth), "}`".repeat(depth)),
        format!("{}{}", "/*".repeat(depth), "*/".repeat(depth)),
        "a".repeat(MAX_CODE_BYTES + 1),
        "a.".repeat(depth) + "startSpan()",
        "x.startSpan(".repeat(depth / 2) + &")".repeat(depth / 2),
        "tracer.startActiveSpan('x', s => ".repeat(depth / 4) + &")".repeat(depth / 4),
    ];
    for code in &inputs {
        check_all(code);
    }
}

#[test]
fn large_inputs_finish() {
    let chunk = "const span = tracer.startSpan('a'); span.end(); // c\n";
    let code = chunk.repeat(MAX_CODE_BYTES / chunk.len());
    let a = analyze(&code, None).unwrap();
    assert_eq!(a.spans_created, MAX_CODE_BYTES / chunk.len());
    let leaky = "let s = t.startSpan(x);\n".repeat(MAX_CODE_BYTES / 24);
    let a = analyze(&leaky, Some(Language::JavaScript)).unwrap();
    assert_eq!(a.warnings.len(), a.spans_created);
    let chain = "tracer.startSpan()".repeat(MAX_CODE_BYTES / 20);
    check_all(&chain);
    let py = "def f():\n    s = tracer.start_span('x')\n".repeat(MAX_CODE_BYTES / 48);
    check_all(&py);
}

#[test]
fn adversarial_repetitions_finish() {
    // Patterns that once were, or could be, quadratic: failed regex scans,
    // `#` runs after `r`, unclosed quotes, chains, nested calls.
    let patterns = [
        "=/[",
        "r#",
        "'''",
        "\"\"\"",
        "`${",
        "'a",
        "import x\n",
        "a.",
        ".end(",
        "t.startActiveSpan(x, s => ",
        "x.spanBuilder(a)",
        "with s:\n",
    ];
    for p in patterns {
        let code = p.repeat((32 << 10) / p.len());
        check_all(&code);
        check_all(&format!("x = ({code}"));
    }
}
