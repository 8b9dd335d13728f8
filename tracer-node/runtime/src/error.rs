//! Maelstrom error codes, and request decoding whose errors name the field.

use crate::codec::Body;
use serde::Deserialize;
use std::fmt;

/// The Maelstrom error codes the node answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 10: the message type is not served.
    NotSupported,
    /// 12: bad JSON, or a missing or wrongly typed field.
    MalformedRequest,
    /// 13: the handler panicked; the node keeps serving.
    Crash,
    /// 20: an unknown span or trace.
    KeyDoesNotExist,
    /// 22: the request conflicts with the state (say, a span already ended).
    PreconditionFailed,
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::NotSupported => 10,
            ErrorCode::MalformedRequest => 12,
            ErrorCode::Crash => 13,
            ErrorCode::KeyDoesNotExist => 20,
            ErrorCode::PreconditionFailed => 22,
        }
    }
}

/// An error reply: a code and a text for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The code.
    pub code: ErrorCode,
    /// What went wrong; for a malformed request, which field.
    pub text: String,
}

impl Error {
    /// An error with a code and a text.
    pub fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        Error {
            code,
            text: text.into(),
        }
    }

    /// Code 10.
    pub fn not_supported(text: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotSupported, text)
    }

    /// Code 12.
    pub fn malformed(text: impl Into<String>) -> Self {
        Self::new(ErrorCode::MalformedRequest, text)
    }

    /// Code 12 about one field: ``field `name`: why``.
    pub fn bad_field(field: &str, why: impl fmt::Display) -> Self {
        Self::malformed(format!("field `{field}`: {why}"))
    }

    /// Code 20.
    pub fn key_does_not_exist(text: impl Into<String>) -> Self {
        Self::new(ErrorCode::KeyDoesNotExist, text)
    }

    /// Code 22.
    pub fn precondition_failed(text: impl Into<String>) -> Self {
        Self::new(ErrorCode::PreconditionFailed, text)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error {}: {}", self.code.code(), self.text)
    }
}

impl std::error::Error for Error {}

/// serde_json's message without its " at line 1 column N" suffix: the
/// position inside one line is noise next to the field's name.
fn strip_position(msg: &str) -> &str {
    msg.rfind(" at line ").map_or(msg, |i| &msg[..i])
}

/// Decodes a request from a message body; the request may borrow strings
/// from the line (`Cow<'a, str>` with `#[serde(borrow)]`). On failure the
/// text names the field: ``field `limit`: invalid type: string "x",
/// expected usize`` or ``missing field `message` ``.
pub fn decode<'a, T: Deserialize<'a>>(body: &Body<'a>) -> Result<T, Error> {
    match T::deserialize(body) {
        Ok(v) => Ok(v),
        // The slow path runs only on bad input: redo it tracking the path.
        Err(_) => match serde_path_to_error::deserialize::<_, T>(body) {
            Ok(v) => Ok(v),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                let inner = strip_position(&inner);
                Err(if path == "." || path.is_empty() {
                    Error::malformed(inner.to_owned())
                } else {
                    Error::bad_field(&path, inner)
                })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Req {
        message: String,
        #[serde(default)]
        limit: Option<u32>,
    }

    fn decode<'a, T: Deserialize<'a>>(line: &'a str) -> Result<T, Error> {
        crate::codec::parse_line(line)
            .unwrap()
            .body
            .unwrap()
            .decode()
    }

    #[test]
    fn errors_name_the_field() {
        let e = decode::<Req>(r#"{"type":"log"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::MalformedRequest);
        assert_eq!(e.text, "missing field `message`");
        let e = decode::<Req>(r#"{"message":42}"#).unwrap_err();
        assert!(
            e.text
                .starts_with("field `message`: invalid type: integer `42`"),
            "{}",
            e.text
        );
        let e = decode::<Req>(r#"{"message":"m","limit":-1}"#).unwrap_err();
        assert!(e.text.starts_with("field `limit`:"), "{}", e.text);
        assert!(!e.text.contains("column"), "{}", e.text);
    }
}
