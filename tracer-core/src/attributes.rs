//! Attribute values in the OpenTelemetry model: scalars and homogeneous arrays.

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

/// An attribute key; static keys cost no allocation.
pub type Key = Cow<'static, str>;

/// An attribute value: string, bool, int, float, or an array of one of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A string.
    String(Cow<'static, str>),
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// An array of values of one type.
    Array(Array),
}

/// A homogeneous array, as OpenTelemetry allows.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Strings.
    String(Vec<Cow<'static, str>>),
    /// Booleans.
    Bool(Vec<bool>),
    /// Integers.
    I64(Vec<i64>),
    /// Floats.
    F64(Vec<f64>),
}

/// One attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The key, e.g. `service.name`.
    pub key: Key,
    /// The value.
    pub value: Value,
}

impl KeyValue {
    /// Builds an attribute from anything convertible.
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> Self {
        KeyValue {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl Value {
    /// The string inside a `String` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::I64(i) => write!(f, "{i}"),
            Value::F64(x) => write!(f, "{x}"),
            Value::Array(a) => write!(f, "{a:?}"),
        }
    }
}

macro_rules! from_scalar {
    ($($t:ty => $variant:ident $(as $cast:ty)?),* $(,)?) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::$variant(v $(as $cast)?) }
        }
    )*};
}
from_scalar!(bool => Bool, i64 => I64, i32 => I64 as i64, u32 => I64 as i64, i16 => I64 as i64, u16 => I64 as i64, i8 => I64 as i64, u8 => I64 as i64, f64 => F64, f32 => F64 as f64);

impl From<u64> for Value {
    /// Saturates above `i64::MAX`: OpenTelemetry integers are signed.
    fn from(v: u64) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<&'static str> for Value {
    fn from(v: &'static str) -> Self {
        Value::String(Cow::Borrowed(v))
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(Cow::Owned(v))
    }
}

impl From<Cow<'static, str>> for Value {
    fn from(v: Cow<'static, str>) -> Self {
        Value::String(v)
    }
}

impl From<Array> for Value {
    fn from(v: Array) -> Self {
        Value::Array(v)
    }
}

impl From<Vec<bool>> for Value {
    fn from(v: Vec<bool>) -> Self {
        Value::Array(Array::Bool(v))
    }
}

impl From<Vec<i64>> for Value {
    fn from(v: Vec<i64>) -> Self {
        Value::Array(Array::I64(v))
    }
}

impl From<Vec<f64>> for Value {
    fn from(v: Vec<f64>) -> Self {
        Value::Array(Array::F64(v))
    }
}

impl From<Vec<String>> for Value {
    fn from(v: Vec<String>) -> Self {
        Value::Array(Array::String(v.into_iter().map(Cow::Owned).collect()))
    }
}

impl From<Vec<&'static str>> for Value {
    fn from(v: Vec<&'static str>) -> Self {
        Value::Array(Array::String(v.into_iter().map(Cow::Borrowed).collect()))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(v) => s.serialize_str(v),
            Value::Bool(v) => s.serialize_bool(*v),
            Value::I64(v) => s.serialize_i64(*v),
            Value::F64(v) => s.serialize_f64(*v),
            Value::Array(Array::String(v)) => v.serialize(s),
            Value::Array(Array::Bool(v)) => v.serialize(s),
            Value::Array(Array::I64(v)) => v.serialize(s),
            Value::Array(Array::F64(v)) => v.serialize(s),
        }
    }
}

/// Reads an attribute value from plain data (JSON, say): a string, a bool,
/// a number (an integer that fits `i64`, else a float), or an array of one
/// of those (integers and floats mixed make floats). `null`, objects and
/// mixed arrays are errors.
impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, bool, number, or an array of one of those")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::I64(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v).map_or(Value::F64(v as f64), Value::I64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                Ok(Value::F64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::String(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::String(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items: Vec<Value> = Vec::new();
                while let Some(v) = seq.next_element::<Value>()? {
                    items.push(v);
                }
                // Each element as one type, or none of them.
                fn each<T>(items: &[Value], f: impl Fn(&Value) -> Option<T>) -> Option<Vec<T>> {
                    items.iter().map(f).collect()
                }
                let array = if let Some(v) = each(&items, |v| match v {
                    Value::String(s) => Some(s.clone()),
                    _ => None,
                }) {
                    Array::String(v)
                } else if let Some(v) = each(&items, |v| match v {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                }) {
                    Array::Bool(v)
                } else if let Some(v) = each(&items, |v| match v {
                    Value::I64(i) => Some(*i),
                    _ => None,
                }) {
                    Array::I64(v)
                } else if let Some(v) = each(&items, |v| match v {
                    Value::I64(i) => Some(*i as f64),
                    Value::F64(f) => Some(*f),
                    _ => None,
                }) {
                    Array::F64(v)
                } else {
                    return Err(de::Error::custom(
                        "an attribute array holds values of one type (no nesting)",
                    ));
                };
                Ok(Value::Array(array))
            }
        }
        d.deserialize_any(V)
    }
}

/// Serializes a list of attributes as one JSON object (`{"key": value}`).
pub fn serialize_map<S: Serializer>(attrs: &[KeyValue], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(attrs.len()))?;
    for kv in attrs {
        map.serialize_entry(&*kv.key, &kv.value)?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_what_they_write() {
        for v in [
            Value::from("x"),
            Value::Bool(true),
            Value::I64(-3),
            Value::F64(1.5),
            Value::from(vec!["a", "b"]),
            Value::Array(Array::Bool(vec![true, false])),
            Value::Array(Array::I64(vec![1, 2])),
            Value::Array(Array::F64(vec![1.5, 2.0])),
        ] {
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), v, "{json}");
        }
        assert_eq!(
            serde_json::from_str::<Value>("[1, 2.5]").unwrap(),
            Value::Array(Array::F64(vec![1.0, 2.5])),
            "mixed numbers are floats"
        );
        for bad in ["null", "{}", "[1, \"a\"]", "[[1]]"] {
            assert!(serde_json::from_str::<Value>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_serialize_as_plain_json() {
        let attrs = vec![
            KeyValue::new("s", "x"),
            KeyValue::new("b", true),
            KeyValue::new("i", 7_i64),
            KeyValue::new("f", 1.5),
            KeyValue::new("a", vec!["p", "q"]),
            KeyValue::new("u", u64::MAX),
        ];
        let mut out = Vec::new();
        serialize_map(&attrs, &mut serde_json::Serializer::new(&mut out)).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"s":"x","b":true,"i":7,"f":1.5,"a":["p","q"],"u":9223372036854775807}"#
        );
    }
}
