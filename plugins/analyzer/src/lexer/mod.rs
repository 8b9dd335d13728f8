//! Tokens, the character cursor that tracks lines and columns, and one lexer
//! per language family.
//!
//! [`tokenize`] turns source text into a [`Token`] stream: identifiers,
//! numbers, punctuation, and string, template, character, regex and comment
//! tokens, each with its byte offset and 1-based line and column (columns in
//! characters). Every lexer is a loop over an explicit state (a stack where a
//! language nests, such as JavaScript template substitutions or Rust block
//! comments), so input depth never turns into call depth.

mod go;
mod java;
mod js;
mod python;
mod rust;

use crate::{AnalyzeError, Language};

/// What a [`Token`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An identifier or keyword (`span`, `fn`, `r#type`).
    Ident,
    /// A numeric literal.
    Number,
    /// Punctuation or an operator, brackets included; a JavaScript template
    /// substitution opens with the single token `${`.
    Punct,
    /// A whole string literal of any flavour: quoted, raw, prefixed,
    /// triple-quoted, byte string, Go raw string, Java text block.
    Str,
    /// A piece of a JavaScript/TypeScript template literal: from the opening
    /// backtick or a substitution's closing `}` to the next `${` or the
    /// closing backtick.
    Template,
    /// A character, byte or rune literal (`'a'`, `b'\n'`).
    Char,
    /// A Rust lifetime or loop label (`'a`, `'static`, `'outer`).
    Lifetime,
    /// A JavaScript/TypeScript regular-expression literal.
    Regex,
    /// A line or block comment.
    Comment,
}

/// One token of source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token<'a> {
    /// What the token is.
    pub kind: TokenKind,
    /// The token's exact source text, delimiters included.
    pub text: &'a str,
    /// For a string literal (or a template literal without substitutions),
    /// its raw text between the delimiters, escapes left as written; `None`
    /// for every other token and for interpolated strings.
    pub value: Option<&'a str>,
    /// Byte offset of the token's start.
    pub offset: usize,
    /// 1-based line of the token's start.
    pub line: usize,
    /// 1-based column of the token's start, in characters.
    pub column: usize,
}

impl<'a> Token<'a> {
    /// Whether the token is code (anything but a comment).
    pub fn is_code(&self) -> bool {
        self.kind != TokenKind::Comment
    }

    /// Whether the token is the punctuation `p`.
    pub fn is_punct(&self, p: &str) -> bool {
        self.kind == TokenKind::Punct && self.text == p
    }

    /// Whether the token is the identifier (or keyword) `name`.
    pub fn is_ident(&self, name: &str) -> bool {
        self.kind == TokenKind::Ident && self.text == name
    }
}

/// Lexes `code` as `language` into tokens, comments included.
///
/// Errors on an unterminated string, template literal, character literal,
/// block comment or text block, pointing at where it starts. Brackets are
/// not checked here (see [`crate::analyze`]).
pub fn tokenize(code: &str, language: Language) -> Result<Vec<Token<'_>>, AnalyzeError> {
    match language {
        Language::JavaScript | Language::TypeScript => js::lex(code),
        Language::Python => python::lex(code),
        Language::Rust => rust::lex(code),
        Language::Go => go::lex(code),
        Language::Java => java::lex(code),
    }
}

/// A position in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub offset: usize,
    pub line: usize,
    pub column: usize,
}

/// Walks the source one character at a time, keeping line and column.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    column: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(src: &'a str) -> Self {
        Cursor {
            src,
            pos: 0,
            line: 1,
            column: 1,
        }
    }

    pub fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    /// The character `n` places ahead (0 is [`Cursor::peek`]).
    pub fn peek_nth(&self, n: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(n)
    }

    /// How many times the byte `b` repeats from the current position.
    pub fn count_bytes(&self, b: u8) -> usize {
        self.src.as_bytes()[self.pos..]
            .iter()
            .take_while(|&&x| x == b)
            .count()
    }

    /// The byte `n` bytes ahead, if any.
    pub fn byte_at(&self, n: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + n).copied()
    }

    pub fn starts_with(&self, s: &str) -> bool {
        self.src[self.pos..].starts_with(s)
    }

    pub fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    pub fn bump_n(&mut self, n: usize) {
        for _ in 0..n {
            if self.bump().is_none() {
                break;
            }
        }
    }

    /// Consumes `s` if the input continues with it.
    pub fn eat(&mut self, s: &str) -> bool {
        if self.starts_with(s) {
            self.bump_n(s.chars().count());
            true
        } else {
            false
        }
    }

    pub fn eat_while(&mut self, mut f: impl FnMut(char) -> bool) {
        while let Some(c) = self.peek() {
            if !f(c) {
                break;
            }
            self.bump();
        }
    }

    pub fn mark(&self) -> Mark {
        Mark {
            offset: self.pos,
            line: self.line,
            column: self.column,
        }
    }

    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The source from `m` to the current position.
    pub fn since(&self, m: Mark) -> &'a str {
        &self.src[m.offset..self.pos]
    }

    /// The source between two byte offsets (clamped to be safe).
    pub fn slice(&self, from: usize, to: usize) -> &'a str {
        let to = to.min(self.src.len());
        self.src.get(from.min(to)..to).unwrap_or("")
    }

    /// A token of `kind` from `m` to the current position.
    pub fn token(&self, kind: TokenKind, m: Mark) -> Token<'a> {
        Token {
            kind,
            text: self.since(m),
            value: None,
            offset: m.offset,
            line: m.line,
            column: m.column,
        }
    }
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

pub(crate) fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The error for a construct opened at `m` and never closed.
pub(crate) fn unterminated(what: &str, m: Mark) -> AnalyzeError {
    AnalyzeError {
        line: m.line,
        column: m.column,
        message: format!(
            "unterminated {what} starting at line {}, column {}",
            m.line, m.column
        ),
    }
}

/// Consumes a numeric literal (the cursor is on a digit, or on a `.` before
/// one): digits, letters and `_` (radix prefixes, suffixes, exponents), a
/// sign right after an exponent, and a `.` only when a digit follows it.
pub(crate) fn number(cur: &mut Cursor<'_>) {
    let mut prev = '\0';
    while let Some(c) = cur.peek() {
        let take = if c.is_ascii_alphanumeric() || c == '_' {
            true
        } else if c == '.' {
            cur.peek_nth(1).is_some_and(|d| d.is_ascii_digit())
        } else if c == '+' || c == '-' {
            matches!(prev, 'e' | 'E') && cur.peek_nth(1).is_some_and(|d| d.is_ascii_digit())
        } else {
            false
        };
        if !take {
            break;
        }
        prev = c;
        cur.bump();
    }
}

/// Consumes a line comment up to (not including) the newline.
pub(crate) fn line_comment(cur: &mut Cursor<'_>) {
    cur.eat_while(|c| c != '\n');
}

/// Consumes a block comment; the cursor is on its `/*`. With `nested`,
/// `/* /* */ */` is one comment (Rust).
pub(crate) fn block_comment(cur: &mut Cursor<'_>, nested: bool) -> Result<(), AnalyzeError> {
    let m = cur.mark();
    cur.bump_n(2);
    let mut depth = 1usize;
    loop {
        if cur.eat("*/") {
            depth -= 1;
            if depth == 0 {
                return Ok(());
            }
        } else if nested && cur.eat("/*") {
            depth += 1;
        } else if cur.bump().is_none() {
            return Err(unterminated("block comment", m));
        }
    }
}

/// Consumes the rest of a quoted literal whose opening `quote` (at `m`) was
/// just consumed; a backslash escapes the next character. Without
/// `multiline`, an unescaped newline means the literal is unterminated.
/// Returns the text between the quotes.
pub(crate) fn quoted<'a>(
    cur: &mut Cursor<'a>,
    quote: char,
    multiline: bool,
    what: &str,
    m: Mark,
) -> Result<&'a str, AnalyzeError> {
    let start = cur.offset();
    loop {
        let end = cur.offset();
        match cur.bump() {
            None => return Err(unterminated(what, m)),
            Some('\\') => {
                cur.bump();
            }
            Some('\n') if !multiline => return Err(unterminated(what, m)),
            Some(c) if c == quote => return Ok(cur.slice(start, end)),
            Some(_) => {}
        }
    }
}

/// Consumes one punctuation token: the first of `multi` (longest first) the
/// input continues with, or else a single character.
pub(crate) fn punct(cur: &mut Cursor<'_>, multi: &[&str]) {
    for p in multi {
        if cur.eat(p) {
            return;
        }
    }
    cur.bump();
}

/// "Not an index": the bracket partner of a token that is not a bracket.
pub(crate) const NONE: usize = usize::MAX;

/// The code tokens of a source (comments dropped) with their bracket
/// structure, checked to balance.
#[derive(Debug)]
pub(crate) struct Code<'a> {
    /// Code tokens in source order.
    pub toks: Vec<Token<'a>>,
    /// For each bracket token, the index of its partner; [`NONE`] otherwise.
    pub matching: Vec<usize>,
    /// For each token, the index of the `}` closing the innermost `{` (or
    /// `${`) block around it, or `toks.len()` at top level.
    pub block_end: Vec<usize>,
}

fn is_opener(t: &Token<'_>) -> bool {
    t.kind == TokenKind::Punct && matches!(t.text, "(" | "[" | "{" | "${")
}

fn is_closer(t: &Token<'_>) -> bool {
    t.kind == TokenKind::Punct && matches!(t.text, ")" | "]" | "}")
}

fn closer_for(open: &str) -> &'static str {
    match open {
        "(" => ")",
        "[" => "]",
        _ => "}",
    }
}

fn bracket_error(t: &Token<'_>, message: String) -> AnalyzeError {
    AnalyzeError {
        line: t.line,
        column: t.column,
        message,
    }
}

impl<'a> Code<'a> {
    /// Drops comments and checks that `()[]{}` balance on what is left.
    ///
    /// A closer with no opener, or the wrong one, is reported at the closer;
    /// an opener never closed is reported at the innermost such opener.
    pub fn new(tokens: Vec<Token<'a>>) -> Result<Self, AnalyzeError> {
        let toks: Vec<Token<'a>> = tokens.into_iter().filter(Token::is_code).collect();
        let n = toks.len();
        let mut matching = vec![NONE; n];
        let mut stack: Vec<usize> = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if is_opener(t) {
                stack.push(i);
            } else if is_closer(t) {
                let Some(open) = stack.pop() else {
                    return Err(bracket_error(
                        t,
                        format!(
                            "unmatched closing '{}' at line {}, column {}",
                            t.text, t.line, t.column
                        ),
                    ));
                };
                let o = &toks[open];
                if closer_for(o.text) != t.text {
                    return Err(bracket_error(
                        t,
                        format!(
                            "mismatched closing '{}' at line {}, column {}: expected '{}' to close the '{}' opened at line {}, column {}",
                            t.text,
                            t.line,
                            t.column,
                            closer_for(o.text),
                            o.text,
                            o.line,
                            o.column
                        ),
                    ));
                }
                matching[open] = i;
                matching[i] = open;
            }
        }
        if let Some(&open) = stack.last() {
            let o = &toks[open];
            return Err(bracket_error(
                o,
                format!(
                    "unclosed '{}' opened at line {}, column {}",
                    o.text, o.line, o.column
                ),
            ));
        }
        let mut block_end = vec![n; n];
        let mut blocks: Vec<usize> = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            if t.is_punct("}") {
                blocks.pop();
            }
            block_end[i] = blocks.last().map_or(n, |&o| matching[o]);
            if t.is_punct("{") || t.is_punct("${") {
                blocks.push(i);
            }
        }
        Ok(Code {
            toks,
            matching,
            block_end,
        })
    }

    /// The token at `i`, if any.
    pub fn get(&self, i: usize) -> Option<&Token<'a>> {
        self.toks.get(i)
    }

    /// Whether the token at `i` is the punctuation `p`.
    pub fn punct_at(&self, i: usize, p: &str) -> bool {
        self.get(i).is_some_and(|t| t.is_punct(p))
    }

    /// Whether the token at `i` is an identifier.
    pub fn ident_at(&self, i: usize) -> bool {
        self.get(i).is_some_and(|t| t.kind == TokenKind::Ident)
    }

    /// The bracket partner of the token at `i`, if it is a bracket.
    pub fn partner(&self, i: usize) -> Option<usize> {
        self.matching.get(i).copied().filter(|&j| j != NONE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(code: &str, lang: Language) -> Vec<(TokenKind, String)> {
        tokenize(code, lang)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text.to_string()))
            .collect()
    }

    #[test]
    fn cursor_tracks_lines_and_char_columns() {
        let mut c = Cursor::new("aé\n\tb");
        c.bump_n(2);
        assert_eq!((c.mark().line, c.mark().column), (1, 3));
        c.bump();
        assert_eq!((c.mark().line, c.mark().column), (2, 1));
        c.bump();
        assert_eq!((c.mark().line, c.mark().column), (2, 2));
        assert_eq!(c.peek(), Some('b'));
        assert_eq!(c.mark().offset, 5);
    }

    #[test]
    fn token_positions() {
        let toks = tokenize("let é = 'x';\n  foo()", Language::JavaScript).unwrap();
        let foo = toks.iter().find(|t| t.text == "foo").unwrap();
        assert_eq!((foo.line, foo.column), (2, 3));
        let s = toks.iter().find(|t| t.kind == TokenKind::Str).unwrap();
        assert_eq!((s.line, s.column, s.value), (1, 9, Some("x")));
    }

    #[test]
    fn numbers_do_not_eat_ranges() {
        let k = kinds("0..10 1.5e-3 0xFF_u8", Language::Rust);
        let texts: Vec<&str> = k.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["0", "..", "10", "1.5e-3", "0xFF_u8"]);
    }

    #[test]
    fn unbalanced_reports_unclosed_opener() {
        let toks = tokenize("f(a,\n  [b]", Language::JavaScript).unwrap();
        let err = Code::new(toks).unwrap_err();
        assert_eq!((err.line, err.column), (1, 2));
        assert!(err.message.contains("unclosed '('"), "{}", err.message);
    }

    #[test]
    fn stray_closer_reported_at_closer() {
        let toks = tokenize("x = 1\n  )", Language::Python).unwrap();
        let err = Code::new(toks).unwrap_err();
        assert_eq!((err.line, err.column), (2, 3));
        assert_eq!(err.message, "unmatched closing ')' at line 2, column 3");
    }

    #[test]
    fn mismatched_closer_reported_at_closer() {
        let toks = tokenize("f(a]", Language::Go).unwrap();
        let err = Code::new(toks).unwrap_err();
        assert_eq!((err.line, err.column), (1, 4));
        assert!(err.message.contains("expected ')'"), "{}", err.message);
    }

    #[test]
    fn brackets_in_strings_and_comments_are_not_code() {
        let toks = tokenize("f(\"(\", /* ) */ ')') // (", Language::JavaScript).unwrap();
        let code = Code::new(toks).unwrap();
        assert_eq!(code.partner(1), Some(code.toks.len() - 1));
    }

    #[test]
    fn block_ends() {
        let toks = tokenize("a { b { c } d } e", Language::Go).unwrap();
        let code = Code::new(toks).unwrap();
        let idx = |s: &str| code.toks.iter().position(|t| t.text == s).unwrap();
        assert_eq!(code.block_end[idx("c")], 5);
        assert_eq!(code.block_end[idx("d")], 7);
        assert_eq!(code.block_end[idx("e")], code.toks.len());
    }

    #[test]
    fn deep_nesting_is_iterative() {
        let code = "(".repeat(100_000);
        let toks = tokenize(&code, Language::Rust).unwrap();
        let err = Code::new(toks).unwrap_err();
        assert_eq!((err.line, err.column), (1, 100_000));
        let code = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Code::new(tokenize(&code, Language::Java).unwrap()).is_ok());
    }
}
