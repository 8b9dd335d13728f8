//! The Python lexer: single, double and triple-quoted strings with any
//! prefix (`r''`, `b""`, `f""`, `rb'''...'''`), and `#` comments.
//!
//! f-strings are read as plain strings: their `{...}` replacement fields are
//! text, so a call written inside one is not counted.

use super::{
    is_ident_continue, is_ident_start, line_comment, number, punct, quoted, unterminated, Cursor,
    Mark, Token, TokenKind,
};
use crate::AnalyzeError;

const PUNCT: &[&str] = &[
    "**=", "//=", ">>=", "<<=", "...", "->", ":=", "==", "!=", "<=", ">=", "**", "//", "<<", ">>",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "@=",
];

/// Lexes Python.
pub(crate) fn lex(src: &str) -> Result<Vec<Token<'_>>, AnalyzeError> {
    let mut cur = Cursor::new(src);
    let mut out = Vec::new();
    while let Some(c) = cur.peek() {
        let m = cur.mark();
        let next = cur.peek_nth(1);
        if c.is_whitespace() {
            cur.bump();
        } else if c == '#' {
            line_comment(&mut cur);
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '\'' || c == '"' {
            out.push(string(&mut cur, m, 0)?);
        } else if let Some(n) = string_prefix(&cur) {
            out.push(string(&mut cur, m, n)?);
        } else if is_ident_start(c) {
            cur.eat_while(is_ident_continue);
            out.push(cur.token(TokenKind::Ident, m));
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) {
            number(&mut cur);
            out.push(cur.token(TokenKind::Number, m));
        } else {
            punct(&mut cur, PUNCT);
            out.push(cur.token(TokenKind::Punct, m));
        }
    }
    Ok(out)
}

/// If a prefixed string starts here (`r'`, `rb"`, `F'''`...), the prefix's
/// length in characters.
fn string_prefix(cur: &Cursor<'_>) -> Option<usize> {
    let is_prefix = |c: char| "rRbBuUfFtT".contains(c);
    let first = cur.peek()?;
    if !is_prefix(first) {
        return None;
    }
    match cur.peek_nth(1)? {
        '\'' | '"' => Some(1),
        c if is_prefix(c) && matches!(cur.peek_nth(2), Some('\'' | '"')) => Some(2),
        _ => None,
    }
}

/// Lexes a string whose prefix is `prefix` characters long (starting at
/// `m`), triple-quoted or not.
fn string<'a>(cur: &mut Cursor<'a>, m: Mark, prefix: usize) -> Result<Token<'a>, AnalyzeError> {
    let interpolated = cur
        .slice(m.offset, m.offset + prefix)
        .contains(['f', 'F', 't', 'T']);
    cur.bump_n(prefix);
    let Some(q) = cur.bump() else {
        return Err(unterminated("string", m));
    };
    let value = if cur.peek() == Some(q) && cur.peek_nth(1) == Some(q) {
        cur.bump_n(2);
        let body = cur.offset();
        let close: &str = if q == '"' { "\"\"\"" } else { "'''" };
        loop {
            let end = cur.offset();
            if cur.eat(close) {
                break cur.slice(body, end);
            }
            match cur.bump() {
                None => return Err(unterminated("string", m)),
                Some('\\') => {
                    cur.bump();
                }
                Some(_) => {}
            }
        }
    } else {
        quoted(cur, q, false, "string", m)?
    };
    Ok(Token {
        value: (!(interpolated && value.contains('{'))).then_some(value),
        ..cur.token(TokenKind::Str, m)
    })
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
    fn prefixes_and_triples() {
        use TokenKind::*;
        assert_eq!(
            kinds("r'\\d' b\"x\" rb'''a\n'b''' F\"\"\"q\"\"\" # c"),
            [
                (Str, "r'\\d'"),
                (Str, "b\"x\""),
                (Str, "rb'''a\n'b'''"),
                (Str, "F\"\"\"q\"\"\""),
                (Comment, "# c"),
            ]
        );
    }

    #[test]
    fn identifiers_that_look_like_prefixes() {
        use TokenKind::*;
        assert_eq!(
            kinds("rb = bar + f(b)"),
            [
                (Ident, "rb"),
                (Punct, "="),
                (Ident, "bar"),
                (Punct, "+"),
                (Ident, "f"),
                (Punct, "("),
                (Ident, "b"),
                (Punct, ")"),
            ]
        );
    }

    #[test]
    fn empty_strings() {
        use TokenKind::*;
        assert_eq!(kinds("'' \"\""), [(Str, "''"), (Str, "\"\"")]);
    }

    #[test]
    fn values() {
        let toks = lex("'a' f'{x}' f'y' '''t'''").unwrap();
        let v: Vec<_> = toks.iter().map(|t| t.value).collect();
        assert_eq!(v, [Some("a"), None, Some("y"), Some("t")]);
    }

    #[test]
    fn errors() {
        let e = lex("x = 1\ny = 'abc\n'").unwrap_err();
        assert_eq!((e.line, e.column), (2, 5));
        let e = lex("def f():\n    \"\"\"doc\n    more").unwrap_err();
        assert_eq!((e.line, e.column), (2, 5));
        assert!(e.message.starts_with("unterminated string"));
        let e = lex("b'").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }

    #[test]
    fn escaped_newline_continues_a_string() {
        assert_eq!(lex("'a\\\nb'").unwrap().len(), 1);
    }
}
