//! The Rust lexer: strings with escapes, raw strings `r#"..."#` with any
//! number of `#`, byte and C strings (`b""`, `br""`, `c""`), character and
//! byte literals told apart from lifetimes and loop labels, raw identifiers,
//! line comments and nested block comments.

use super::{
    block_comment, is_ident_continue, is_ident_start, line_comment, number, punct, quoted,
    unterminated, Cursor, Mark, Token, TokenKind,
};
use crate::AnalyzeError;

const PUNCT: &[&str] = &[
    "..=", "...", "<<=", ">>=", "::", "->", "=>", "==", "!=", "<=", ">=", "&&", "||", "+=", "-=",
    "*=", "/=", "%=", "^=", "&=", "|=", "<<", ">>", "..",
];

/// Lexes Rust.
pub(crate) fn lex(src: &str) -> Result<Vec<Token<'_>>, AnalyzeError> {
    let mut cur = Cursor::new(src);
    let mut out = Vec::new();
    if cur.starts_with("#!") && !cur.starts_with("#![") {
        let m = cur.mark();
        line_comment(&mut cur);
        out.push(cur.token(TokenKind::Comment, m));
    }
    while let Some(c) = cur.peek() {
        let m = cur.mark();
        let next = cur.peek_nth(1);
        if c.is_whitespace() {
            cur.bump();
        } else if c == '/' && next == Some('/') {
            line_comment(&mut cur);
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '/' && next == Some('*') {
            block_comment(&mut cur, true)?;
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '"' {
            cur.bump();
            let value = quoted(&mut cur, '"', true, "string", m)?;
            out.push(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '\'' {
            out.push(quote(&mut cur, m)?);
        } else if is_ident_start(c) {
            out.push(ident_or_literal(&mut cur, m)?);
        } else if c.is_ascii_digit() {
            number(&mut cur);
            out.push(cur.token(TokenKind::Number, m));
        } else {
            punct(&mut cur, PUNCT);
            out.push(cur.token(TokenKind::Punct, m));
        }
    }
    Ok(out)
}

/// Lexes what starts with `'` at `m`: a character literal (`'a'`, `'\n'`,
/// `'\u{1F600}'`, `'''`) or a lifetime / loop label (`'a`, `'static`).
fn quote<'a>(cur: &mut Cursor<'a>, m: Mark) -> Result<Token<'a>, AnalyzeError> {
    match (cur.peek_nth(1), cur.peek_nth(2)) {
        (Some('\\'), _) => {
            cur.bump();
            char_body(cur, m)?;
            Ok(cur.token(TokenKind::Char, m))
        }
        (Some(_), Some('\'')) => {
            cur.bump_n(3);
            Ok(cur.token(TokenKind::Char, m))
        }
        (Some(c), _) if is_ident_start(c) => {
            cur.bump();
            cur.eat_while(is_ident_continue);
            Ok(cur.token(TokenKind::Lifetime, m))
        }
        _ => Err(unterminated("character literal", m)),
    }
}

/// The rest of a character literal whose opening `'` was just consumed and
/// whose content is an escape (the cursor is on the backslash).
fn char_body(cur: &mut Cursor<'_>, m: Mark) -> Result<(), AnalyzeError> {
    cur.bump();
    match cur.bump() {
        None | Some('\n') => return Err(unterminated("character literal", m)),
        Some('u') if cur.peek() == Some('{') => {
            // `\u{...}`: at most 6 hex digits, so stay bounded.
            for _ in 0..8 {
                match cur.bump() {
                    Some('}') => break,
                    None | Some('\n') | Some('\'') => {
                        return Err(unterminated("character literal", m))
                    }
                    Some(_) => {}
                }
            }
        }
        Some('x') => {
            cur.eat_while(|c| c.is_ascii_hexdigit());
        }
        Some(_) => {}
    }
    if cur.peek() == Some('\'') {
        cur.bump();
        Ok(())
    } else {
        Err(unterminated("character literal", m))
    }
}

/// Lexes an identifier, or a literal that starts like one: raw strings
/// (`r"..."`, `br#"..."#`, `cr"..."`), byte and C strings (`b"..."`,
/// `c"..."`), byte literals (`b'a'`) and raw identifiers (`r#type`).
fn ident_or_literal<'a>(cur: &mut Cursor<'a>, m: Mark) -> Result<Token<'a>, AnalyzeError> {
    let mut word = *cur;
    word.eat_while(is_ident_continue);
    let ident = word.since(m);
    let after = word.peek();
    match (ident, after) {
        ("r" | "br" | "cr", Some('"' | '#')) => {
            let hashes = word.count_bytes(b'#');
            if word.byte_at(hashes) == Some(b'"') {
                *cur = word;
                return raw_string(cur, m, hashes);
            }
            if ident == "r" && hashes == 1 && word.peek_nth(1).is_some_and(is_ident_start) {
                word.bump();
                word.eat_while(is_ident_continue);
            }
            *cur = word;
            Ok(cur.token(TokenKind::Ident, m))
        }
        ("b" | "c", Some('"')) => {
            *cur = word;
            cur.bump();
            let value = quoted(cur, '"', true, "string", m)?;
            Ok(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            })
        }
        ("b", Some('\'')) => {
            *cur = word;
            if cur.peek_nth(1) == Some('\\') {
                cur.bump();
                char_body(cur, m)?;
            } else if cur.peek_nth(2) == Some('\'') {
                cur.bump_n(3);
            } else {
                return Err(unterminated("byte literal", m));
            }
            Ok(cur.token(TokenKind::Char, m))
        }
        _ => {
            *cur = word;
            Ok(cur.token(TokenKind::Ident, m))
        }
    }
}

/// Lexes a raw string: the cursor is on its first `#` (or its `"` when
/// `hashes` is 0); it ends at a `"` followed by `hashes` `#`s.
fn raw_string<'a>(cur: &mut Cursor<'a>, m: Mark, hashes: usize) -> Result<Token<'a>, AnalyzeError> {
    cur.bump_n(hashes + 1);
    let body = cur.offset();
    let closing = format!("\"{}", "#".repeat(hashes));
    loop {
        let end = cur.offset();
        if cur.eat(&closing) {
            return Ok(Token {
                value: Some(cur.slice(body, end)),
                ..cur.token(TokenKind::Str, m)
            });
        }
        if cur.bump().is_none() {
            return Err(unterminated("raw string", m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, &str)> {
        lex(src)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn chars_versus_lifetimes() {
        use TokenKind::*;
        assert_eq!(
            kinds("fn f<'a>(x: &'a str) -> &'static str { 'outer: loop { break 'outer; } }")
                .into_iter()
                .filter(|(k, _)| *k == Lifetime || *k == Char)
                .collect::<Vec<_>>(),
            [
                (Lifetime, "'a"),
                (Lifetime, "'a"),
                (Lifetime, "'static"),
                (Lifetime, "'outer"),
                (Lifetime, "'outer"),
            ]
        );
        assert_eq!(
            kinds("['a', '\\n', '\\u{1F600}', '\\'', '\"', '😀', b'x', b'\\xff', '\\x41']"),
            [
                (Punct, "["),
                (Char, "'a'"),
                (Punct, ","),
                (Char, "'\\n'"),
                (Punct, ","),
                (Char, "'\\u{1F600}'"),
                (Punct, ","),
                (Char, "'\\''"),
                (Punct, ","),
                (Char, "'\"'"),
                (Punct, ","),
                (Char, "'😀'"),
                (Punct, ","),
                (Char, "b'x'"),
                (Punct, ","),
                (Char, "b'\\xff'"),
                (Punct, ","),
                (Char, "'\\x41'"),
                (Punct, "]"),
            ]
        );
    }

    #[test]
    fn raw_strings_and_idents() {
        use TokenKind::*;
        assert_eq!(
            kinds("r#\"a \"b\" c\"# r\"x\" br##\"y\"#\"## r#type b\"z\" c\"w\" r # x"),
            [
                (Str, "r#\"a \"b\" c\"#"),
                (Str, "r\"x\""),
                (Str, "br##\"y\"#\"##"),
                (Ident, "r#type"),
                (Str, "b\"z\""),
                (Str, "c\"w\""),
                (Ident, "r"),
                (Punct, "#"),
                (Ident, "x"),
            ]
        );
        assert_eq!(lex("r#\"q\"#").unwrap()[0].value, Some("q"));
    }

    #[test]
    fn nested_block_comments() {
        use TokenKind::*;
        assert_eq!(
            kinds("a /* x /* y */ z */ b"),
            [(Ident, "a"), (Comment, "/* x /* y */ z */"), (Ident, "b")]
        );
        let e = lex("a /* x /* y */ z").unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        assert!(e.message.starts_with("unterminated block comment"));
    }

    #[test]
    fn many_hashes_are_linear() {
        // Regression: counting `#`s used to rescan from the start each time.
        let src = format!("r{}", "#".repeat(300_000));
        assert_eq!(lex(&src).unwrap().len(), 300_001);
        let src = format!("r{}\"", "#".repeat(300_000));
        assert!(lex(&src).is_err());
    }

    #[test]
    fn deep_block_comment_nesting() {
        let src = format!("{}{}", "/*".repeat(100_000), "*/".repeat(100_000));
        assert_eq!(lex(&src).unwrap().len(), 1);
        assert!(lex(&"/*".repeat(100_000)).is_err());
    }

    #[test]
    fn multiline_strings_and_errors() {
        assert_eq!(lex("\"a\nb\"").unwrap().len(), 1);
        let e = lex("let s = \"abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 9));
        let e = lex("x\n  r##\"abc\"#").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.starts_with("unterminated raw string"));
        let e = lex("let c = '\\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 9));
        let e = lex("' ").unwrap_err();
        assert!(e.message.starts_with("unterminated character literal"));
    }

    #[test]
    fn attributes_are_tokens() {
        use TokenKind::*;
        assert_eq!(
            kinds("#[traced]"),
            [(Punct, "#"), (Punct, "["), (Ident, "traced"), (Punct, "]")]
        );
    }
}
