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

/// The top-level object of a line: every member, its value left raw.
struct Members<'a>(Vec<(CowStr<'a>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::with_capacity(4);
                while let Some(k) = map.next_key::<CowStr<'de>>()? {
                    let v: &'de RawValue = map.next_value()?;
                    members.push((k, v));
                }
                Ok(Members(members))
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
    pub(crate) body: &'a RawValue,
    /// Envelope members other than `src`, `dest` and `body`.
    pub(crate) extra: Vec<(CowStr<'a>, &'a RawValue)>,
}

fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Parses a line: an envelope `{"src","dest","body"}` or a bare body.
pub(crate) fn parse_line(line: &str) -> Result<Incoming<'_>, String> {
    let Members(members) = serde_json::from_str(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            format!(
                "a message must be a JSON object: {}",
                strip_position(&e.to_string())
            )
        }
    })?;
    if !members.iter().any(|(k, _)| k.0 == "body") {
        // A bare body: the whole line is the body.
        let body: &RawValue =
            serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
        return Ok(Incoming {
            src: None,
            dest: None,
            body,
            extra: Vec::new(),
        });
    }
    let mut msg = Incoming {
        src: None,
        dest: None,
        body: members[0].1,
        extra: Vec::new(),
    };
    for (k, v) in members {
        match &*k.0 {
            "src" | "dest" => {
                let s: CowStr<'_> = serde_json::from_str(v.get())
                    .map_err(|_| format!("field `{}` must be a string", k.0))?;
                if k.0 == "src" {
                    msg.src = Some(s);
                } else {
                    msg.dest = Some(s);
                }
            }
            "body" => msg.body = v,
            _ => msg.extra.push((k, v)),
        }
    }
    Ok(msg)
}

/// The members of a body the runtime reads itself, in one pass.
#[derive(Deserialize, Debug, Default)]
pub(crate) struct Head<'a> {
    #[serde(rename = "type", borrow, default)]
    pub(crate) msg_type: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) msg_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) in_reply_to: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) traceparent: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) tracestate: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) headers: Option<&'a RawValue>,
}

pub(crate) fn parse_head(body: &RawValue) -> Result<Head<'_>, String> {
    serde_json::from_str(body.get()).map_err(|e| {
        format!(
            "the body must be a JSON object: {}",
            strip_position(&e.to_string())
        )
    })
}

/// An output line.
#[derive(Serialize)]
pub(crate) struct Envelope<'a, B: Serialize> {
    pub(crate) src: &'a str,
    pub(crate) dest: &'a str,
    pub(crate) body: B,
}

/// A reply body: the handler's body plus `in_reply_to`.
#[derive(Serialize)]
pub(crate) struct ReplyBody<'a, T: Serialize + ?Sized> {
    #[serde(flatten)]
    pub(crate) body: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) in_reply_to: Option<u64>,
}

/// A body the node sends on its own: its own `msg_id`, and the trace
/// context the sidecar injects.
#[derive(Serialize)]
pub(crate) struct SentBody<'a, T: Serialize + ?Sized> {
    #[serde(flatten)]
    pub(crate) body: &'a T,
    pub(crate) msg_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tracestate: Option<String>,
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
        let (chunk_len, used, done) = match avail.iter().position(|&b| b == b'\n') {
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
        assert_eq!(m.body.get(), r#"{"type":"x"}"#);
        assert_eq!(m.extra[0].0 .0, "sampling_rate");
        let m = parse_line(r#" {"type":"x","msg_id":1} "#).unwrap();
        assert!(m.src.is_none());
        assert_eq!(m.body.get(), r#"{"type":"x","msg_id":1}"#);
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert!(parse_line("[1,2]").unwrap_err().contains("JSON object"));
        assert!(parse_line("{nope").unwrap_err().contains("not valid JSON"));
        assert!(parse_line(r#"{"src":1,"body":{}}"#)
            .unwrap_err()
            .contains("`src`"));
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
