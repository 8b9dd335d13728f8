//! Lines in, lines out: envelopes and bare bodies, read without copying.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

/// A string that borrows from the line when it has no escapes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CowStr<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The members of a message body, each value left raw: the body is read
/// once, here, and handlers decode their typed request from these members
/// (see [`Body::decode`]) without reading the text again.
#[derive(Debug, Default)]
pub struct Body<'a> {
    members: Vec<(CowStr<'a>, &'a RawValue)>,
}

impl<'a> Body<'a> {
    /// A member's raw value (the last, if the key repeats).
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| *v)
    }

    /// Decodes the body into a typed request; errors name the field.
    pub fn decode<T: Deserialize<'a>>(&self) -> Result<T, crate::Error> {
        crate::error::decode(self)
    }
}

/// What the `body` member held: an object, or something else.
enum MaybeBody<'a> {
    Object(Body<'a>),
    NotObject,
}

/// An object's members with raw values, or [`MaybeBody::NotObject`].
struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = MaybeBody<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(8);
        while let Some(k) = map.next_key::<CowStr<'de>>()? {
            let v: &'de RawValue = map.next_value()?;
            members.push((k, v));
        }
        Ok(MaybeBody::Object(Body { members }))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(MaybeBody::NotObject)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(MaybeBody::NotObject)
    }
}

impl<'de> Deserialize<'de> for MaybeBody<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

/// The top-level object of a line, read in one pass: the `body` member
/// straight into its members, every other member raw (`src` and `dest`
/// apart, so that an envelope with nothing else needs no list).
struct Top<'a> {
    members: Vec<(CowStr<'a>, &'a RawValue)>,
    src: Option<(CowStr<'a>, &'a RawValue)>,
    dest: Option<(CowStr<'a>, &'a RawValue)>,
    body: Option<MaybeBody<'a>>,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut top = Top {
                    members: Vec::new(),
                    src: None,
                    dest: None,
                    body: None,
                };
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    if k.0 == "body" {
                        top.body = Some(map.next_value()?);
                        continue;
                    }
                    let v: &'de RawValue = map.next_value()?;
                    match &*k.0 {
                        "src" => top.src = Some((k, v)),
                        "dest" => top.dest = Some((k, v)),
                        _ => top.members.push((k, v)),
                    }
                }
                Ok(top)
            }
        }
        d.deserialize_map(V)
    }
}

/// One input line, parsed.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub(crate) src: Option<CowStr<'a>>,
    pub(crate) dest: Option<CowStr<'a>>,
    /// The body's members; `Err` when the envelope's `body` is not an
    /// object (the envelope is still read, to address the error).
    pub(crate) body: Result<Body<'a>, String>,
    /// Envelope members other than `src`, `dest` and `body`.
    pub(crate) extra: Vec<(CowStr<'a>, &'a RawValue)>,
}

fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Parses a line, once: an envelope `{"src","dest","body"}` or a bare body.
/// A line the parser refuses is scanned again, tolerantly, for what can
/// still be read of it (see [`Refused`]).
pub(crate) fn parse_line<'a>(line: &'a str) -> Result<Incoming<'a>, Refused> {
    let top: Top<'_> = serde_json::from_str(line).map_err(|e| refuse_json(line.as_bytes(), &e))?;
    let body = match top.body {
        // A bare body: the whole line is the body.
        None => {
            let mut members = top.members;
            members.extend(top.src);
            members.extend(top.dest);
            return Ok(Incoming {
                src: None,
                dest: None,
                body: Ok(Body { members }),
                extra: Vec::new(),
            });
        }
        Some(MaybeBody::Object(b)) => Ok(b),
        Some(MaybeBody::NotObject) => Err("field `body` must be a JSON object".to_owned()),
    };
    let string = |m: Option<(CowStr<'a>, &'a RawValue)>| match m {
        None => Ok(None),
        Some((k, v)) => decode_str(v).map(|s| Some(CowStr(s))).map_err(|_| {
            refuse(
                line.as_bytes(),
                None,
                format!("field `{}` must be a string", k.0),
                "",
            )
        }),
    };
    Ok(Incoming {
        src: string(top.src)?,
        dest: string(top.dest)?,
        body,
        extra: top.members,
    })
}

/// A line the parser refused: what is wrong and where, and what a tolerant
/// scan of the line could still read of its addressing. The error goes from
/// `dest` to `src` in reply to `msg_id`, each where it could be read.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The error's text: ``field `message`: invalid UTF-8 at byte 41``,
    /// ``not valid JSON: trailing comma at byte 68: ...``.
    pub(crate) text: String,
    /// The envelope's `src`, where it could be read.
    pub(crate) src: Option<String>,
    /// The envelope's `dest`, where it could be read.
    pub(crate) dest: Option<String>,
    /// The request's `msg_id` (the body's, or a bare body's), where it
    /// could be read.
    pub(crate) msg_id: Option<u64>,
}

/// The error for a line that is not valid UTF-8, `at` being the offset of
/// the first byte that is not.
#[cold]
pub(crate) fn refuse_utf8(line: &[u8], at: usize) -> Refused {
    refuse(line, Some(at), format!("invalid UTF-8 at byte {at}"), "")
}

/// The error for a line serde_json refused: a syntax error is described
/// with its byte offset (and what was found there) and salvaged; a line
/// whose top level is not an object has nothing to salvage.
#[cold]
fn refuse_json(line: &[u8], e: &serde_json::Error) -> Refused {
    let msg = e.to_string();
    let msg = strip_position(&msg);
    if !(e.is_syntax() || e.is_eof()) {
        return Refused {
            text: format!("a message must be a JSON object: {msg}"),
            ..Refused::default()
        };
    }
    let n = line.len();
    let (at, desc) = if e.is_eof() {
        let what = msg.strip_prefix("EOF ").unwrap_or(msg);
        (n, format!("line ends at byte {n} {what}"))
    } else {
        // serde_json counts a column as the bytes before its position, and
        // a line holds no newline: the column is a byte offset, that of the
        // byte after the culprit or (some string errors) of the culprit.
        let c = e.column().min(n);
        let before = |at: usize| {
            line[..at]
                .iter()
                .rposition(|&b| !is_ws(b))
                .filter(|&p| line[p] == b',')
        };
        let culprit = c.saturating_sub(1);
        if let (Some(b'}' | b']'), Some(comma)) = (line.get(culprit), before(culprit)) {
            // A comma before a closing bracket (serde_json says "trailing
            // comma", or, inside a raw value, "expected value" or "key must
            // be a string"): name the comma.
            let what = if line[culprit] == b']' {
                "another element"
            } else {
                "another member"
            };
            let desc = format!(
                "trailing comma at byte {comma}: expected {what} after `,`, found {}",
                found(line, culprit)
            );
            (comma, desc)
        } else if msg.starts_with("control character") {
            let at = [culprit, c]
                .into_iter()
                .find(|&i| line.get(i).is_some_and(|&b| b < 0x20))
                .unwrap_or(culprit);
            (at, format!("control character in a string at byte {at}"))
        } else if msg == "invalid escape" {
            // serde_json stops on the `q` of `\q`, or on the last digit of
            // `\uZZZZ`: name the backslash.
            let at = match culprit.checked_sub(5).map(|p| line.get(p..p + 2)) {
                Some(Some(b"\\u")) => culprit - 5,
                _ if culprit > 0 && line[culprit - 1] == b'\\' => culprit - 1,
                _ => culprit,
            };
            (at, format!("invalid escape at byte {at}"))
        } else if msg.starts_with("expected")
            || msg.starts_with("key must")
            || msg == "trailing characters"
        {
            (
                culprit,
                format!("{msg} at byte {culprit}, found {}", found(line, culprit)),
            )
        } else {
            (culprit, format!("{msg} at byte {culprit}"))
        }
    };
    refuse(line, Some(at), desc, "not valid JSON: ")
}

/// What the byte at `at` is, for an error text.
fn found(line: &[u8], at: usize) -> String {
    match line.get(at) {
        None => "the end of the line".to_owned(),
        Some(b'`') => "a backtick".to_owned(),
        Some(&b) if b.is_ascii_graphic() => format!("`{}`", b as char),
        Some(b' ') => "a space".to_owned(),
        Some(&b) => format!("byte 0x{b:02x}"),
    }
}

/// A [`Refused`] for `line`: `desc` prefixed with the field the offset `at`
/// falls in (``field `message`: ``), else with `unnamed`.
fn refuse(line: &[u8], at: Option<usize>, desc: String, unnamed: &str) -> Refused {
    let s = salvage(line, at);
    let text = match s.field {
        Some(f) => format!("field `{f}`: {desc}"),
        None => format!("{unnamed}{desc}"),
    };
    Refused {
        text,
        src: s.src,
        dest: s.dest,
        msg_id: s.msg_id,
    }
}

/// What [`salvage`] could read of a line.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Salvage {
    /// The envelope's `src`: a string member of the top-level object.
    pub(crate) src: Option<String>,
    /// The envelope's `dest`: a string member of the top-level object.
    pub(crate) dest: Option<String>,
    /// A non-negative integer `msg_id` member of the `body` object, or of
    /// the top-level object for a bare body.
    pub(crate) msg_id: Option<u64>,
    /// The member whose value holds the offset asked about, as a path
    /// relative to the body (`message`, `attributes.k`, `spans[2].name`),
    /// or an envelope member (`src`).
    pub(crate) field: Option<String>,
}

/// Nesting deeper than this is counted, not tracked: the scan's memory stays
/// bounded whatever the line (a path through it ends in `…`).
const MAX_FRAMES: usize = 256;
/// A key longer than this is cut short in an error text.
const MAX_KEY_SHOWN: usize = 64;
/// A field path longer than this is cut short in an error text.
const MAX_PATH_SHOWN: usize = 256;

/// How a container is named by the one holding it.
#[derive(Clone, Copy, Debug)]
enum Label {
    /// The top-level object.
    Top,
    /// The value of the member whose key token (quotes included) spans
    /// these bytes.
    Key(usize, usize),
    /// A value whose key could not be read.
    Unnamed,
    /// An array's element.
    Index(usize),
}

/// The members the salvage reads, by their key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Known {
    Src,
    Dest,
    Body,
    MsgId,
    Other,
}

/// An open object or array, during the scan.
struct Frame {
    object: bool,
    /// How the holder names this container.
    label: Label,
    /// Object: the current member's key token, and which it is.
    key: Option<(usize, usize)>,
    known: Known,
    /// Object: the next string is a key (at the start, after `,`, and
    /// after a value: a missing comma is tolerated).
    want_key: bool,
    /// Array: the current element's index.
    index: usize,
    /// The envelope's `body` object.
    body: bool,
}

impl Frame {
    fn new(object: bool, label: Label, body: bool) -> Frame {
        Frame {
            object,
            label,
            key: None,
            known: Known::Other,
            want_key: true,
            index: 0,
            body,
        }
    }

    /// The label of a value that starts in this container now.
    fn current(&self) -> Label {
        match (self.object, self.key) {
            (true, Some((s, e))) => Label::Key(s, e),
            (true, None) => Label::Unnamed,
            (false, _) => Label::Index(self.index),
        }
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The end of the string token starting at the quote `start` (past its
/// closing quote), and whether it was closed before the line ended.
fn string_end(line: &[u8], start: usize) -> (usize, bool) {
    let mut j = start + 1;
    while j < line.len() {
        match line[j] {
            b'"' => return (j + 1, true),
            b'\\' => j += 2,
            _ => j += 1,
        }
    }
    (line.len(), false)
}

/// A string token's text (escapes decoded), if it is a valid JSON string.
fn string_text(token: &[u8]) -> Option<String> {
    serde_json::from_slice::<String>(token).ok()
}

/// A key token's text for an error message: decoded where it can be,
/// else as its bytes read lossily; long keys cut short.
fn key_shown(token: &[u8]) -> String {
    let mut k = string_text(token).unwrap_or_else(|| {
        let inner = token.strip_prefix(b"\"").unwrap_or(token);
        let inner = inner.strip_suffix(b"\"").unwrap_or(inner);
        String::from_utf8_lossy(inner).into_owned()
    });
    if k.len() > MAX_KEY_SHOWN {
        let mut cut = MAX_KEY_SHOWN;
        while !k.is_char_boundary(cut) {
            cut -= 1;
        }
        k.truncate(cut);
        k.push('…');
    }
    k
}

/// Which salvaged member a key token names (escapes decoded only when the
/// key has some).
fn known_key(token: &[u8]) -> Known {
    let inner = match token {
        [b'"', inner @ .., b'"'] if token.len() >= 2 => inner,
        _ => return Known::Other,
    };
    let decoded;
    let name: &[u8] = if inner.contains(&b'\\') {
        match string_text(token) {
            Some(s) => {
                decoded = s;
                decoded.as_bytes()
            }
            None => return Known::Other,
        }
    } else {
        inner
    };
    match name {
        b"src" => Known::Src,
        b"dest" => Known::Dest,
        b"body" => Known::Body,
        b"msg_id" => Known::MsgId,
        _ => Known::Other,
    }
}

/// A `msg_id` token: a JSON non-negative integer that fits in 64 bits.
fn msg_id(token: &[u8]) -> Option<u64> {
    let digits = token.iter().all(u8::is_ascii_digit);
    let leading_zero = token.len() > 1 && token[0] == b'0';
    if token.is_empty() || !digits || leading_zero {
        return None;
    }
    std::str::from_utf8(token).ok()?.parse().ok()
}

/// The path of labels, relative to the body when inside the envelope's
/// `body` object; `None` when empty.
fn path_text(line: &[u8], stack: &[Frame], current: Option<Label>, deeper: bool) -> Option<String> {
    let in_body = stack.get(1).is_some_and(|f| f.body);
    let labels = stack
        .iter()
        .skip(if in_body { 2 } else { 1 })
        .map(|f| f.label)
        .chain(current);
    let mut out = String::new();
    for l in labels {
        if out.len() > MAX_PATH_SHOWN {
            out.push('…');
            return Some(out);
        }
        match l {
            Label::Top => {}
            Label::Key(s, e) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&key_shown(&line[s..e]));
            }
            // The path is known only up to here.
            Label::Unnamed => break,
            Label::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if deeper && !out.is_empty() {
        out.push('…');
    }
    (!out.is_empty()).then_some(out)
}

/// The members read so far by [`salvage`] (the last of a repeated key wins,
/// as in the parse).
#[derive(Default)]
struct Reads {
    src: Option<String>,
    dest: Option<String>,
    top_id: Option<u64>,
    body_id: Option<u64>,
    body_seen: bool,
}

impl Reads {
    /// A value starts in the innermost open container `stack`: a string or
    /// scalar `token`, or `None` for an object or array.
    fn value(&mut self, stack: &[Frame], token: Option<&[u8]>) {
        let f = &stack[stack.len() - 1];
        if !f.object {
            return;
        }
        let string = || {
            token
                .filter(|t| t.first() == Some(&b'"'))
                .and_then(string_text)
        };
        let number = || token.filter(|t| t.first() != Some(&b'"')).and_then(msg_id);
        match (stack.len(), f.known) {
            (1, Known::Src) => self.src = string(),
            (1, Known::Dest) => self.dest = string(),
            (1, Known::Body) => self.body_seen = true,
            (1, Known::MsgId) => self.top_id = number(),
            (2, Known::MsgId) if stack[1].body => self.body_id = number(),
            _ => {}
        }
    }
}

/// A tolerant scan of a line the parser refused, for what can still be read
/// (see [`Salvage`]), and for the member whose value holds the byte `at`.
///
/// A byte scanner, no parser: it tracks strings (a backslash escapes the
/// next byte) and nesting, and reads on past what a parser would refuse
/// (invalid UTF-8, control characters, bad escapes, missing or extra commas
/// and colons). It stops at the end of the top-level object or of the line.
/// Each step consumes at least one byte, so it ends within the line's
/// length; it never indexes out of bounds; its memory is bounded by the
/// line (nesting beyond [`MAX_FRAMES`] is counted, not kept).
///
/// Which members address the line: with a top-level `body` member, it is an
/// envelope (`src` and `dest` from the top level, `msg_id` from the body
/// object); a top-level object that closes without `body` is a bare body
/// (its `msg_id`, no `src` or `dest`); one cut short before any `body`
/// gives its top-level `src`, `dest` and `msg_id`.
pub(crate) fn salvage(line: &[u8], at: Option<usize>) -> Salvage {
    let n = line.len();
    let mut i = line.iter().position(|&b| !is_ws(b)).unwrap_or(n);
    if line.get(i) != Some(&b'{') {
        return Salvage::default();
    }
    i += 1;
    let mut stack = vec![Frame::new(true, Label::Top, false)];
    // Containers opened beyond MAX_FRAMES, counted, not tracked.
    let mut deeper = 0usize;
    let mut reads = Reads::default();
    let mut closed = false;
    // The field at `at`, once found (`Some(None)`: in no member's value).
    let mut field: Option<Option<String>> = if at.is_none() { Some(None) } else { None };
    let hit = |start: usize, end: usize, open_at_eol: bool| {
        at.is_some_and(|a| a >= start && (a < end || (open_at_eol && a == end)))
    };
    loop {
        while i < n && is_ws(line[i]) {
            i += 1;
        }
        if field.is_none() && at.is_some_and(|a| a < i.min(n)) {
            // Between tokens.
            field = Some(path_text(line, &stack, None, deeper > 0));
        }
        let Some(&b) = line.get(i) else { break };
        let top = stack.len();
        match b {
            b'{' | b'[' if deeper > 0 || top >= MAX_FRAMES => {
                if field.is_none() && hit(i, i + 1, false) {
                    field = Some(path_text(line, &stack, None, true));
                }
                deeper += 1;
                i += 1;
            }
            b'{' | b'[' => {
                let label = stack[top - 1].current();
                if field.is_none() && hit(i, i + 1, false) {
                    field = Some(path_text(line, &stack, Some(label), false));
                }
                reads.value(&stack, None);
                let f = &mut stack[top - 1];
                let is_body = top == 1 && f.known == Known::Body && b == b'{';
                f.want_key = true;
                stack.push(Frame::new(b == b'{', label, is_body));
                i += 1;
            }
            b'}' | b']' => {
                if field.is_none() && hit(i, i + 1, false) {
                    field = Some(path_text(line, &stack, None, deeper > 0));
                }
                i += 1;
                if deeper > 0 {
                    deeper -= 1;
                } else if top == 1 {
                    closed = true;
                    break;
                } else {
                    stack.pop();
                }
            }
            b':' | b',' => {
                if field.is_none() && hit(i, i + 1, false) {
                    field = Some(path_text(line, &stack, None, deeper > 0));
                }
                i += 1;
                if deeper == 0 {
                    let f = &mut stack[top - 1];
                    match (b, f.object) {
                        (b':', true) => f.want_key = false,
                        (b',', true) => {
                            f.want_key = true;
                            f.key = None;
                            f.known = Known::Other;
                        }
                        (b',', false) => f.index += 1,
                        _ => {}
                    }
                }
            }
            _ => {
                let string = b == b'"';
                let (end, open) = if string {
                    let (end, closed) = string_end(line, i);
                    (end, !closed)
                } else {
                    let len = line[i..]
                        .iter()
                        .position(|&c| is_ws(c) || b"{}[],:\"".contains(&c))
                        .unwrap_or(n - i);
                    (i + len.max(1), false)
                };
                let token = &line[i..end];
                if deeper > 0 {
                    if field.is_none() && hit(i, end, open) {
                        field = Some(path_text(line, &stack, None, true));
                    }
                } else if stack[top - 1].object && stack[top - 1].want_key {
                    // A key (unnamed unless a string).
                    if field.is_none() && hit(i, end, open) {
                        field = Some(path_text(line, &stack, None, false));
                    }
                    let f = &mut stack[top - 1];
                    f.key = string.then_some((i, end));
                    f.known = if string && top <= 2 {
                        known_key(token)
                    } else {
                        Known::Other
                    };
                    f.want_key = false;
                } else {
                    // A value.
                    let label = stack[top - 1].current();
                    if field.is_none() && hit(i, end, open) {
                        field = Some(path_text(line, &stack, Some(label), false));
                    }
                    reads.value(&stack, Some(token));
                    stack[top - 1].want_key = true;
                }
                i = end;
            }
        }
    }
    let field = match field {
        Some(f) => f,
        // The line ended before the offset (at or past its end): the open
        // containers, and the member whose value is missing.
        None if !closed => {
            let f = &stack[stack.len() - 1];
            let awaiting =
                (deeper == 0 && f.object && !f.want_key && f.key.is_some()).then(|| f.current());
            path_text(line, &stack, awaiting, deeper > 0)
        }
        None => None,
    };
    let mut out = Salvage {
        field,
        ..Salvage::default()
    };
    if reads.body_seen {
        out.src = reads.src;
        out.dest = reads.dest;
        out.msg_id = reads.body_id;
    } else if closed {
        out.msg_id = reads.top_id;
    } else {
        out.src = reads.src;
        out.dest = reads.dest;
        out.msg_id = reads.top_id;
    }
    out
}

/// The members of a body the runtime reads itself.
#[derive(Debug, Default)]
pub(crate) struct Head<'a> {
    pub(crate) msg_type: Option<&'a RawValue>,
    pub(crate) msg_id: Option<&'a RawValue>,
    pub(crate) in_reply_to: Option<&'a RawValue>,
    pub(crate) traceparent: Option<&'a RawValue>,
    pub(crate) tracestate: Option<&'a RawValue>,
    pub(crate) headers: Option<&'a RawValue>,
}

impl<'a> Head<'a> {
    /// Picks the runtime's members out of a body (no parsing: the values
    /// stay raw until used).
    pub(crate) fn of(body: &Body<'a>) -> Head<'a> {
        let mut h = Head::default();
        for (k, v) in &body.members {
            let slot = match &*k.0 {
                "type" => &mut h.msg_type,
                "msg_id" => &mut h.msg_id,
                "in_reply_to" => &mut h.in_reply_to,
                "traceparent" => &mut h.traceparent,
                "tracestate" => &mut h.tracestate,
                "headers" => &mut h.headers,
                _ => continue,
            };
            *slot = Some(v);
        }
        h
    }
}

/// Deserializer methods that hand the value to serde_json as it is.
macro_rules! fn_json {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.json(|de| de.$method(visitor))
        }
    )*};
}

/// Decoding a typed request from a [`Body`]: a map whose values are read
/// by serde_json from their raw text.
impl<'de> Deserializer<'de> for &Body<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_map(BodyAccess {
            members: self.members.iter(),
            value: None,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct BodyAccess<'de, 'b> {
    members: std::slice::Iter<'b, (CowStr<'de>, &'de RawValue)>,
    value: Option<&'de RawValue>,
}

impl<'de> MapAccess<'de> for BodyAccess<'de, '_> {
    type Error = serde_json::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let Some((k, v)) = self.members.next() else {
            return Ok(None);
        };
        self.value = Some(v);
        let key = match &k.0 {
            Cow::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            Cow::Owned(s) => seed.deserialize(de::value::StrDeserializer::new(s)),
        };
        key.map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let raw = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("a value without its key"))?;
        seed.deserialize(Member(raw.get()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
}

/// One member's value, raw JSON text that the line's parse has already
/// checked. The common cases are read in place: a string without escapes
/// is its own text between the quotes (borrowed, not scanned again), a
/// `null` is none, an ignored value is skipped; anything else goes to
/// serde_json.
struct Member<'de>(&'de str);

/// Decodes one raw member value (a message's `type`, `msg_id`...) the way
/// a typed request's members are decoded.
pub(crate) fn decode_member<'de, T: Deserialize<'de>>(
    raw: &'de RawValue,
) -> Result<T, serde_json::Error> {
    T::deserialize(Member(raw.get()))
}

/// Decodes a raw member that must be a string, borrowed when it holds no
/// escape.
pub(crate) fn decode_str<'de>(raw: &'de RawValue) -> Result<Cow<'de, str>, serde_json::Error> {
    decode_member::<CowStr<'de>>(raw).map(|s| s.0)
}

impl<'de> Member<'de> {
    /// The text of a string literal without escapes.
    fn plain_str(&self) -> Option<&'de str> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('\\')).then_some(inner)
    }

    fn json<V, F>(self, visit: F) -> Result<V, serde_json::Error>
    where
        F: FnOnce(
            &mut serde_json::Deserializer<serde_json::de::StrRead<'de>>,
        ) -> Result<V, serde_json::Error>,
    {
        let mut de = serde_json::Deserializer::from_str(self.0);
        let v = visit(&mut de)?;
        de.end()?;
        Ok(v)
    }
}

impl<'de> Deserializer<'de> for Member<'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.plain_str() {
            Some(s) => visitor.visit_borrowed_str(s),
            None => self.json(|de| de.deserialize_any(visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.plain_str() {
            Some(s) => visitor.visit_borrowed_str(s),
            None => self.json(|de| de.deserialize_str(visitor)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        // JSON's non-negative integers: no sign, no leading zero, no
        // fraction or exponent; 19 digits always fit.
        let b = self.0.as_bytes();
        let plain = !b.is_empty()
            && b.len() <= 19
            && b.iter().all(u8::is_ascii_digit)
            && (b.len() == 1 || b[0] != b'0');
        if plain {
            let n = b.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
            return visitor.visit_u64(n);
        }
        self.json(|de| de.deserialize_u64(visitor))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        if self.0 == "null" {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        // RawValue (and the like) is a newtype serde_json treats specially.
        self.json(|de| de.deserialize_newtype_struct(name, visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json(|de| de.deserialize_struct(name, fields, visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json(|de| de.deserialize_enum(name, variants, visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json(|de| de.deserialize_unit_struct(name, visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json(|de| de.deserialize_tuple(len, visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.json(|de| de.deserialize_tuple_struct(name, len, visitor))
    }

    fn_json! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_bytes
        deserialize_byte_buf deserialize_unit deserialize_seq deserialize_map
    }
}

/// An output line.
#[derive(Serialize)]
pub(crate) struct Envelope<'a, B: Serialize> {
    pub(crate) src: &'a str,
    pub(crate) dest: &'a str,
    pub(crate) body: B,
}

/// A body the node sends on its own: its own `msg_id`, and the trace
/// context the sidecar injects.
#[derive(Serialize)]
pub(crate) struct SentBody<'a, T: Serialize + ?Sized> {
    #[serde(flatten)]
    pub(crate) body: &'a T,
    pub(crate) msg_id: u64,
    #[serde(flatten)]
    pub(crate) injected: crate::sidecar::Injected,
}

/// An error body.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) in_reply_to: Option<u64>,
    pub(crate) code: u16,
    pub(crate) text: &'a str,
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line is in the buffer (without its newline).
    Complete,
    /// A line longer than the limit was skipped; its length.
    TooLong(usize),
    /// End of input.
    Eof,
}

/// Reads one line into `buf`, keeping at most `max` bytes: a longer line is
/// consumed and reported, never held in memory.
pub(crate) fn read_line<R: Read>(
    r: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    buf.clear();
    let mut total = 0usize;
    let mut too_long = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            return Ok(match (total, too_long) {
                (0, _) => Line::Eof,
                (n, true) => Line::TooLong(n),
                _ => Line::Complete,
            });
        }
        let (chunk_len, used, done) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i, i + 1, true),
            None => (avail.len(), avail.len(), false),
        };
        total += used;
        if !too_long {
            if buf.len() + chunk_len > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&avail[..chunk_len]);
            }
        }
        r.consume(used);
        if done {
            if too_long {
                return Ok(Line::TooLong(total - 1));
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Line::Complete);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_and_bare_body() {
        let m = parse_line(r#"{"src":"c1","dest":"n1","sampling_rate":0.01,"body":{"type":"x"}}"#)
            .unwrap();
        assert_eq!(m.src.unwrap().0, "c1");
        assert_eq!(m.dest.unwrap().0, "n1");
        assert_eq!(m.body.unwrap().get("type").unwrap().get(), r#""x""#);
        assert_eq!(m.extra[0].0 .0, "sampling_rate");
        let m = parse_line(r#" {"type":"x","msg_id":1} "#).unwrap();
        assert!(m.src.is_none());
        let body = m.body.unwrap();
        let head = Head::of(&body);
        assert_eq!(head.msg_type.unwrap().get(), r#""x""#);
        assert_eq!(head.msg_id.unwrap().get(), "1");
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert!(parse_line("[1,2]")
            .unwrap_err()
            .text
            .contains("JSON object"));
        assert!(parse_line("{nope")
            .unwrap_err()
            .text
            .contains("not valid JSON"));
        assert!(parse_line(r#"{"src":1,"body":{}}"#)
            .unwrap_err()
            .text
            .contains("`src`"));
        let m = parse_line(r#"{"src":"c1","body":[1,{"a":2}]}"#).unwrap();
        assert_eq!(m.src.unwrap().0, "c1", "still addressed");
        assert!(m.body.unwrap_err().contains("`body`"));
    }

    #[test]
    fn a_body_decodes_into_a_typed_request_borrowing_its_strings() {
        #[derive(Deserialize, Debug)]
        struct Req<'a> {
            #[serde(borrow)]
            message: Cow<'a, str>,
            n: Vec<u8>,
            #[serde(default)]
            missing: Option<u8>,
        }
        let line = r#"{"src":"c","body":{"type":"t","message":"hi","n":[1,2]}}"#;
        let body = parse_line(line).unwrap().body.unwrap();
        let r: Req<'_> = body.decode().unwrap();
        assert!(matches!(r.message, Cow::Borrowed("hi")));
        assert_eq!(r.n, [1, 2]);
        assert_eq!(r.missing, None);
        let e = parse_line(r#"{"message":"hi","n":"x"}"#)
            .unwrap()
            .body
            .unwrap()
            .decode::<Req<'_>>()
            .unwrap_err();
        assert!(e.text.starts_with("field `n`:"), "{}", e.text);
    }

    #[test]
    fn member_values_read_in_place_decode_as_serde_json_would() {
        #[derive(Deserialize, Debug)]
        struct Req<'a> {
            #[serde(borrow)]
            plain: Cow<'a, str>,
            #[serde(borrow)]
            escaped: Cow<'a, str>,
            #[serde(borrow)]
            none: Option<Cow<'a, str>>,
            #[serde(borrow)]
            some: Option<Cow<'a, str>>,
            n: u64,
            #[serde(borrow)]
            raw: &'a RawValue,
            tags: Vec<String>,
        }
        let line = r#"{"body":{"plain":"a b","escaped":"q\"\u00e9","none":null,"some":"s","n":7,"raw":{"k":[1]},"tags":["x"],"ignored":{"deep":[true]}}}"#;
        let body = parse_line(line).unwrap().body.unwrap();
        let r: Req<'_> = body.decode().unwrap();
        assert!(matches!(r.plain, Cow::Borrowed("a b")), "borrowed in place");
        assert_eq!(r.escaped, "q\"\u{e9}", "escapes go through serde_json");
        assert_eq!(r.none, None);
        assert_eq!(r.some.as_deref(), Some("s"));
        assert_eq!(
            (r.n, r.raw.get(), r.tags.as_slice()),
            (7, r#"{"k":[1]}"#, &["x".to_owned()][..])
        );
        // A mistyped value is still refused, naming the field.
        let e = parse_line(r#"{"plain":5,"escaped":"","n":1,"raw":1,"tags":[]}"#)
            .unwrap()
            .body
            .unwrap()
            .decode::<Req<'_>>()
            .unwrap_err();
        assert!(e.text.starts_with("field `plain`:"), "{}", e.text);
    }

    #[test]
    fn ids_and_types_read_in_place_agree_with_serde_json() {
        let raw = |t: &str| RawValue::from_string(t.to_owned()).unwrap();
        for t in [
            "0",
            "7",
            "18446744073709551615",
            "12345678901234567890",
            "1.0",
            "-1",
            "1e3",
            "\"1\"",
        ] {
            let r = raw(t);
            assert_eq!(
                decode_member::<u64>(&r).ok(),
                serde_json::from_str::<u64>(t).ok(),
                "{t}"
            );
        }
        assert!(matches!(
            decode_str(&raw(r#""log""#)).unwrap(),
            Cow::Borrowed("log")
        ));
        assert_eq!(decode_str(&raw(r#""l\u006fg""#)).unwrap(), "log");
        assert!(decode_str(&raw("5")).is_err());
    }

    /// The error for a line as `handle_line` builds it.
    fn refused(line: &[u8]) -> Refused {
        match std::str::from_utf8(line) {
            Ok(text) => parse_line(text).expect_err("the line must be refused"),
            Err(e) => refuse_utf8(line, e.valid_up_to()),
        }
    }

    #[test]
    fn a_refused_line_keeps_what_can_be_read() {
        let r = |src: &str, dest: &str, id: u64, text: &str| Refused {
            text: text.to_owned(),
            src: Some(src.to_owned()),
            dest: Some(dest.to_owned()),
            msg_id: Some(id),
        };
        let env = |body: &[u8]| {
            let mut l = br#"{"src":"c","dest":"n","body":{"type":"log","msg_id":7,"#.to_vec();
            l.extend_from_slice(body);
            l
        };
        // The envelope's prefix is 54 bytes long.
        assert_eq!(
            refused(&env(b"\"message\":\"ab\xffc\"}}")),
            r("c", "n", 7, "field `message`: invalid UTF-8 at byte 67")
        );
        assert_eq!(
            refused(&env(b"\"message\":\"ab\x01c\"}}")),
            r(
                "c",
                "n",
                7,
                "field `message`: control character in a string at byte 67"
            )
        );
        // Multi-byte characters before the culprit: offsets count bytes.
        assert_eq!(
            refused(&env("\"message\":\"é€\x01\"}}".as_bytes())),
            r(
                "c",
                "n",
                7,
                "field `message`: control character in a string at byte 70"
            )
        );
        assert_eq!(
            refused(&env(b"\"message\":\"a\",}}")),
            r(
                "c",
                "n",
                7,
                "not valid JSON: trailing comma at byte 67: expected another member after `,`, found `}`"
            )
        );
        assert_eq!(
            refused(&env(b"\"attributes\":{\"k\":[1, ]}}}")),
            r(
                "c",
                "n",
                7,
                "field `attributes.k`: trailing comma at byte 74: expected another element after `,`, found `]`"
            )
        );
        assert_eq!(
            refused(&env(br#""message":"a\qb"}}"#)),
            r("c", "n", 7, "field `message`: invalid escape at byte 66")
        );
        assert_eq!(
            refused(&env(br#""message":"\uZZZZ"}}"#)),
            r("c", "n", 7, "field `message`: invalid escape at byte 65")
        );
        assert_eq!(
            refused(&env(br#""message":"a" "b"}}"#)),
            r(
                "c",
                "n",
                7,
                "not valid JSON: expected `,` or `}` at byte 68, found `\"`"
            )
        );
        assert_eq!(
            refused(&env(br#""spans":[{"name":"a"},{"name":"b"#)),
            r(
                "c",
                "n",
                7,
                "field `spans[1].name`: line ends at byte 86 while parsing a string"
            )
        );
        assert_eq!(
            refused(&env(br#""message":"#)),
            r(
                "c",
                "n",
                7,
                "field `message`: line ends at byte 64 while parsing a value"
            )
        );
        // A bare body: no src or dest, its own msg_id.
        assert_eq!(
            refused(b"{\"msg_id\":7,\"type\":\"log\",\"message\":\"\xff\"}"),
            Refused {
                text: "field `message`: invalid UTF-8 at byte 36".to_owned(),
                msg_id: Some(7),
                ..Refused::default()
            }
        );
        // A wrongly typed src: the rest still addresses the error.
        assert_eq!(
            refused(br#"{"src":1,"dest":"n","body":{"msg_id":3}}"#),
            Refused {
                text: "field `src` must be a string".to_owned(),
                dest: Some("n".to_owned()),
                msg_id: Some(3),
                ..Refused::default()
            }
        );
        // Not an object: nothing to salvage.
        assert_eq!(
            refused(b"[1,2]"),
            Refused {
                text: "a message must be a JSON object: invalid type: sequence, expected a JSON object"
                    .to_owned(),
                ..Refused::default()
            }
        );
        assert_eq!(
            refused(b"\xc3\x28"),
            Refused {
                text: "invalid UTF-8 at byte 0".to_owned(),
                ..Refused::default()
            }
        );
        assert_eq!(
            refused(b"this is not json").text,
            "not valid JSON: expected ident at byte 1, found `h`"
        );
    }

    #[test]
    fn salvage_reads_envelopes_bare_bodies_and_cut_lines() {
        let s = |l: &str| salvage(l.as_bytes(), None);
        let got =
            s(r#" { "dest" : "n\u0031", "\u0073rc":"c", "body": {"a":{"msg_id":1},"msg_id": 42 ,"#);
        assert_eq!(got.src.as_deref(), Some("c"));
        assert_eq!(got.dest.as_deref(), Some("n1"));
        assert_eq!(got.msg_id, Some(42), "the body's, not a nested one");
        // A bare body that closes: its msg_id, and no addressing.
        let got = s(r#"{"src":"c","msg_id":5,"x":"\q"}"#);
        assert_eq!((got.src, got.msg_id), (None, Some(5)));
        // Cut short before any body: what the top level has.
        let got = s(r#"{"src":"c","dest":"n","bo"#);
        assert_eq!(
            (got.src.as_deref(), got.dest.as_deref()),
            (Some("c"), Some("n"))
        );
        // A msg_id that is not a non-negative integer is not read.
        for id in [
            "-1",
            "1.5",
            "01",
            "\"7\"",
            "18446744073709551616",
            "[7]",
            "7x",
        ] {
            let line = format!(r#"{{"src":"c","body":{{"msg_id":{id},"type":"t"}}}}"#);
            assert_eq!(s(&line).msg_id, None, "{line}");
        }
        assert_eq!(
            s(r#"{"body":{"msg_id":18446744073709551615}}"#).msg_id,
            Some(u64::MAX)
        );
        // A body that is not an object has no msg_id.
        assert_eq!(s(r#"{"src":"c","body":["msg_id",5]}"#).msg_id, None);
        // A src that is not a valid string is not read.
        assert_eq!(s("{\"src\":\"c\x01\",\"body\":{}}").src, None);
        // Nesting past the tracked depth is counted: the path ends in `…`.
        let deep = format!(r#"{{"body":{{"a":{}"x"#, "[".repeat(10_000));
        let got = salvage(deep.as_bytes(), Some(deep.len() - 1));
        assert!(got.field.as_deref().unwrap().ends_with('…'), "{got:?}");
        assert!(got.field.unwrap().len() < 2 * MAX_PATH_SHOWN);
    }

    /// xorshift64: a fixed seed, so a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Runs the salvage (and the whole refusal) on a line, asking about a
    /// few offsets; checks what it returns is bounded by the line.
    fn scan_everything(line: &[u8], rng: &mut Rng) {
        let n = line.len();
        for at in [
            None,
            Some(0),
            Some(n / 2),
            Some(n),
            Some(n + 3),
            Some(rng.below(n + 1)),
        ] {
            let s = salvage(line, at);
            for text in [&s.src, &s.dest, &s.field].into_iter().flatten() {
                assert!(text.len() <= 4 * n + MAX_PATH_SHOWN + 16, "{line:?}: {s:?}");
            }
            if let Some(id) = s.msg_id {
                let digits = id.to_string();
                assert!(
                    line.windows(digits.len()).any(|w| w == digits.as_bytes()),
                    "{line:?}: msg_id {id} is not in the line"
                );
            }
        }
        if let Ok(text) = std::str::from_utf8(line) {
            if let Err(r) = parse_line(text) {
                assert!(!r.text.is_empty());
            }
        } else {
            let at = std::str::from_utf8(line).unwrap_err().valid_up_to();
            assert!(refuse_utf8(line, at).text.contains("invalid UTF-8"));
        }
    }

    #[test]
    fn the_salvage_never_panics_on_garbage() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let lines: [&[u8]; 5] = [
            br#"{"src":"c1","dest":"n1","sampling_rate":0.01,"body":{"type":"log","msg_id":7,"message":"a \"q\" \\ \u00e9","attributes":{"k":[1,{"x":null},true]}}}"#,
            b"{\"msg_id\":7,\"type\":\"log\",\"message\":\"\xff\x01\",\"trace_id\":\"t\",}",
            br#"{"src":"c","dest":"n","body":{"type":"span","msg_id":18446744073709551615,"spans":[[[[{"a":"\ud800"}]]]]}}"#,
            br#"  {"a" "b" : , : ,, {"body" [ } ] "msg_id" 3 \ "#,
            b"{\"\\\"\\\\\\\":\"\\",
        ];
        // Every prefix of every line.
        for line in lines {
            for end in 0..=line.len() {
                scan_everything(&line[..end], &mut rng);
            }
        }
        // Random bytes, biased towards JSON's own.
        let alphabet = b"{}[]\":,\\ 0123456789-.eEtrufalsn\x01\xff\xc3\xa9msg_idbodysrcdest";
        for _ in 0..20_000 {
            let len = rng.below(64);
            let line: Vec<u8> = (0..len)
                .map(|_| match rng.below(4) {
                    0 => (rng.next() & 0xff) as u8,
                    _ => alphabet[rng.below(alphabet.len())],
                })
                .collect();
            scan_everything(&line, &mut rng);
        }
        // The lines above, mangled: bytes replaced, cut, inserted, removed.
        for _ in 0..20_000 {
            let mut line = lines[rng.below(lines.len())].to_vec();
            for _ in 0..=rng.below(4) {
                if line.is_empty() {
                    break;
                }
                let i = rng.below(line.len());
                match rng.below(4) {
                    0 => line[i] = (rng.next() & 0xff) as u8,
                    1 => line.truncate(i),
                    2 => line.insert(i, alphabet[rng.below(alphabet.len())]),
                    _ => {
                        line.remove(i);
                    }
                }
            }
            scan_everything(&line, &mut rng);
        }
    }

    #[test]
    fn bounded_lines() {
        let data = b"short\r\nthis line is long\nok\nlast";
        let mut r = BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Line::Complete);
        assert_eq!(buf, b"short");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Line::TooLong(17));
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Line::Complete);
        assert_eq!(buf, b"ok");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Line::Complete);
        assert_eq!(buf, b"last");
        assert_eq!(read_line(&mut r, &mut buf, 8).unwrap(), Line::Eof);
    }
}
