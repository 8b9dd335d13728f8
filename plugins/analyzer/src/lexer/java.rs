//! The Java lexer: strings, text blocks `"""..."""`, character literals,
//! line and block comments.

use super::{
    block_comment, is_ident_continue, is_ident_start, line_comment, number, punct, quoted,
    unterminated, Cursor, Token, TokenKind,
};
use crate::AnalyzeError;

const PUNCT: &[&str] = &[
    ">>>=", "<<=", ">>=", ">>>", "...", "::", "->", "==", "!=", "<=", ">=", "&&", "||", "++", "--",
    "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>",
];

/// Lexes Java.
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
        } else if cur.starts_with("\"\"\"") {
            cur.bump_n(3);
            let body = cur.offset();
            let value = loop {
                let end = cur.offset();
                if cur.eat("\"\"\"") {
                    break cur.slice(body, end);
                }
                match cur.bump() {
                    None => return Err(unterminated("text block", m)),
                    Some('\\') => {
                        cur.bump();
                    }
                    Some(_) => {}
                }
            };
            out.push(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '"' {
            cur.bump();
            let value = quoted(&mut cur, '"', false, "string", m)?;
            out.push(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '\'' {
            cur.bump();
            quoted(&mut cur, '\'', false, "character literal", m)?;
            out.push(cur.token(TokenKind::Char, m));
        } else if is_ident_start(c) || c == '$' {
            cur.eat_while(|c| is_ident_continue(c) || c == '$');
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
    fn text_blocks_strings_chars() {
        use TokenKind::*;
        assert_eq!(
            kinds("String s = \"\"\"\n  a \"quoted\" \\\"\"\" b\n  \"\"\"; char c = '\\''; \"\""),
            [
                (Ident, "String"),
                (Ident, "s"),
                (Punct, "="),
                (Str, "\"\"\"\n  a \"quoted\" \\\"\"\" b\n  \"\"\""),
                (Punct, ";"),
                (Ident, "char"),
                (Ident, "c"),
                (Punct, "="),
                (Char, "'\\''"),
                (Punct, ";"),
                (Str, "\"\""),
            ]
        );
    }

    #[test]
    fn annotations_and_method_refs() {
        use TokenKind::*;
        assert_eq!(
            kinds("@Override System.out::println"),
            [
                (Punct, "@"),
                (Ident, "Override"),
                (Ident, "System"),
                (Punct, "."),
                (Ident, "out"),
                (Punct, "::"),
                (Ident, "println"),
            ]
        );
    }

    #[test]
    fn errors() {
        let e = lex("class A {\n  String s = \"\"\"\n  never closed\n}").unwrap_err();
        assert_eq!((e.line, e.column), (2, 14));
        assert!(e.message.starts_with("unterminated text block"));
        let e = lex("String s = \"abc;\n").unwrap_err();
        assert_eq!((e.line, e.column), (1, 12));
        let e = lex("x /** doc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        let e = lex("char c = 'a").unwrap_err();
        assert!(e.message.starts_with("unterminated character literal"));
    }
}
