//! The JavaScript/TypeScript lexer: `'` and `"` strings, template literals
//! with `${...}` substitutions (nested templates included, kept on an
//! explicit stack), regex literals where they are unambiguous, line and
//! block comments.

use super::{
    block_comment, is_ident_continue, is_ident_start, line_comment, number, punct, quoted,
    unterminated, Cursor, Mark, Token, TokenKind,
};
use crate::AnalyzeError;
use std::collections::HashSet;

const PUNCT: &[&str] = &[
    ">>>=", "...", "===", "!==", "**=", "<<=", ">>=", ">>>", "&&=", "||=", "??=", "=>", "==", "!=",
    "<=", ">=", "&&", "||", "??", "?.", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
    "**", "<<", ">>",
];

/// Keywords after which a `/` starts a regex literal rather than a division.
const REGEX_KEYWORDS: &[&str] = &[
    "return",
    "typeof",
    "instanceof",
    "in",
    "of",
    "new",
    "delete",
    "void",
    "throw",
    "case",
    "do",
    "else",
    "yield",
    "await",
];

/// Lexes JavaScript or TypeScript.
pub(crate) fn lex(src: &str) -> Result<Vec<Token<'_>>, AnalyzeError> {
    let mut cur = Cursor::new(src);
    let mut out: Vec<Token<'_>> = Vec::new();
    // One entry per open `{` (None) or `${` (the start of its template).
    let mut braces: Vec<Option<Mark>> = Vec::new();
    let mut dead_regex_states = HashSet::new();
    if cur.starts_with("#!") {
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
            block_comment(&mut cur, false)?;
            out.push(cur.token(TokenKind::Comment, m));
        } else if c == '/'
            && regex_allowed(out.iter().rev().find(|t| t.is_code()))
            && regex(&mut cur, &mut dead_regex_states)
        {
            out.push(cur.token(TokenKind::Regex, m));
        } else if c == '\'' || c == '"' {
            cur.bump();
            let value = quoted(&mut cur, c, false, "string", m)?;
            out.push(Token {
                value: Some(value),
                ..cur.token(TokenKind::Str, m)
            });
        } else if c == '`' {
            cur.bump();
            template(&mut cur, &mut out, &mut braces, m, m)?;
        } else if is_ident_start(c) || c == '$' {
            cur.eat_while(|c| is_ident_continue(c) || c == '$');
            out.push(cur.token(TokenKind::Ident, m));
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|d| d.is_ascii_digit())) {
            number(&mut cur);
            out.push(cur.token(TokenKind::Number, m));
        } else if c == '{' {
            cur.bump();
            braces.push(None);
            out.push(cur.token(TokenKind::Punct, m));
        } else if c == '}' {
            cur.bump();
            out.push(cur.token(TokenKind::Punct, m));
            if let Some(Some(start)) = braces.pop() {
                let piece = cur.mark();
                template(&mut cur, &mut out, &mut braces, piece, start)?;
            }
        } else {
            punct(&mut cur, PUNCT);
            out.push(cur.token(TokenKind::Punct, m));
        }
    }
    // Input ended inside a template substitution: the template is open.
    if let Some(start) = braces.iter().rev().find_map(|b| *b) {
        return Err(unterminated("template literal", start));
    }
    Ok(out)
}

/// Whether a `/` after `prev` (the last code token) can start a regex.
fn regex_allowed(prev: Option<&Token<'_>>) -> bool {
    let Some(prev) = prev else { return true };
    match prev.kind {
        TokenKind::Punct => !matches!(prev.text, ")" | "]" | "++" | "--"),
        TokenKind::Ident => REGEX_KEYWORDS.contains(&prev.text),
        _ => false,
    }
}

/// Consumes a regex literal if one starts here (the cursor is on `/`). A
/// regex cannot span lines: if none closes on this line, nothing is consumed
/// and the `/` is read as division.
///
/// `dead` holds the scanner states (offset, inside a `[...]` class) already
/// known to reach the end of the line without closing: a scan that reaches
/// one fails at once, so each state is walked at most once and a line full
/// of would-be regexes stays linear.
fn regex(cur: &mut Cursor<'_>, dead: &mut HashSet<(usize, bool)>) -> bool {
    let mut c = *cur;
    c.bump();
    let mut in_class = false;
    let mut walked = Vec::new();
    let closed = loop {
        let state = (c.offset(), in_class);
        if dead.contains(&state) {
            break false;
        }
        walked.push(state);
        match c.bump() {
            None | Some('\n') | Some('\r') => break false,
            Some('\\') => {
                if matches!(c.bump(), None | Some('\n') | Some('\r')) {
                    break false;
                }
            }
            Some('[') => in_class = true,
            Some(']') => in_class = false,
            Some('/') if !in_class => break true,
            Some(_) => {}
        }
    };
    if !closed {
        dead.extend(walked);
        return false;
    }
    c.eat_while(is_ident_continue);
    *cur = c;
    true
}

/// Lexes template text from `piece` (just after the opening backtick or a
/// substitution's `}`) up to the closing backtick, or up to a `${`, which is
/// pushed on `braces` so that its `}` resumes the template.
fn template<'a>(
    cur: &mut Cursor<'a>,
    out: &mut Vec<Token<'a>>,
    braces: &mut Vec<Option<Mark>>,
    piece: Mark,
    start: Mark,
) -> Result<(), AnalyzeError> {
    let body = cur.offset();
    loop {
        match cur.peek() {
            None => return Err(unterminated("template literal", start)),
            Some('\\') => {
                cur.bump();
                cur.bump();
            }
            Some('`') => {
                let end = cur.offset();
                cur.bump();
                let whole = piece == start;
                out.push(Token {
                    value: whole.then(|| cur.slice(body, end)),
                    ..cur.token(TokenKind::Template, piece)
                });
                return Ok(());
            }
            Some('$') if cur.peek_nth(1) == Some('{') => {
                if cur.offset() > piece.offset {
                    out.push(cur.token(TokenKind::Template, piece));
                }
                let m = cur.mark();
                cur.bump_n(2);
                out.push(cur.token(TokenKind::Punct, m));
                braces.push(Some(start));
                return Ok(());
            }
            Some(_) => {
                cur.bump();
            }
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
    fn strings_and_comments() {
        use TokenKind::*;
        assert_eq!(
            kinds("a('x\\'y', \"z\") // c\n/* d */"),
            [
                (Ident, "a"),
                (Punct, "("),
                (Str, "'x\\'y'"),
                (Punct, ","),
                (Str, "\"z\""),
                (Punct, ")"),
                (Comment, "// c"),
                (Comment, "/* d */"),
            ]
        );
    }

    #[test]
    fn template_substitutions_are_code() {
        use TokenKind::*;
        assert_eq!(
            kinds("`a${b}c${ {d} }e`"),
            [
                (Template, "`a"),
                (Punct, "${"),
                (Ident, "b"),
                (Punct, "}"),
                (Template, "c"),
                (Punct, "${"),
                (Punct, "{"),
                (Ident, "d"),
                (Punct, "}"),
                (Punct, "}"),
                (Template, "e`"),
            ]
        );
    }

    #[test]
    fn nested_templates() {
        use TokenKind::*;
        assert_eq!(
            kinds("`x${`y${z}`}`"),
            [
                (Template, "`x"),
                (Punct, "${"),
                (Template, "`y"),
                (Punct, "${"),
                (Ident, "z"),
                (Punct, "}"),
                (Template, "`"),
                (Punct, "}"),
                (Template, "`"),
            ]
        );
    }

    #[test]
    fn whole_template_has_value() {
        let toks = lex("`child`").unwrap();
        assert_eq!(toks[0].value, Some("child"));
        let toks = lex("`a${b}`").unwrap();
        assert_eq!(toks[0].value, None);
    }

    #[test]
    fn regex_versus_division() {
        use TokenKind::*;
        assert_eq!(
            kinds("x = /'[/]/g; y = a / b / c"),
            [
                (Ident, "x"),
                (Punct, "="),
                (Regex, "/'[/]/g"),
                (Punct, ";"),
                (Ident, "y"),
                (Punct, "="),
                (Ident, "a"),
                (Punct, "/"),
                (Ident, "b"),
                (Punct, "/"),
                (Ident, "c"),
            ]
        );
        assert_eq!(kinds("return /\"/")[1], (Regex, "/\"/"));
        assert_eq!(kinds("f(1) / 2 / 3")[4], (Punct, "/"));
        // A `/` that cannot close on its line is division.
        assert_eq!(kinds("x = (/ 2")[3], (Punct, "/"));
    }

    #[test]
    fn failed_regex_scans_are_linear() {
        // Regression: every `/` after `=` rescanned the rest of the line.
        let src = "=/[".repeat(200_000);
        assert_eq!(lex(&src).unwrap().len(), 600_000);
        let src = format!("{} /", "=/[".repeat(1000));
        assert_eq!(lex(&src).unwrap().len(), 3001);
        // A later start can still close where an earlier one could not.
        assert_eq!(kinds("=/[ =/ x/")[4], (TokenKind::Regex, "/ x/"));
    }

    #[test]
    fn errors() {
        let e = lex("a = 'abc\n'").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
        let e = lex("\n  `abc ${x} def").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        assert!(e.message.starts_with("unterminated template literal"));
        let e = lex("x /* abc").unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        assert!(e.message.starts_with("unterminated block comment"));
        let e = lex("`${ \"a }`").unwrap_err();
        assert_eq!((e.line, e.column), (1, 5));
    }

    #[test]
    fn deep_template_nesting() {
        let src = "`${".repeat(100_000);
        let e = lex(&src).unwrap_err();
        assert_eq!((e.line, e.column), (1, 3 * 99_999 + 1));
        let e = lex("`${ {").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        let src = format!("{}{}", "`${".repeat(50_000), "}`".repeat(50_000));
        assert!(lex(&src).is_ok());
    }
}
