//! Counting span-starting call sites on code tokens.
//!
//! Strings and comments are never code tokens, so a call written inside one
//! cannot count; a JavaScript template substitution is code, so one inside
//! `${...}` does. Definitions of functions or methods with a counted name are
//! not call sites.

use crate::lexer::{Code, TokenKind};
use crate::Language;

/// How a span is started at a [`Site`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SiteKind {
    /// A call; the site's index is the called name's identifier.
    Call,
    /// A Rust `#[traced]` attribute; the site's index is its `#`.
    Attribute,
}

/// One place in the code that starts a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Site {
    /// Index into [`Code::toks`].
    pub index: usize,
    /// How the span is started.
    pub kind: SiteKind,
}

/// Modifiers that may stand before a TypeScript/JavaScript class method.
const METHOD_MODIFIERS: &[&str] = &[
    "public",
    "private",
    "protected",
    "static",
    "async",
    "override",
    "abstract",
    "readonly",
    "get",
    "set",
];

/// Java keywords after which a bare `spanBuilder(` is still a call.
const JAVA_EXPR_KEYWORDS: &[&str] = &["return", "throw", "yield", "else", "case", "assert"];

/// Finds the span-starting sites of `code`, in source order.
pub(crate) fn find(code: &Code<'_>, lang: Language) -> Vec<Site> {
    let mut sites = Vec::new();
    for (i, t) in code.toks.iter().enumerate() {
        if lang == Language::Rust && t.is_punct("#") && is_traced_attribute(code, i) {
            sites.push(Site {
                index: i,
                kind: SiteKind::Attribute,
            });
            continue;
        }
        if t.kind != TokenKind::Ident || !code.punct_at(i + 1, "(") {
            continue;
        }
        let counted = match lang {
            Language::JavaScript | Language::TypeScript => {
                matches!(t.text, "startSpan" | "startActiveSpan") && js_is_call(code, i, lang)
            }
            Language::Python => {
                matches!(t.text, "start_span" | "start_as_current_span")
                    && !prev_is(code, i, &["def"])
            }
            Language::Rust => t.text == "start_span" && !prev_is(code, i, &["fn"]),
            Language::Go => t.text == "Start" && i > 0 && code.punct_at(i - 1, "."),
            Language::Java => t.text == "spanBuilder" && java_is_call(code, i),
        };
        if counted {
            sites.push(Site {
                index: i,
                kind: SiteKind::Call,
            });
        }
    }
    sites
}

/// Whether the token before `i` is one of the identifiers `words`.
fn prev_is(code: &Code<'_>, i: usize, words: &[&str]) -> bool {
    i > 0
        && code
            .get(i - 1)
            .is_some_and(|t| t.kind == TokenKind::Ident && words.contains(&t.text))
}

/// Whether the token before `i` is a member access (`.`, `?.`, `::`).
pub(crate) fn after_member_access(code: &Code<'_>, i: usize) -> bool {
    i > 0
        && code
            .get(i - 1)
            .is_some_and(|t| t.is_punct(".") || t.is_punct("?.") || t.is_punct("::"))
}

/// The token after the `)` closing the call whose name is at `i`.
fn after_call<'c, 'a>(code: &'c Code<'a>, i: usize) -> Option<&'c crate::lexer::Token<'a>> {
    code.partner(i + 1).and_then(|close| code.get(close + 1))
}

/// JavaScript/TypeScript: `startSpan(` at `i` is a call unless it defines a
/// function (`function startSpan(`) or a class/object method
/// (`startSpan(name) {`, TypeScript `startSpan(name: string): Span {`).
fn js_is_call(code: &Code<'_>, i: usize, lang: Language) -> bool {
    if after_member_access(code, i) {
        return true;
    }
    if prev_is(code, i, &["function"])
        || (i > 1 && code.punct_at(i - 1, "*") && prev_is(code, i - 1, &["function"]))
    {
        return false;
    }
    match after_call(code, i) {
        Some(t) if t.is_punct("{") => false,
        Some(t) if lang == Language::TypeScript && t.is_punct(":") => {
            let prev = if i > 0 { code.get(i - 1) } else { None };
            // A method definition follows a statement boundary or a modifier.
            let definition = match prev {
                None => true,
                Some(p) => {
                    p.is_punct("{")
                        || p.is_punct("}")
                        || p.is_punct(";")
                        || (p.kind == TokenKind::Ident && METHOD_MODIFIERS.contains(&p.text))
                }
            };
            !definition
        }
        _ => true,
    }
}

/// Java: `spanBuilder(` at `i` is a call when it follows a `.`, or stands
/// bare where an expression can (not after a return type, not followed by a
/// method body).
fn java_is_call(code: &Code<'_>, i: usize) -> bool {
    if after_member_access(code, i) {
        return true;
    }
    if let Some(p) = i.checked_sub(1).and_then(|j| code.get(j)) {
        let type_like = (p.kind == TokenKind::Ident && !JAVA_EXPR_KEYWORDS.contains(&p.text))
            || p.is_punct(">")
            || p.is_punct("]");
        if type_like {
            return false;
        }
    }
    !after_call(code, i).is_some_and(|t| t.is_punct("{") || t.is_ident("throws"))
}

/// Rust: whether the `#` at `i` opens `#[traced]`, `#[traced(...)]` or a
/// path ending in `traced` (`#[tracer::traced]`).
fn is_traced_attribute(code: &Code<'_>, i: usize) -> bool {
    if !code.punct_at(i + 1, "[") {
        return false;
    }
    let mut j = i + 2;
    if code.punct_at(j, "::") {
        j += 1;
    }
    for _ in 0..16 {
        if !code.ident_at(j) {
            return false;
        }
        if code.punct_at(j + 1, "::") {
            j += 2;
            continue;
        }
        return code.get(j).is_some_and(|t| t.text == "traced")
            && (code.punct_at(j + 1, "]") || code.punct_at(j + 1, "("));
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::{analyze, Language};

    fn count(code: &str, lang: Language) -> usize {
        analyze(code, Some(lang)).unwrap().spans_created
    }

    #[test]
    fn javascript_calls() {
        let js = Language::JavaScript;
        assert_eq!(
            count(
                "tracer.startSpan('a'); tracer.startActiveSpan('b', s => s.end());",
                js
            ),
            2
        );
        assert_eq!(count("startSpan('a'); tracer?.startSpan('b')", js), 2);
        assert_eq!(count("x = cond ? startSpan('a') : null", js), 1);
    }

    #[test]
    fn javascript_text_is_not_code() {
        let js = Language::JavaScript;
        assert_eq!(count("log('tracer.startSpan(\"x\")')", js), 0);
        assert_eq!(
            count("// tracer.startSpan('x')\n/* startActiveSpan('y') */", js),
            0
        );
        assert_eq!(count("const t = `tracer.startSpan('x')`", js), 0);
        assert_eq!(count("const r = /startSpan\\(/", js), 0);
    }

    #[test]
    fn javascript_template_substitution_is_code() {
        let js = Language::JavaScript;
        let code = "log(`id: ${tracer.startSpan('x').spanContext().spanId}`)";
        assert_eq!(count(code, js), 1);
        let code = "log(`a ${`b ${tracer.startSpan('x')} startSpan(` + \"c\"}`)";
        assert_eq!(count(code, js), 1);
    }

    #[test]
    fn javascript_definitions_are_not_calls() {
        let js = Language::JavaScript;
        assert_eq!(
            count(
                "function startSpan(name) { return tracer.startSpan(name); }",
                js
            ),
            1
        );
        assert_eq!(count("class T { startSpan(name) { return 1; } }", js), 0);
        assert_eq!(count("function* startActiveSpan() {}", js), 0);
        let ts = Language::TypeScript;
        assert_eq!(
            count("class T { public startSpan(name: string): Span { return this.t.startSpan(name); } }", ts),
            1
        );
    }

    #[test]
    fn python_calls() {
        let py = Language::Python;
        let code = "def start_span(name):\n    return tracer.start_span(name)\n\n@tracer.start_as_current_span('h')\ndef h():\n    with tracer.start_as_current_span('x') as s:\n        pass\n";
        assert_eq!(count(code, py), 3);
        assert_eq!(
            count(
                "'''tracer.start_span(\"x\")'''\n# start_span(x)\nf\"{start_span('x')}\"",
                py
            ),
            0
        );
    }

    #[test]
    fn rust_calls_and_attributes() {
        let rs = Language::Rust;
        let code = "#[traced]\nfn a() {}\n#[traced(name = \"b\")]\nfn b() {}\n#[tracer::traced]\nfn c() { let _s = tracer.start_span(\"c\"); }\nfn start_span() {}\n#[derive(Debug)]\nstruct S;";
        assert_eq!(count(code, rs), 4);
        assert_eq!(count("let s = r#\"start_span(\"x\")\"#;", rs), 0);
        assert_eq!(count("/* /* start_span(x) */ start_span(y) */", rs), 0);
        assert_eq!(
            count("fn f<'a>(x: &'a str) { tracer.start_span(x); }", rs),
            1
        );
        assert_eq!(count("let c = '\"'; tracer.start_span(\"x\");", rs), 1);
    }

    #[test]
    fn go_calls() {
        let go = Language::Go;
        let code = "ctx, span := tracer.Start(ctx, \"x\")\ndefer span.End()\n_, s := otel.Tracer(\"t\").Start(ctx, \"y\")\ns.End()\nfunc (t *T) Start(ctx context.Context) {}";
        assert_eq!(count(code, go), 2);
        assert_eq!(
            count("s := `tracer.Start(ctx, \"x\")` // tracer.Start(\n", go),
            0
        );
    }

    #[test]
    fn java_chains_count_once() {
        let java = Language::Java;
        let code = "Span span = tracer.spanBuilder(\"x\").setSpanKind(SpanKind.SERVER).startSpan();\nspan.end();";
        assert_eq!(count(code, java), 1);
        assert_eq!(
            count(
                "SpanBuilder spanBuilder(String n) { return tracer.spanBuilder(n); }",
                java
            ),
            1
        );
        assert_eq!(
            count(
                "String s = \"\"\"\n tracer.spanBuilder(\"x\").startSpan();\n\"\"\";",
                java
            ),
            0
        );
        assert_eq!(count("return spanBuilder(\"x\").startSpan();", java), 1);
    }
}
