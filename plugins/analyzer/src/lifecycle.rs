//! The span lifecycle check.
//!
//! For every span-starting call whose span is bound to a name, look for an
//! end of that name on code tokens after the call, within the binding's
//! scope. No control-flow analysis: one end anywhere on any path is enough.
//!
//! | language | binding | ended by |
//! | --- | --- | --- |
//! | JavaScript, TypeScript | `const`/`let`/`var span = ...startSpan(...)`, `span = ...`, `this.span = ...` | `span.end()` |
//! | JavaScript, TypeScript | `startActiveSpan('x', (span) => {...})` callback | `span.end()` inside the callback |
//! | Python | `span = ...start_span(...)` (`with ... as span` needs nothing) | `span.end()`, `with span:`, `use_span(span, end_on_exit=True)` |
//! | Go | `ctx, span := tracer.Start(...)` (the last name) | `span.End()`, `defer span.End()` |
//! | Java | `Span span = ...spanBuilder(...)...startSpan()` | `span.end()` (try-with-resources on a `Scope` does not end it) |
//! | Rust | `let span = ...start_span(...)` | the end of its scope, unless `std::mem::forget(span)` is called (and no `span.end()`) |
//!
//! The scope of a declaration (`const`, `let`, `:=`, a typed Java local, a
//! Rust `let`) is the rest of its `{}` block; of a plain assignment or a
//! member (`this.span`), the rest of the code; in Python, the rest of the
//! enclosing `def` (found by indentation), or of the module.
//!
//! A warning reads `span 'NAME' is never ended`, where `NAME` is the span's
//! name when the starting call's first string-literal argument gives one
//! (`tracer.startSpan('child')` gives `child`), and otherwise the variable's
//! (or callback parameter's) name.

use std::collections::HashMap;

use crate::lexer::{Code, TokenKind, NONE};
use crate::sites::{after_member_access, Site, SiteKind};
use crate::Language;

/// Where each name is ended (or, in Rust, forgotten): token indices in
/// ascending order, per dotted path (`span`, `this.span`).
#[derive(Debug, Default)]
struct Index {
    ends: HashMap<String, Vec<usize>>,
    forgets: HashMap<String, Vec<usize>>,
}

/// Whether `map` has an entry for `path` strictly between `lo` and `hi`.
fn has_between(map: &HashMap<String, Vec<usize>>, path: &str, lo: usize, hi: usize) -> bool {
    map.get(path).is_some_and(|v| {
        let p = v.partition_point(|&x| x <= lo);
        p < v.len() && v[p] < hi
    })
}

/// The dotted path (`a.b.c`) whose last identifier is at `j`, and the index
/// of its first identifier; `None` when it hangs off something other than
/// identifiers (`f().span`).
fn path_ending_at(code: &Code<'_>, j: usize) -> Option<(String, usize)> {
    if !code.ident_at(j) {
        return None;
    }
    let mut first = j;
    for _ in 0..16 {
        if first >= 2 && (code.punct_at(first - 1, ".") || code.punct_at(first - 1, "?.")) {
            if !code.ident_at(first - 2) {
                return None;
            }
            first -= 2;
        } else {
            break;
        }
    }
    let path: Vec<&str> = (first..=j).step_by(2).map(|k| code.toks[k].text).collect();
    Some((path.join("."), first))
}

/// The dotted path starting with the identifier at `j`, and the index of
/// its last identifier.
fn path_starting_at(code: &Code<'_>, j: usize) -> Option<(String, usize)> {
    if !code.ident_at(j) {
        return None;
    }
    let mut last = j;
    for _ in 0..16 {
        if code.punct_at(last + 1, ".") && code.ident_at(last + 2) {
            last += 2;
        } else {
            break;
        }
    }
    let path: Vec<&str> = (j..=last).step_by(2).map(|k| code.toks[k].text).collect();
    Some((path.join("."), last))
}

impl Index {
    fn build(code: &Code<'_>, lang: Language) -> Self {
        let mut index = Index::default();
        let end_name = if lang == Language::Go { "End" } else { "end" };
        for (i, t) in code.toks.iter().enumerate() {
            if t.kind != TokenKind::Ident {
                continue;
            }
            let call = code.punct_at(i + 1, "(");
            if t.text == end_name && call && i >= 2 && after_member_access(code, i) {
                if let Some((path, _)) = path_ending_at(code, i - 2) {
                    index.ends.entry(path).or_default().push(i);
                }
            }
            match (lang, t.text) {
                (Language::Python, "with") => {
                    if let Some((path, last)) = path_starting_at(code, i + 1) {
                        let next = code.get(last + 1);
                        if next
                            .is_some_and(|n| n.is_punct(":") || n.is_punct(",") || n.is_ident("as"))
                        {
                            index.ends.entry(path).or_default().push(i);
                        }
                    }
                }
                (Language::Python, "use_span") if call => {
                    let close = code.partner(i + 1).unwrap_or(i + 1);
                    let ends_on_exit = (i + 2..close.min(i + 66)).any(|k| {
                        code.toks[k].is_ident("end_on_exit")
                            && code.punct_at(k + 1, "=")
                            && code.get(k + 2).is_some_and(|v| v.is_ident("True"))
                    });
                    if let (true, Some((path, _))) = (ends_on_exit, path_starting_at(code, i + 2)) {
                        index.ends.entry(path).or_default().push(i);
                    }
                }
                (Language::Rust, "forget") if call => {
                    if let Some((path, last)) = path_starting_at(code, i + 2) {
                        if code.punct_at(last + 1, ")") {
                            index.forgets.entry(path).or_default().push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        index
    }
}

/// Runs the lifecycle check over the call sites; returns the warnings in
/// source order.
pub(crate) fn check(code: &Code<'_>, lang: Language, sites: &[Site]) -> Vec<String> {
    let index = Index::build(code, lang);
    let scopes = (lang == Language::Python).then(|| python_scope_ends(code));
    let mut warnings = Vec::new();
    for site in sites.iter().filter(|s| s.kind == SiteKind::Call) {
        let i = site.index;
        let js = matches!(lang, Language::JavaScript | Language::TypeScript);
        let finding = if js && code.toks[i].text == "startActiveSpan" {
            callback_finding(code, &index, i)
        } else {
            binding_finding(code, lang, &index, scopes.as_deref(), i)
        };
        if let Some(name) = finding {
            warnings.push(format!("span '{name}' is never ended"));
        }
    }
    warnings
}

/// A name a span is bound to.
#[derive(Debug)]
struct Binding {
    /// The dotted path (`span`, `this.span`).
    path: String,
    /// Index of the path's last identifier.
    name: usize,
    /// Whether it is declared there (scoped to its block).
    decl: bool,
}

/// The never-ended span's name, if the call at `i` binds a span that is
/// never ended.
fn binding_finding(
    code: &Code<'_>,
    lang: Language,
    index: &Index,
    py_scopes: Option<&[usize]>,
    i: usize,
) -> Option<String> {
    if lang == Language::Java && !java_chain_starts_span(code, i) {
        return None;
    }
    let start = chain_start(code, i);
    let b = binding(code, lang, start)?;
    if b.path == "_" {
        return None;
    }
    let n = code.toks.len();
    let region_end = if b.path.contains('.') {
        n
    } else if let Some(scopes) = py_scopes {
        scopes.get(b.name).copied().unwrap_or(n)
    } else if b.decl {
        code.block_end.get(b.name).copied().unwrap_or(n)
    } else {
        n
    };
    let ended = has_between(&index.ends, &b.path, i, region_end);
    let warn = if lang == Language::Rust {
        !ended && has_between(&index.forgets, &b.path, i, region_end)
    } else {
        !ended
    };
    warn.then(|| first_string_arg(code, i).unwrap_or(b.path))
}

/// The index where the call chain ending in the name at `i` starts
/// (`tracer` in `this.tracer.startSpan`, `trace` in
/// `trace.getTracer('x').startSpan`), `await`/`new` included.
fn chain_start(code: &Code<'_>, i: usize) -> usize {
    let mut j = i;
    for _ in 0..64 {
        if j < 2 || !after_member_access(code, j) {
            break;
        }
        let k = j - 2;
        let t = &code.toks[k];
        if t.kind == TokenKind::Ident {
            j = k;
        } else if t.is_punct(")") || t.is_punct("]") {
            let Some(o) = code.partner(k) else { break };
            j = if o > 0 && code.ident_at(o - 1) {
                o - 1
            } else {
                o
            };
        } else {
            break;
        }
    }
    for _ in 0..2 {
        if j > 0
            && code
                .get(j - 1)
                .is_some_and(|t| t.is_ident("await") || t.is_ident("new"))
        {
            j -= 1;
        }
    }
    j
}

/// The name bound by an assignment or declaration whose right-hand side
/// starts at `start`.
fn binding(code: &Code<'_>, lang: Language, start: usize) -> Option<Binding> {
    let eq = start.checked_sub(1)?;
    let op = code.get(eq)?;
    let walrus = op.is_punct(":=");
    if !(op.is_punct("=") || (lang == Language::Go && walrus)) {
        return None;
    }
    let name = match lang {
        Language::Go | Language::Java => eq.checked_sub(1)?,
        _ => annotated_name(code, eq).or_else(|| eq.checked_sub(1))?,
    };
    let (path, first) = path_ending_at(code, name)?;
    let before = first.checked_sub(1).and_then(|k| code.get(k));
    let before_is = |w: &str| before.is_some_and(|t| t.is_ident(w));
    // A keyword argument or default parameter (`f(span=...)`) binds nothing
    // that outlives the call.
    let in_call =
        before.is_some_and(|t| t.is_punct("(") || (lang == Language::Python && t.is_punct(",")));
    if in_call {
        return None;
    }
    let decl = match lang {
        Language::JavaScript | Language::TypeScript => {
            before_is("const") || before_is("let") || before_is("var")
        }
        Language::Rust => {
            before_is("let")
                || (before_is("mut")
                    && first >= 2
                    && code.get(first - 2).is_some_and(|t| t.is_ident("let")))
        }
        Language::Go => walrus,
        Language::Java => before.is_some_and(|t| {
            (t.kind == TokenKind::Ident && !matches!(t.text, "return" | "else" | "case"))
                || t.is_punct(">")
                || t.is_punct("]")
        }),
        Language::Python => false,
    };
    Some(Binding { path, name, decl })
}

/// For `name: Type = ...` (TypeScript, Python, Rust), the index of `name`,
/// given the index of the `=`.
fn annotated_name(code: &Code<'_>, eq: usize) -> Option<usize> {
    let mut k = eq;
    let line = code.toks[eq].line;
    for _ in 0..16 {
        k = k.checked_sub(1)?;
        let t = &code.toks[k];
        // An annotation sits on the `=`'s line: a `:` on an earlier line
        // ends a block header (`if x:`, `with a as b:`), not an annotation.
        if t.line != line {
            return None;
        }
        if t.is_punct(":") {
            let name = k.checked_sub(1)?;
            return code.ident_at(name).then_some(name);
        }
        if t.kind == TokenKind::Punct && matches!(t.text, ";" | "{" | "}" | "=" | ":=") {
            return None;
        }
    }
    None
}

/// Java: whether the chain from `spanBuilder(` at `i` ends in
/// `.startSpan()`, i.e. yields a span rather than a builder.
fn java_chain_starts_span(code: &Code<'_>, i: usize) -> bool {
    let Some(close) = code.partner(i + 1) else {
        return false;
    };
    let mut k = close + 1;
    let mut last = "spanBuilder";
    for _ in 0..256 {
        if code.punct_at(k, ".") && code.ident_at(k + 1) && code.punct_at(k + 2, "(") {
            last = code.toks[k + 1].text;
            match code.partner(k + 2) {
                Some(c) => k = c + 1,
                None => break,
            }
        } else {
            break;
        }
    }
    last == "startSpan"
}

/// The top-level arguments of the call whose `(` is at `open`, as
/// half-open token ranges.
fn arguments(code: &Code<'_>, open: usize) -> Vec<(usize, usize)> {
    let Some(close) = code.partner(open) else {
        return Vec::new();
    };
    let mut args = Vec::new();
    let mut start = open + 1;
    let mut k = open + 1;
    while k < close {
        if code.punct_at(k, ",") {
            args.push((start, k));
            start = k + 1;
            k += 1;
        } else {
            k = match code.partner(k) {
                Some(p) if p > k => p + 1,
                _ => k + 1,
            };
        }
    }
    if start < close {
        args.push((start, close));
    }
    args
}

/// The span name given by the first argument that is a lone string literal
/// in the call whose name is at `i`.
fn first_string_arg(code: &Code<'_>, i: usize) -> Option<String> {
    arguments(code, i + 1).into_iter().find_map(|(a, b)| {
        let t = code.get(a)?;
        let literal = b == a + 1 && matches!(t.kind, TokenKind::Str | TokenKind::Template);
        literal.then_some(t.value).flatten().map(str::to_string)
    })
}

/// JavaScript/TypeScript `startActiveSpan(..., (span) => {...})` at `i`: the
/// never-ended span's name if the callback never ends its parameter.
fn callback_finding(code: &Code<'_>, index: &Index, i: usize) -> Option<String> {
    let open = i + 1;
    let close = code.partner(open)?;
    let (param, body) = arguments(code, open)
        .into_iter()
        .filter_map(|(a, b)| function_arg(code, a, b))
        .next_back()?;
    let param = param?;
    let name = code.toks[param].text;
    if has_between(&index.ends, name, body.saturating_sub(1), close) {
        return None;
    }
    Some(first_string_arg(code, i).unwrap_or_else(|| name.to_string()))
}

/// If the argument `a..b` is a function (`(span) => ...`, `span => ...`,
/// `async (span) => ...`, `function (span) {...}`): the index of its first
/// parameter (if it is a plain name) and where its body starts.
fn function_arg(code: &Code<'_>, a: usize, b: usize) -> Option<(Option<usize>, usize)> {
    let mut k = a;
    if code.get(k)?.is_ident("async") {
        k += 1;
    }
    if k >= b {
        return None;
    }
    let t = code.get(k)?;
    let first_param = |open: usize| code.ident_at(open + 1).then_some(open + 1);
    if t.is_punct("(") {
        let p = code.partner(k)?;
        return (p + 1 < b && code.punct_at(p + 1, "=>")).then(|| (first_param(k), p + 2));
    }
    if t.kind == TokenKind::Ident && code.punct_at(k + 1, "=>") {
        return Some((Some(k), k + 2));
    }
    if t.is_ident("function") {
        k += 1;
        if code.punct_at(k, "*") {
            k += 1;
        }
        if code.ident_at(k) {
            k += 1;
        }
        if code.punct_at(k, "(") {
            let p = code.partner(k)?;
            return Some((first_param(k), p + 1));
        }
    }
    None
}

/// Python: for each token, the index where its enclosing `def` ends (the
/// first line at or left of the `def`'s indentation), or the token count at
/// module level.
fn python_scope_ends(code: &Code<'_>) -> Vec<usize> {
    let n = code.toks.len();
    let mut def_end: Vec<usize> = Vec::new();
    let mut scope = vec![NONE; n];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut indent = 1;
    let mut prev_end_line = 0;
    for (i, t) in code.toks.iter().enumerate() {
        let continued = i > 0 && code.punct_at(i - 1, "\\");
        if depth == 0 && t.line > prev_end_line && !continued {
            indent = t.column;
            while let Some(&(col, id)) = stack.last() {
                if col < t.column {
                    break;
                }
                def_end[id] = i;
                stack.pop();
            }
        }
        scope[i] = stack.last().map_or(NONE, |&(_, id)| id);
        if t.is_ident("def") {
            def_end.push(n);
            stack.push((indent, def_end.len() - 1));
        }
        if t.kind == TokenKind::Punct {
            match t.text {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" | "}" => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        prev_end_line = t.line + t.text.matches('\n').count();
    }
    scope
        .into_iter()
        .map(|s| if s == NONE { n } else { def_end[s] })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::{analyze, Language};

    fn warnings(code: &str, lang: Language) -> Vec<String> {
        analyze(code, Some(lang)).unwrap().warnings
    }

    fn never(name: &str) -> Vec<String> {
        vec![format!("span '{name}' is never ended")]
    }

    const NONE: Vec<String> = Vec::new();

    #[test]
    fn javascript_ended_and_not() {
        let js = Language::JavaScript;
        assert_eq!(
            warnings("const span = tracer.startSpan('a'); span.end();", js),
            NONE
        );
        assert_eq!(
            warnings("const span = tracer.startSpan('child');", js),
            never("child")
        );
        assert_eq!(warnings("let s = tracer.startSpan(name);", js), never("s"));
        assert_eq!(
            warnings("var s; s = tracer.startSpan(`t`); if (x) { s?.end() }", js),
            NONE
        );
        assert_eq!(
            warnings(
                "this.span = this.tracer.startSpan('m');\nfunction f() { this.span.end(); }",
                js
            ),
            NONE
        );
    }

    #[test]
    fn javascript_end_in_text_does_not_count() {
        let js = Language::JavaScript;
        let code =
            "const span = tracer.startSpan('x');\n// span.end()\nlog('span.end()', `span.end()`);";
        assert_eq!(warnings(code, js), never("x"));
        let code = "const span = tracer.startSpan('x');\nlog(`${span.end()}`);";
        assert_eq!(warnings(code, js), NONE);
    }

    #[test]
    fn javascript_scopes() {
        let js = Language::JavaScript;
        let code = "function a() { const span = tracer.startSpan('a'); }\nfunction b() { const span = tracer.startSpan('b'); span.end(); }";
        assert_eq!(warnings(code, js), never("a"));
        let code = "span.end(); const span = tracer.startSpan('early');";
        assert_eq!(warnings(code, js), never("early"));
        let code =
            "const s1 = t.startSpan('one'), other = 1; const s2 = t.startSpan('two'); s2.end();";
        assert_eq!(warnings(code, js), never("one"));
    }

    #[test]
    fn typescript_annotations() {
        let ts = Language::TypeScript;
        assert_eq!(
            warnings("const span: Span = tracer.startSpan('t');", ts),
            never("t")
        );
        assert_eq!(
            warnings(
                "const span: Span | undefined = await tracer.startSpan(n); span.end();",
                ts
            ),
            NONE
        );
    }

    #[test]
    fn javascript_callback_form() {
        let js = Language::JavaScript;
        let ok = "tracer.startActiveSpan('op', async (span) => { await work(); span.end(); });";
        assert_eq!(warnings(ok, js), NONE);
        let ok = "tracer.startActiveSpan('op', opts, ctx, function (span) { try {} finally { span.end() } });";
        assert_eq!(warnings(ok, js), NONE);
        let bad = "tracer.startActiveSpan('op', (span) => { work(); });";
        assert_eq!(warnings(bad, js), never("op"));
        let bad = "tracer.startActiveSpan(name, s => work(s));";
        assert_eq!(warnings(bad, js), never("s"));
        let text = "tracer.startActiveSpan(name, s => { /* s.end() */ });";
        assert_eq!(warnings(text, js), never("s"));
        let result = "const r = tracer.startActiveSpan('x', (span) => { span.end(); return 1; });";
        assert_eq!(warnings(result, js), NONE);
    }

    #[test]
    fn python_forms() {
        let py = Language::Python;
        assert_eq!(
            warnings("span = tracer.start_span('p')\nspan.end()", py),
            NONE
        );
        assert_eq!(warnings("span = tracer.start_span('p')\n", py), never("p"));
        assert_eq!(
            warnings(
                "with tracer.start_as_current_span('w') as span:\n    work()\n",
                py
            ),
            NONE
        );
        assert_eq!(
            warnings(
                "with tracer.start_span('w') as span, open(f) as g:\n    pass\n",
                py
            ),
            NONE
        );
        assert_eq!(
            warnings("s = tracer.start_span('p')\nwith s:\n    pass\n", py),
            NONE
        );
        assert_eq!(
            warnings(
                "s = tracer.start_span('p')\nwith trace.use_span(s, end_on_exit=True):\n    pass\n",
                py
            ),
            NONE
        );
        assert_eq!(
            warnings("s: Span = tracer.start_span(n)\n# s.end()\n", py),
            never("s")
        );
        assert_eq!(warnings("run(a, span=tracer.start_span('k'))\n", py), NONE);
    }

    #[test]
    fn python_binding_after_a_block_header_is_not_an_annotation() {
        for header in [
            "if ready:",
            "with tracer.start_as_current_span('outer') as outer:",
            "for x in xs:",
        ] {
            let code = format!("def handle(req):\n    {header}\n        s = tracer.start_span('inner')\n        s.end()\n");
            assert!(warnings(&code, Language::Python).is_empty(), "{code}");
            let leak =
                format!("def handle(req):\n    {header}\n        s = tracer.start_span('inner')\n");
            assert_eq!(warnings(&leak, Language::Python), never("inner"), "{leak}");
        }
    }

    #[test]
    fn python_scopes_by_indentation() {
        let py = Language::Python;
        let code = "def a():\n    span = tracer.start_span('a')\n    try:\n        work()\n    finally:\n        span.end()\n\ndef b():\n    span = tracer.start_span('b')\n\ndef c():\n    span.end()\n";
        assert_eq!(warnings(code, py), never("b"));
        let code = "def a():\n    span = tracer.start_span('a',\nattrs={})\n    x = (1,\n2)\n    span.end()\n";
        assert_eq!(warnings(code, py), NONE);
    }

    #[test]
    fn go_forms() {
        let go = Language::Go;
        let code = "func f(ctx context.Context) {\n\tctx, span := tracer.Start(ctx, \"op\")\n\tdefer span.End()\n}";
        assert_eq!(warnings(code, go), NONE);
        let code = "func f(ctx context.Context) {\n\tctx, span := tracer.Start(ctx, \"op\")\n\t// span.End()\n}";
        assert_eq!(warnings(code, go), never("op"));
        let code = "func f() {\n\t_, span := tracer.Start(ctx, name)\n\tspan.end()\n}";
        assert_eq!(warnings(code, go), never("span"));
        let code = "ctx, _ := tracer.Start(ctx, \"x\")";
        assert_eq!(warnings(code, go), NONE);
    }

    #[test]
    fn java_forms() {
        let java = Language::Java;
        let ok = "Span span = tracer.spanBuilder(\"op\").startSpan();\ntry (Scope scope = span.makeCurrent()) { work(); } finally { span.end(); }";
        assert_eq!(warnings(ok, java), NONE);
        let bad = "Span span = tracer.spanBuilder(\"op\").setParent(ctx).startSpan();\ntry (Scope scope = span.makeCurrent()) { work(); }";
        assert_eq!(warnings(bad, java), never("op"));
        let builder = "SpanBuilder b = tracer.spanBuilder(\"op\");";
        assert_eq!(warnings(builder, java), NONE);
    }

    #[test]
    fn rust_forms() {
        let rs = Language::Rust;
        assert_eq!(
            warnings(
                "fn f() { let span = tracer.start_span(\"a\"); work(); }",
                rs
            ),
            NONE
        );
        assert_eq!(
            warnings(
                "fn f() { let span = tracer.start_span(\"a\"); drop(span); }",
                rs
            ),
            NONE
        );
        assert_eq!(
            warnings(
                "fn f() { let mut span = tracer.start_span(\"f\"); std::mem::forget(span); }",
                rs
            ),
            never("f")
        );
        assert_eq!(
            warnings(
                "fn f() { let span: BoxedSpan = t.start_span(n); mem::forget(span); }",
                rs
            ),
            never("span")
        );
        assert_eq!(
            warnings(
                "fn f() { let span = t.start_span(n); // std::mem::forget(span);\n }",
                rs
            ),
            NONE
        );
        assert_eq!(
            warnings("fn f() { let mut span = t.start_span(\"e\"); span.end(); std::mem::forget(span); }", rs),
            NONE
        );
    }
}
