//! Language detection from the code itself.
//!
//! The code is split roughly into words and punctuation (no lexer is needed:
//! a keyword inside a string only nudges a score), and each language earns
//! points for its telltale keywords and shapes. A feature counts at most
//! [`CAP`] times, so one language's common token (Rust's `=>` in `match`,
//! say) cannot outvote another's distinctive ones. TypeScript scores as
//! JavaScript plus its own features, and only when it has some. Ties and
//! code with no clue at all go to JavaScript.

use crate::Language;

/// How many times one feature may score.
const CAP: u32 = 4;

/// Multi-character punctuation the rough splitter keeps whole.
const MULTI: &[&str] = &[
    "===", "!==", "#![", "#[", "::", ":=", "=>", "->", "==", "!=", "&'", "?:",
];

#[derive(Debug, Clone, Copy)]
struct Rough<'a> {
    text: &'a str,
    word: bool,
    /// First token on its line.
    first: bool,
    /// Last token on its line.
    last: bool,
}

fn split(code: &str) -> Vec<Rough<'_>> {
    let mut out: Vec<Rough<'_>> = Vec::new();
    let mut first = true;
    let mut rest = code;
    let mut offset = 0;
    while let Some(c) = rest.chars().next() {
        let len = if c == '\n' {
            if let Some(t) = out.last_mut() {
                t.last = true;
            }
            first = true;
            1
        } else if c.is_whitespace() {
            c.len_utf8()
        } else {
            let (len, word) = if c == '_' || c.is_alphanumeric() {
                let len = rest
                    .char_indices()
                    .find(|&(_, c)| !(c == '_' || c == '$' || c.is_alphanumeric()))
                    .map_or(rest.len(), |(i, _)| i);
                (len, true)
            } else {
                let len = MULTI
                    .iter()
                    .find(|p| rest.starts_with(*p))
                    .map_or(c.len_utf8(), |p| p.len());
                (len, false)
            };
            out.push(Rough {
                text: &code[offset..offset + len],
                word,
                first,
                last: false,
            });
            first = false;
            len
        };
        offset += len;
        rest = &rest[len..];
    }
    if let Some(t) = out.last_mut() {
        t.last = true;
    }
    out
}

/// Scores, indexed like [`Language::ALL`]; TypeScript holds only its own
/// features until the end.
struct Scores {
    points: [u32; 6],
    counts: std::collections::HashMap<&'static str, u32>,
}

impl Scores {
    fn add(&mut self, lang: Language, feature: &'static str, weight: u32) {
        let n = self.counts.entry(feature).or_insert(0);
        if *n < CAP {
            *n += 1;
            self.points[index(lang)] += weight;
        }
    }
}

fn index(lang: Language) -> usize {
    Language::ALL.iter().position(|&l| l == lang).unwrap_or(0)
}

const RUST_TYPES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "str", "Self", "Vec", "Option", "Result", "Box",
];

const TS_TYPES: &[&str] = &[
    "string", "number", "boolean", "any", "void", "unknown", "never", "Promise", "Record",
];

/// Guesses the language of `code`; see the module docs.
pub(crate) fn detect(code: &str) -> Language {
    use Language::*;
    let mut end = code.len().min(crate::MAX_CODE_BYTES);
    while !code.is_char_boundary(end) {
        end -= 1;
    }
    let toks = split(&code[..end]);
    let mut s = Scores {
        points: [0; 6],
        counts: std::collections::HashMap::new(),
    };
    let at = |i: usize| toks.get(i).map_or("", |t| t.text);
    let word_at = |i: usize| toks.get(i).is_some_and(|t| t.word);
    let mut line_start = 0;
    for (i, t) in toks.iter().enumerate() {
        if t.first {
            line_start = i;
        }
        let (n1, n2, n3) = (at(i + 1), at(i + 2), at(i + 3));
        let prev = if i > 0 { at(i - 1) } else { "" };
        let line_head = at(line_start);
        match t.text {
            // Rust
            "fn" if word_at(i + 1) => s.add(Rust, "fn", 3),
            "let" if n1 == "mut" => s.add(Rust, "let mut", 3),
            "#[" | "#![" => s.add(Rust, "#[", 3),
            "::" => s.add(Rust, "::", 1),
            "impl" => s.add(Rust, "impl", 2),
            "pub" if matches!(n1, "fn" | "struct" | "enum" | "mod" | "use" | "crate" | "(") => {
                s.add(Rust, "pub fn", 3)
            }
            "use" if t.first && n2 == "::" => s.add(Rust, "use", 3),
            "mut" => s.add(Rust, "mut", 1),
            ":" | "->" | "<" if RUST_TYPES.contains(&n1) => s.add(Rust, ": u8", 2),
            "&'" => s.add(Rust, "lifetime", 2),
            "println" | "format" | "vec" | "panic" | "eprintln" | "assert_eq" if n1 == "!" => {
                s.add(Rust, "macro!", 3)
            }
            "Some" | "Ok" | "Err" if n1 == "(" => s.add(Rust, "Some(", 1),
            "self" if prev == "&" => s.add(Rust, "&self", 3),
            "unwrap" => s.add(Rust, "unwrap", 1),
            "traced" if prev == "[" || prev == "::" => s.add(Rust, "#[traced]", 2),
            "start_span" => {
                // Rust statements end with `;` or start with `let`; Python's do not.
                let line_end = toks[i..toks.len().min(i + 64)]
                    .iter()
                    .find(|t| t.last)
                    .map_or("", |t| t.text);
                if line_head == "let" || line_end == ";" {
                    s.add(Rust, "start_span;", 1)
                } else {
                    s.add(Python, "start_span", 1)
                }
            }
            // Go
            "func" => s.add(Go, "func", 3),
            "package" if t.first && word_at(i + 1) && !matches!(n2, "." | ";") => {
                s.add(Go, "package", 4)
            }
            ":=" => s.add(Go, ":=", 2),
            "defer" => s.add(Go, "defer", 3),
            "chan" => s.add(Go, "chan", 2),
            "err" if n1 == "!=" && n2 == "nil" => s.add(Go, "err != nil", 3),
            "nil" => s.add(Go, "nil", 1),
            "fmt" if n1 == "." => s.add(Go, "fmt.", 2),
            "import" if n1 == "(" && toks.get(i + 1).is_some_and(|t| t.last) => {
                s.add(Go, "import (", 3)
            }
            "type" if word_at(i + 1) && matches!(n2, "struct" | "interface") => {
                s.add(Go, "type struct", 3)
            }
            "Start" if prev == "." && n1 == "(" && n2 == "ctx" => s.add(Go, "Start(ctx", 2),
            // Python
            "def" if word_at(i + 1) && n2 == "(" => s.add(Python, "def", 3),
            "import" if t.first && word_at(i + 1) => {
                let rest = &toks[i..toks.len().min(i + 64)];
                let line_end = rest.iter().position(|t| t.last).unwrap_or(rest.len() - 1);
                let line = &rest[..=line_end];
                if !line.iter().any(|t| matches!(t.text, "from" | ";" | "{")) {
                    s.add(Python, "import", 2);
                } else if line.last().is_some_and(|t| t.text == ";")
                    && matches!(n1, "java" | "javax" | "io" | "org" | "com")
                    && n2 == "."
                {
                    s.add(Java, "import java", 3);
                }
            }
            "from" if t.first && word_at(i + 1) && !matches!(n1, "import") => {
                let rest = toks[i..].iter().take(16);
                if rest.clone().any(|t| t.text == "import") {
                    s.add(Python, "from import", 3);
                }
            }
            "elif" => s.add(Python, "elif", 3),
            "except" => s.add(Python, "except", 2),
            "self" if n1 == "." || n1 == "," || n1 == ")" => s.add(Python, "self", 1),
            "None" => s.add(Python, "None", 1),
            "True" | "False" => s.add(Python, "True", 1),
            "lambda" => s.add(Python, "lambda", 2),
            "pass" if t.first && t.last => s.add(Python, "pass", 2),
            "__init__" | "__name__" | "__main__" => s.add(Python, "dunder", 2),
            "as" if line_head == "with" || line_head == "async" => s.add(Python, "with as", 2),
            ":" if t.last
                && matches!(
                    line_head,
                    "if" | "for"
                        | "while"
                        | "def"
                        | "class"
                        | "else"
                        | "elif"
                        | "try"
                        | "except"
                        | "finally"
                        | "with"
                ) =>
            {
                s.add(Python, "block:", 1)
            }
            "start_as_current_span" => s.add(Python, "start_as_current_span", 2),
            // Java
            "public" | "private" | "protected"
                if matches!(
                    n1,
                    "class" | "interface" | "static" | "final" | "void" | "abstract"
                ) || (word_at(i + 1) && word_at(i + 2) && n3 == "(") =>
            {
                s.add(Java, "public", 2);
                if n1 == "class" {
                    s.add(Java, "public class", 2);
                }
            }
            "System" if n1 == "." && matches!(n2, "out" | "err") => s.add(Java, "System.out", 3),
            "Override" if prev == "@" => s.add(Java, "@Override", 3),
            "throws" => s.add(Java, "throws", 2),
            "String" if word_at(i + 1) && matches!(n2, "=" | ";" | "," | ")") => {
                s.add(Java, "String x", 2)
            }
            "spanBuilder" => s.add(Java, "spanBuilder", 3),
            "void" if word_at(i + 1) && n2 == "(" => s.add(Java, "void f(", 2),
            "final" => s.add(Java, "final", 1),
            // TypeScript
            "interface"
                if word_at(i + 1)
                    && matches!(n2, "{" | "<" | "extends")
                    && !matches!(prev, "public" | "private" | "protected") =>
            {
                s.add(TypeScript, "interface", 3)
            }
            ":" if TS_TYPES.contains(&n1) => s.add(TypeScript, ": string", 3),
            "?:" => s.add(TypeScript, "?:", 2),
            "type" if word_at(i + 1) && n2 == "=" => s.add(TypeScript, "type =", 2),
            "as" if n1 == "const" => s.add(TypeScript, "as const", 2),
            "readonly" | "declare" | "namespace" => s.add(TypeScript, "readonly", 2),
            // JavaScript
            "function" => s.add(JavaScript, "function", 3),
            "const" => s.add(JavaScript, "const", 2),
            "=>" => s.add(JavaScript, "=>", 1),
            "let" => {
                s.add(JavaScript, "let (js)", 1);
                s.add(Rust, "let (rust)", 1)
            }
            "var" => s.add(JavaScript, "var", 2),
            "console" if n1 == "." => s.add(JavaScript, "console.", 3),
            "require" if n1 == "(" => s.add(JavaScript, "require(", 3),
            "===" | "!==" => s.add(JavaScript, "===", 3),
            "undefined" | "typeof" => s.add(JavaScript, "undefined", 2),
            "export" => s.add(JavaScript, "export", 2),
            "module" if n1 == "." && n2 == "exports" => s.add(JavaScript, "module.exports", 3),
            "document" | "window" if n1 == "." => s.add(JavaScript, "document.", 2),
            "startSpan" | "startActiveSpan" if prev == "." => s.add(JavaScript, "startSpan", 1),
            _ => {}
        }
    }
    let js = s.points[index(JavaScript)];
    let ts = s.points[index(TypeScript)];
    s.points[index(TypeScript)] = if ts > 0 { js + ts } else { 0 };
    let mut best = JavaScript;
    for lang in Language::ALL {
        if s.points[index(lang)] > s.points[index(best)] {
            best = lang;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    #[test]
    fn rust() {
        assert_eq!(detect("fn main() {\n    let mut x = 1;\n}"), Rust);
        assert_eq!(detect("#[traced]\nasync fn handle() {}"), Rust);
        assert_eq!(
            detect("use std::io;\nlet span = tracer.start_span(\"x\");"),
            Rust
        );
        assert_eq!(
            detect(
                "impl Foo { fn f(&self) -> Option<u8> { match x { Some(v) => v, None => 0 } } }"
            ),
            Rust
        );
    }

    #[test]
    fn go() {
        assert_eq!(
            detect("package main\n\nfunc main() {\n\tctx, span := tracer.Start(ctx, \"x\")\n\tdefer span.End()\n}"),
            Go
        );
        assert_eq!(detect("x := 1"), Go);
        assert_eq!(detect("if err != nil {\n\treturn err\n}"), Go);
    }

    #[test]
    fn python() {
        assert_eq!(
            detect("def handler(req):\n    with tracer.start_as_current_span('x') as span:\n        pass"),
            Python
        );
        assert_eq!(detect("import os\nprint(os.name)"), Python);
        assert_eq!(detect("from opentelemetry import trace"), Python);
        assert_eq!(detect("if x:\n    y = None"), Python);
        assert_eq!(detect("span = tracer.start_span('x')\nspan.end()"), Python);
    }

    #[test]
    fn java() {
        assert_eq!(
            detect("public class Main {\n  public static void main(String[] args) {\n    System.out.println(\"hi\");\n  }\n}"),
            Java
        );
        assert_eq!(
            detect("@Override\npublic String toString() { return \"\"; }"),
            Java
        );
        assert_eq!(
            detect("Span span = tracer.spanBuilder(\"x\").startSpan();"),
            Java
        );
        assert_eq!(detect("import io.opentelemetry.api.trace.Span;"), Java);
    }

    #[test]
    fn typescript() {
        assert_eq!(
            detect("interface Options { name: string }\nconst o: Options = { name: 'x' };"),
            TypeScript
        );
        assert_eq!(
            detect("function f(x: number): string { return String(x); }"),
            TypeScript
        );
        assert_eq!(detect("type Id = string | number;"), TypeScript);
        assert_eq!(
            detect("async function f(): Promise<Span> { return tracer.startSpan('x'); }"),
            TypeScript
        );
    }

    #[test]
    fn javascript() {
        assert_eq!(
            detect("const span = tracer.startSpan('x');\nspan.end();"),
            JavaScript
        );
        assert_eq!(detect("function f() { return x === 1; }"), JavaScript);
        assert_eq!(detect("let x = () => 1;"), JavaScript);
        assert_eq!(detect("module.exports = require('x');"), JavaScript);
    }

    #[test]
    fn default_is_javascript() {
        assert_eq!(detect(""), JavaScript);
        assert_eq!(detect("x"), JavaScript);
        assert_eq!(detect("1 + 2"), JavaScript);
    }

    #[test]
    fn rust_match_arms_do_not_make_javascript() {
        let code = "fn f(x: u8) -> u8 {\n    let a = 1;\n    let b = 2;\n    let c = 3;\n    match x { 1 => a, 2 => b, 3 => c, 4 => a, 5 => b, _ => c }\n}";
        assert_eq!(detect(code), Rust);
    }
}
