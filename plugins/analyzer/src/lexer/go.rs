//! The Go lexer: interpreted strings, raw backtick strings, rune literals,
//! line and block comments.

use super::{
    block_comment, is_ident_continue, is_ident_start, line_comment, number, punct, quoted,
    unterminated, Cursor, Token, TokenKind,
};
use crate::AnalyzeError;

const PUNCT: &[&str] = &[
    "<<=", ">>=", "&^=", "...", ":=", "<-", "&^", "==", "!=", "<=", ">=", "&&", "||", "++", "--",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>",
];

/// Lexes Go.
pub(crate) fn lex(src: &str) -> Result<Vec<Token<'_>>, AnalyzeError> {
    let mut cur = Cursor::new(src);
    let mut out = Vec::new();
    while let Some(c) = cur.peek() {
        let m = cur.mark();
        let next = cur.peek_nth(1);
        if c.is_whitespace() {
            cur.bump();
        } else if c == '/' && next == Some('/') {
            line_comment(&mut cur);
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '/' && next == Some('*') {
            block_comment(&mut cur, false)?;
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '"' {
            cur.bump();
            let value = quoted(&mut cur, '"', false, "string", m)?;
            out.push(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '`' {
            cur.bump();
            let body = cur.offset();
            cur.eat_while(|c| c != '`');
            let end = cur.offset();
            if cur.bump().is_none() {
                return Err(unterminated("raw string", m));
            }
            out.push(Token {
                value: Some(cur.slice(body, end)),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '\'' {
            cur.bump();
            quoted(&mut cur, '\'', false, "rune literal", m)?;
            out.push(cur.token(TokenKind::Char, m));
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
    fn strings_runes_comments() {
        use TokenKind::*;
        assert_eq!(
            kinds("x := `a\\`+\"b\\\"\" + '\\'' // c\n/* d\n*/ '世'"),
            [
                (Ident, "x"),
                (Punct, ":="),
                (Str, "`a\\`"),
                (Punct, "+"),
                (Str, "\"b\\\"\""),
                (Punct, "+"),
                (Char, "'\\''"),
                (Comment, "// c"),
                (Comment, "/* d\n*/"),
                (Char, "'世'"),
            ]
        );
    }

    #[test]
    fn raw_strings_span_lines() {
        let toks = lex("s := `line1\n\"line2\" start`").unwrap();
        assert_eq!(toks.len(), 3);
        assert_eq!(toks[2].value, Some("line1\n\"line2\" start"));
    }

    #[test]
    fn errors() {
        let e = lex("a\n\tb := `raw").unwrap_err();
        assert_eq!((e.line, e.column), (2, 7));
        assert!(e.message.starts_with("unterminated raw string"));
        let e = lex("s := \"abc\n\"").unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        assert!(e.message.starts_with("unterminated string"));
        let e = lex("r := 'a").unwrap_err();
        assert!(e.message.starts_with("unterminated rune literal"));
        let e = lex("/* x").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }
}
