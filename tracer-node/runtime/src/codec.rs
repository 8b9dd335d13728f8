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
pub(crate) fn parse_line<'a>(line: &'a str) -> Result<Incoming<'a>, String> {
    let top: Top<'_> = serde_json::from_str(line).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            format!("not valid JSON: {e}")
        } else {
            format!(
                "a message must be a JSON object: {}",
                strip_position(&e.to_string())
            )
        }
    })?;
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
        Some((k, v)) => serde_json::from_str::<CowStr<'a>>(v.get())
            .map(Some)
            .map_err(|_| format!("field `{}` must be a string", k.0)),
    };
    Ok(Incoming {
        src: string(top.src)?,
        dest: string(top.dest)?,
        body,
        extra: top.members,
    })
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
        let mut de = serde_json::Deserializer::from_str(raw.get());
        let v = seed.deserialize(&mut de)?;
        de.end()?;
        Ok(v)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.members.len())
    }
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
        assert!(parse_line("[1,2]").unwrap_err().contains("JSON object"));
        assert!(parse_line("{nope").unwrap_err().contains("not valid JSON"));
        assert!(parse_line(r#"{"src":1,"body":{}}"#)
            .unwrap_err()
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
