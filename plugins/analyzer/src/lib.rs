//! Lexers and span-lifecycle analysis behind the `manual_instrument` plugin.
//!
//! [`analyze`] reads source code with a real lexer for its language family
//! (the text of strings, template literals and comments is not code; a
//! JavaScript template literal's `${...}` is), checks that `()[]{}` balance on
//! code tokens, counts the places that start a span and checks that every span
//! held in a variable is ended somewhere after it is started.
//!
//! Span-starting call sites, per language:
//!
//! | language | counted |
//! | --- | --- |
//! | JavaScript, TypeScript | `startSpan(...)` and `startActiveSpan(...)`, as a method (`tracer.startSpan(`) or a bare call |
//! | Python | `start_span(...)` and `start_as_current_span(...)` (decorator uses too) |
//! | Rust | `start_span(...)` and the attributes `#[traced]`, `#[traced(...)]`, `#[tracer::traced]` |
//! | Go | `.Start(...)` on a receiver (`tracer.Start(ctx, "x")`) |
//! | Java | one per `spanBuilder(...)...startSpan()` chain (each `spanBuilder(` call) |
//!
//! Definitions (`function startSpan(`, `def start_span(`, `fn start_span(`,
//! class methods) are not call sites, and neither is anything inside a string
//! or a comment.
//!
//! The lifecycle check looks at every span bound to a name and warns
//! `span 'NAME' is never ended` when no end of it follows on code tokens in
//! the same scope: `NAME.end()` (JavaScript, TypeScript, Python, Java),
//! `NAME.End()` (Go, `defer` included), a `with` block (Python), the end of the
//! scope (Rust, unless `std::mem::forget(NAME)` is called on it). In the
//! warning, `NAME` is the span's name when its first string-literal argument
//! gives one (`tracer.startSpan('child')` gives `child`) and otherwise the
//! variable's (or callback parameter's) name. Python f-string replacement
//! fields (`f"{...}"`) are read as text, not code.
//!
//! ```
//! use tracer_analyzer::{analyze, Language};
//!
//! let code = "async function process() {
//!     const span = tracer.startSpan('process');
//!     try { await work(); span.end(); } catch (e) { span.recordException(e); throw e; }
//! }";
//! let analysis = analyze(code, None).unwrap();
//! assert_eq!(analysis.language, Language::JavaScript);
//! assert_eq!(analysis.spans_created, 1);
//! assert!(analysis.warnings.is_empty());
//!
//! let leaky = analyze("const s = tracer.startSpan('child');", None).unwrap();
//! assert_eq!(leaky.warnings, ["span 'child' is never ended"]);
//!
//! let err = analyze("x = 'oops", Some(Language::Python)).unwrap_err();
//! assert_eq!(err.to_string(), "unterminated string starting at line 1, column 5");
//! ```
#![forbid(unsafe_code)]

mod detect;
pub mod lexer;
mod lifecycle;
mod sites;

use std::fmt;

/// The largest piece of code [`analyze`] accepts, in bytes (1 MiB).
pub const MAX_CODE_BYTES: usize = 1 << 20;

/// A source language the analyzer can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// JavaScript (also the default when detection finds nothing better).
    JavaScript,
    /// TypeScript, lexed like JavaScript.
    TypeScript,
    /// Python.
    Python,
    /// Rust.
    Rust,
    /// Go.
    Go,
    /// Java.
    Java,
}

impl Language {
    /// The accepted language names, for error texts.
    pub const ACCEPTED: &'static str = "javascript, typescript, python, rust, go, java";

    /// Every language, in the order of [`Language::ACCEPTED`].
    pub const ALL: [Language; 6] = [
        Language::JavaScript,
        Language::TypeScript,
        Language::Python,
        Language::Rust,
        Language::Go,
        Language::Java,
    ];

    /// Parses a user-supplied name, case-insensitively (surrounding blanks
    /// ignored); accepts the aliases `js`, `ts`, `py`, `rs` and `golang`.
    pub fn from_name(name: &str) -> Option<Language> {
        match name.trim().to_ascii_lowercase().as_str() {
            "javascript" | "js" => Some(Language::JavaScript),
            "typescript" | "ts" => Some(Language::TypeScript),
            "python" | "py" => Some(Language::Python),
            "rust" | "rs" => Some(Language::Rust),
            "go" | "golang" => Some(Language::Go),
            "java" => Some(Language::Java),
            _ => None,
        }
    }

    /// The canonical lower-case name: `"javascript"`, `"typescript"`,
    /// `"python"`, `"rust"`, `"go"` or `"java"`.
    pub fn name(self) -> &'static str {
        match self {
            Language::JavaScript => "javascript",
            Language::TypeScript => "typescript",
            Language::Python => "python",
            Language::Rust => "rust",
            Language::Go => "go",
            Language::Java => "java",
        }
    }
}

/// The result of a successful [`analyze`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The language the code was read as (given or detected).
    pub language: Language,
    /// How many span-starting call sites the code has.
    pub spans_created: usize,
    /// Lifecycle findings, e.g. `span 'child' is never ended`, in source
    /// order; empty when there are none.
    pub warnings: Vec<String>,
}

/// Why code could not be analyzed: it cannot be lexed (unterminated string,
/// comment, template literal...), its brackets do not balance, or it is over
/// [`MAX_CODE_BYTES`].
///
/// `message` is the whole human-readable text, position included (for
/// example `unterminated string starting at line 3, column 14`); `Display`
/// prints it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzeError {
    /// 1-based line of the offending construct's start.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The full description, including where.
    pub message: String,
}

impl fmt::Display for AnalyzeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AnalyzeError {}

/// Guesses the language of `code` from its keywords and shapes (`fn`,
/// `let mut`, `#[`, `::` for Rust; `func`, `package`, `:=` for Go; `def`,
/// `import x`, `:` blocks, `with ... as` for Python; `public class`,
/// `System.out`, `@Override` for Java; `interface`, `: string` for
/// TypeScript; `function`, `const`, `=>` for JavaScript). Score-based;
/// JavaScript when nothing stands out.
pub fn detect_language(code: &str) -> Language {
    detect::detect(code)
}

/// Lexes `code` as `language` (detected with [`detect_language`] when
/// `None`), counts its span-starting call sites and runs the lifecycle check.
///
/// Errors when the code is over [`MAX_CODE_BYTES`], cannot be lexed
/// (unterminated string, template literal, comment, text block...) or has
/// unbalanced brackets; the error says where.
pub fn analyze(code: &str, language: Option<Language>) -> Result<Analysis, AnalyzeError> {
    if code.len() > MAX_CODE_BYTES {
        return Err(AnalyzeError {
            line: 1,
            column: 1,
            message: format!(
                "code is {} bytes, over the {} byte (1 MiB) limit",
                code.len(),
                MAX_CODE_BYTES
            ),
        });
    }
    let language = language.unwrap_or_else(|| detect::detect(code));
    let tokens = lexer::tokenize(code, language)?;
    let code = lexer::Code::new(tokens)?;
    let sites = sites::find(&code, language);
    let warnings = lifecycle::check(&code, language, &sites);
    Ok(Analysis {
        language,
        spans_created: sites.len(),
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for lang in Language::ALL {
            assert_eq!(Language::from_name(lang.name()), Some(lang));
        }
        assert_eq!(Language::ACCEPTED.split(", ").count(), Language::ALL.len());
    }

    #[test]
    fn aliases_and_case() {
        assert_eq!(Language::from_name("JS"), Some(Language::JavaScript));
        assert_eq!(Language::from_name("Ts"), Some(Language::TypeScript));
        assert_eq!(Language::from_name("PY"), Some(Language::Python));
        assert_eq!(Language::from_name("rs"), Some(Language::Rust));
        assert_eq!(Language::from_name("GoLang"), Some(Language::Go));
        assert_eq!(Language::from_name("JAVA"), Some(Language::Java));
        assert_eq!(Language::from_name("cobol"), None);
        assert_eq!(Language::from_name(""), None);
    }

    #[test]
    fn seed_case() {
        let code = "async function process() { const span = tracer.startSpan('process'); try { await work(); span.end(); } catch(e) { span.recordException(e); throw; } }";
        let a = analyze(code, None).unwrap();
        assert_eq!(a.language, Language::JavaScript);
        assert_eq!(a.spans_created, 1);
        assert!(a.warnings.is_empty());
        let a = analyze(code, Some(Language::TypeScript)).unwrap();
        assert_eq!(a.spans_created, 1);
        assert!(a.warnings.is_empty());
    }

    #[test]
    fn size_cap() {
        let code = " ".repeat(MAX_CODE_BYTES + 1);
        let err = analyze(&code, Some(Language::JavaScript)).unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        assert!(err.message.contains(&(MAX_CODE_BYTES + 1).to_string()));
        assert!(err.message.contains(&MAX_CODE_BYTES.to_string()));
        let ok = " ".repeat(MAX_CODE_BYTES);
        assert!(analyze(&ok, None).is_ok());
    }

    #[test]
    fn error_display_is_message() {
        let err = analyze("\n\nlet x = 1 + 'abc;", Some(Language::JavaScript)).unwrap_err();
        assert_eq!((err.line, err.column), (3, 13));
        assert_eq!(
            err.to_string(),
            "unterminated string starting at line 3, column 13"
        );
    }

    #[test]
    fn errors_say_where() {
        use Language::*;
        let cases: &[(&str, Language, (usize, usize), &str)] = &[
            ("f('a',\n  \"b);", JavaScript, (2, 3), "unterminated string"),
            (
                "x = `a ${b} c",
                TypeScript,
                (1, 5),
                "unterminated template literal",
            ),
            (
                "a();\n/* never",
                JavaScript,
                (2, 1),
                "unterminated block comment",
            ),
            (
                "fn f() {}\n  /* /* */",
                Rust,
                (2, 3),
                "unterminated block comment",
            ),
            ("s = '''abc\n\n", Python, (1, 5), "unterminated string"),
            ("s := `abc", Go, (1, 6), "unterminated raw string"),
            (
                "String s = \"\"\"\n   text\n",
                Java,
                (1, 12),
                "unterminated text block",
            ),
            (
                "fn f() {\n    g(1;\n}",
                Rust,
                (3, 1),
                "mismatched closing '}'",
            ),
            ("def f():\n    x = [1, 2\n", Python, (2, 9), "unclosed '['"),
            ("func f() {\n}\n}", Go, (3, 1), "unmatched closing '}'"),
            ("class A { void f() { }", Java, (1, 9), "unclosed '{'"),
        ];
        for &(code, lang, (line, column), what) in cases {
            let err = analyze(code, Some(lang)).unwrap_err();
            assert_eq!((err.line, err.column), (line, column), "{code:?}: {err}");
            assert!(err.message.starts_with(what), "{code:?}: {err}");
            assert!(
                err.message
                    .contains(&format!("line {line}, column {column}")),
                "{err}"
            );
        }
    }

    #[test]
    fn detection_per_language() {
        use Language::*;
        let cases = [
            ("fn main() { let mut s = tracer.start_span(\"x\"); }", Rust),
            (
                "package main\nfunc main() { ctx, span := tracer.Start(ctx, \"x\") }",
                Go,
            ),
            (
                "def f():\n    with tracer.start_as_current_span('x') as s:\n        pass",
                Python,
            ),
            (
                "public class A { @Override public void run() { System.out.println(1); } }",
                Java,
            ),
            (
                "interface A { name: string }\nconst a: A = { name: 'x' };",
                TypeScript,
            ),
            (
                "const span = tracer.startSpan('x');\nspan.end();",
                JavaScript,
            ),
        ];
        for (code, lang) in cases {
            assert_eq!(detect_language(code), lang, "{code}");
            assert_eq!(analyze(code, None).unwrap().language, lang, "{code}");
        }
    }

    #[test]
    fn given_language_wins() {
        let a = analyze("fn main() { let mut x = 1; }", Some(Language::Go)).unwrap();
        assert_eq!(a.language, Language::Go);
    }
}
