//! W3C Trace Context Level 1: `traceparent` and `tracestate`, extracted from
//! and injected into any header carrier.
//!
//! Parsing follows the spec's processing model: a `traceparent` that is
//! invalid, or present more than once, yields no parent (the receiver starts a
//! new trace) and its `tracestate` is dropped with it.

use crate::context::{SpanContext, TraceFlags};
use crate::ids::{SpanId, TraceId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";

/// At most this many `tracestate` list members (W3C).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Propagated `tracestate` is kept to this many characters.
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Members longer than this are the first to go when over [`MAX_TRACESTATE_LEN`].
const LARGE_MEMBER: usize = 128;

/// Why a `traceparent` was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceparentError {
    /// The value does not have the `version-traceid-parentid-flags` shape or lengths.
    Format(&'static str),
    /// The version is `ff` or not two lowercase hex digits.
    Version,
    /// The trace id is not 32 lowercase hex digits or is all zero.
    TraceId,
    /// The parent id is not 16 lowercase hex digits or is all zero.
    ParentId,
    /// The flags are not two lowercase hex digits.
    Flags,
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceparentError::Format(why) => write!(f, "traceparent: {why}"),
            TraceparentError::Version => {
                f.write_str("traceparent: version must be 2 lowercase hex digits, not ff")
            }
            TraceparentError::TraceId => {
                f.write_str("traceparent: trace-id must be 32 lowercase hex digits, not all zero")
            }
            TraceparentError::ParentId => {
                f.write_str("traceparent: parent-id must be 16 lowercase hex digits, not all zero")
            }
            TraceparentError::Flags => {
                f.write_str("traceparent: trace-flags must be 2 lowercase hex digits")
            }
        }
    }
}

impl std::error::Error for TraceparentError {}

fn lower_hex(b: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &c in b {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        v = (v << 4) | u128::from(d);
    }
    Some(v)
}

/// A parsed `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traceparent {
    /// The version byte.
    pub version: u8,
    /// The trace id.
    pub trace_id: TraceId,
    /// The caller's span id.
    pub parent_id: SpanId,
    /// The flags, as sent.
    pub flags: TraceFlags,
}

impl Traceparent {
    /// Parses a header value by the version-00 rules, accepting higher
    /// versions with extra `-`-separated fields as the spec requires.
    pub fn parse(value: &str) -> Result<Traceparent, TraceparentError> {
        let v = value.trim_matches(|c| c == ' ' || c == '\t').as_bytes();
        if v.len() < 55 {
            return Err(TraceparentError::Format(
                "expected 55 characters: version-traceid-parentid-flags",
            ));
        }
        let version = lower_hex(&v[0..2]).ok_or(TraceparentError::Version)? as u8;
        if version == 0xff {
            return Err(TraceparentError::Version);
        }
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return Err(TraceparentError::Format(
                "fields must be separated by '-' at offsets 2, 35 and 52",
            ));
        }
        if version == 0 && v.len() != 55 {
            return Err(TraceparentError::Format(
                "version 00 must be exactly 55 characters",
            ));
        }
        if version > 0 && v.len() > 55 && v[55] != b'-' {
            return Err(TraceparentError::Format(
                "fields after trace-flags must start with '-'",
            ));
        }
        let trace_id = lower_hex(&v[3..35]).ok_or(TraceparentError::TraceId)?;
        if trace_id == 0 {
            return Err(TraceparentError::TraceId);
        }
        let parent_id = lower_hex(&v[36..52]).ok_or(TraceparentError::ParentId)? as u64;
        if parent_id == 0 {
            return Err(TraceparentError::ParentId);
        }
        let flags = lower_hex(&v[53..55]).ok_or(TraceparentError::Flags)? as u8;
        Ok(Traceparent {
            version,
            trace_id: TraceId::from_u128(trace_id),
            parent_id: SpanId::from_u64(parent_id),
            flags: TraceFlags::new(flags),
        })
    }

    /// The version-00 header for a span context.
    pub fn format(ctx: &SpanContext) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            ctx.trace_id().to_u128(),
            ctx.span_id().to_u64(),
            // Level 1 defines only `sampled`; unknown bits are not forwarded.
            ctx.flags().bits() & TraceFlags::SAMPLED.bits()
        )
    }
}

/// Why a `tracestate` was rejected as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// More than [`MAX_TRACESTATE_MEMBERS`] members.
    TooManyMembers(usize),
    /// A member's key breaks the key grammar.
    Key(String),
    /// A member's value breaks the value grammar.
    Value(String),
    /// A member without `=`.
    Member(String),
    /// The same key twice.
    Duplicate(String),
}

impl fmt::Display for TraceStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraceStateError::TooManyMembers(n) => write!(
                f,
                "tracestate: {n} members, at most {MAX_TRACESTATE_MEMBERS} allowed"
            ),
            TraceStateError::Key(k) => write!(f, "tracestate: invalid key {k:?}"),
            TraceStateError::Value(v) => write!(f, "tracestate: invalid value {v:?}"),
            TraceStateError::Member(m) => write!(f, "tracestate: member {m:?} has no '='"),
            TraceStateError::Duplicate(k) => write!(f, "tracestate: duplicate key {k:?}"),
        }
    }
}

impl std::error::Error for TraceStateError {}

/// Vendor-specific trace state: an ordered list of `key=value` members,
/// newest first. Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState(Option<Arc<[(String, String)]>>);

fn key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            !b.is_empty()
                && b.len() <= 256
                && b[0].is_ascii_lowercase()
                && b.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && t.iter().all(|&c| key_char(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s.iter().all(|&c| key_char(c))
        }
    }
}

fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !b.is_empty()
        && b.len() <= 256
        && nblk(b[b.len() - 1])
        && b.iter().all(|&c| c == b' ' || nblk(c))
}

impl TraceState {
    /// The empty state.
    pub const EMPTY: TraceState = TraceState(None);

    /// Parses one or more header values (several `tracestate` headers are one
    /// list joined by commas). Empty members and optional white space are
    /// allowed; any invalid member, a duplicate key or more than 32 members
    /// rejects the whole header, as W3C requires. Over 512 characters, the
    /// largest members (over 128 characters) go first, then the oldest.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        for value in values {
            for raw in value.split(',') {
                let m = raw.trim_matches(|c| c == ' ' || c == '\t');
                if m.is_empty() {
                    continue;
                }
                let (k, v) = m
                    .split_once('=')
                    .ok_or_else(|| TraceStateError::Member(m.to_owned()))?;
                if !valid_key(k) {
                    return Err(TraceStateError::Key(k.to_owned()));
                }
                if !valid_value(v) {
                    return Err(TraceStateError::Value(v.to_owned()));
                }
                if members.iter().any(|(key, _)| key == k) {
                    return Err(TraceStateError::Duplicate(k.to_owned()));
                }
                members.push((k.to_owned(), v.to_owned()));
                if members.len() > MAX_TRACESTATE_MEMBERS {
                    return Err(TraceStateError::TooManyMembers(members.len()));
                }
            }
        }
        Ok(Self::from_members(truncate(members)))
    }

    fn from_members(members: Vec<(String, String)>) -> TraceState {
        if members.is_empty() {
            TraceState(None)
        } else {
            TraceState(Some(members.into()))
        }
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The members, newest first.
    pub fn members(&self) -> &[(String, String)] {
        self.0.as_deref().unwrap_or(&[])
    }

    /// The value for a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A new state with `key=value` moved to the front (a vendor updating its
    /// own entry), keeping the member and size limits.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, TraceStateError> {
        if !valid_key(key) {
            return Err(TraceStateError::Key(key.to_owned()));
        }
        if !valid_value(value) {
            return Err(TraceStateError::Value(value.to_owned()));
        }
        let mut members = vec![(key.to_owned(), value.to_owned())];
        members.extend(self.members().iter().filter(|(k, _)| k != key).cloned());
        members.truncate(MAX_TRACESTATE_MEMBERS);
        Ok(Self::from_members(truncate(members)))
    }

    /// The header value: `k1=v1,k2=v2`.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.members().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

fn header_len(members: &[(String, String)]) -> usize {
    members
        .iter()
        .map(|(k, v)| k.len() + v.len() + 1)
        .sum::<usize>()
        + members.len().saturating_sub(1)
}

fn truncate(mut members: Vec<(String, String)>) -> Vec<(String, String)> {
    if header_len(&members) <= MAX_TRACESTATE_LEN {
        return members;
    }
    while let Some(pos) = members
        .iter()
        .position(|(k, v)| k.len() + v.len() + 1 > LARGE_MEMBER)
    {
        members.remove(pos);
        if header_len(&members) <= MAX_TRACESTATE_LEN {
            return members;
        }
    }
    while header_len(&members) > MAX_TRACESTATE_LEN {
        members.pop();
    }
    members
}

/// Something headers can be read from. Names are matched case-insensitively;
/// a name may occur more than once, as on the wire.
pub trait Extractor {
    /// Every value of the header `name`, in order.
    fn get_all(&self, name: &str) -> Vec<&str>;
}

/// Something headers can be written to.
pub trait Injector {
    /// Sets the header `name` to `value`, replacing an earlier value.
    fn set(&mut self, name: &str, value: String);
}

impl Extractor for HashMap<String, String> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.insert(name.to_owned(), value);
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.as_slice().get_all(name)
    }
}

impl Extractor for [(String, String)] {
    fn get_all(&self, name: &str) -> Vec<&str> {
        self.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Injector for Vec<(String, String)> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        self.push((name.to_owned(), value));
    }
}

/// Why no parent came out of [`extract`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtractError {
    /// No `traceparent` header.
    Missing,
    /// More than one `traceparent` header.
    Duplicated,
    /// The header did not parse.
    Invalid(TraceparentError),
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Missing => f.write_str("traceparent: missing"),
            ExtractError::Duplicated => f.write_str("traceparent: present more than once"),
            ExtractError::Invalid(e) => e.fmt(f),
        }
    }
}

/// The remote parent carried by a carrier's headers, by the W3C processing
/// model: exactly one valid `traceparent`, plus its `tracestate` when that
/// parses (an invalid `tracestate` is dropped; the parent is kept).
///
/// ```
/// use std::collections::HashMap;
/// use tracer_core::{propagation, InMemoryExporter, Sampler, Tracer};
///
/// let incoming: Vec<(String, String)> = vec![
///     ("TraceParent".into(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
///     ("tracestate".into(), "congo=t61rcWkgMzE".into()),
/// ];
/// let parent = propagation::extract(&incoming).unwrap();
/// assert!(parent.is_remote() && parent.is_sampled());
///
/// let tracer = Tracer::new(Sampler::default(), InMemoryExporter::new());
/// let span = tracer.span_builder("handle").parent(parent).start();
/// let mut outgoing: HashMap<String, String> = HashMap::new();
/// propagation::inject(span.context(), &mut outgoing);
/// assert!(outgoing["traceparent"].starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
/// assert_eq!(outgoing["tracestate"], "congo=t61rcWkgMzE");
///
/// // A duplicated traceparent restarts the trace.
/// let twice = vec![incoming[0].clone(), incoming[0].clone()];
/// assert!(propagation::extract(&twice).is_err());
/// ```
pub fn extract(carrier: &(impl Extractor + ?Sized)) -> Result<SpanContext, ExtractError> {
    let parents = carrier.get_all(TRACEPARENT);
    let tp = match parents.as_slice() {
        [] => return Err(ExtractError::Missing),
        [one] => Traceparent::parse(one).map_err(ExtractError::Invalid)?,
        _ => return Err(ExtractError::Duplicated),
    };
    let state = TraceState::parse(carrier.get_all(TRACESTATE)).unwrap_or_default();
    Ok(SpanContext::new(
        tp.trace_id,
        tp.parent_id,
        tp.flags,
        true,
        state,
    ))
}

/// Writes `traceparent` (and `tracestate` when not empty) for a context.
pub fn inject(ctx: &SpanContext, carrier: &mut (impl Injector + ?Sized)) {
    if !ctx.is_valid() {
        return;
    }
    carrier.set(TRACEPARENT, Traceparent::format(ctx));
    if !ctx.trace_state().is_empty() {
        carrier.set(TRACESTATE, ctx.trace_state().header());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_spec_example() {
        let tp = Traceparent::parse(TP).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_hex(), "00f067aa0ba902b7");
        assert!(tp.flags.is_sampled());
    }

    #[test]
    fn rejects_what_version_00_forbids() {
        let bad = [
            ("", "short"),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "ff",
            ),
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                "upper trace",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
                "upper parent",
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                "zero trace",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                "zero parent",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
                "flags",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
                "v00 extra",
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "separator",
            ),
            (
                "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01a",
                "short version",
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01xx",
                "short trace",
            ),
            (
                "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
                "future no dash",
            ),
        ];
        for (v, why) in bad {
            assert!(Traceparent::parse(v).is_err(), "{why}: {v:?} accepted");
        }
    }

    #[test]
    fn accepts_future_versions_with_extra_fields() {
        let tp = Traceparent::parse(
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future",
        )
        .unwrap();
        assert_eq!(tp.version, 0xcc);
        assert!(
            Traceparent::parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_ok()
        );
    }

    #[test]
    fn formats_round_trip() {
        let ctx = extract(&vec![("TraceParent".to_owned(), TP.to_owned())]).unwrap();
        assert!(ctx.is_remote());
        assert_eq!(Traceparent::format(&ctx), TP);
    }

    #[test]
    fn duplicated_traceparent_restarts_the_trace() {
        let headers = vec![
            ("traceparent".to_owned(), TP.to_owned()),
            ("traceparent".to_owned(), TP.to_owned()),
        ];
        assert_eq!(extract(&headers), Err(ExtractError::Duplicated));
    }

    #[test]
    fn tracestate_grammar() {
        let ok = TraceState::parse([" rojo=00f067aa0ba902b7 ,, congo=t61rcWkgMzE,tenant@sys=x y"])
            .unwrap();
        assert_eq!(ok.members().len(), 3);
        assert_eq!(ok.get("congo"), Some("t61rcWkgMzE"));
        assert_eq!(
            ok.header(),
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,tenant@sys=x y"
        );
        for bad in [
            "Rojo=1",
            "rojo",
            "rojo=a,rojo=b",
            "a@=1",
            "@b=1",
            "a@toolongsystemid1=1",
            "k=",
            "k=a=b",
            "k=v\u{7f}",
            "k=a,b",
        ] {
            assert!(TraceState::parse([bad]).is_err(), "{bad:?} accepted");
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(matches!(
            TraceState::parse([many.join(",").as_str()]),
            Err(TraceStateError::TooManyMembers(33))
        ));
        let thirty_two: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        assert_eq!(
            TraceState::parse([thirty_two.join(",").as_str()])
                .unwrap()
                .members()
                .len(),
            32
        );
    }

    #[test]
    fn multiple_tracestate_headers_are_one_list() {
        let s = TraceState::parse(["a=1", "b=2"]).unwrap();
        assert_eq!(s.header(), "a=1,b=2");
        assert!(TraceState::parse(["a=1", "a=2"]).is_err());
    }

    #[test]
    fn oversized_tracestate_drops_large_members_first() {
        let big = format!("big={}", "x".repeat(200));
        let small: Vec<String> = (0..20)
            .map(|i| format!("k{i}={}", "y".repeat(20)))
            .collect();
        let header = format!("{big},{}", small.join(","));
        let s = TraceState::parse([header.as_str()]).unwrap();
        assert!(s.get("big").is_none());
        assert!(s.header().len() <= MAX_TRACESTATE_LEN);
        assert_eq!(s.get("k0"), Some("y".repeat(20).as_str()));
    }

    #[test]
    fn invalid_tracestate_is_dropped_but_parent_kept() {
        let headers = vec![
            ("traceparent".to_owned(), TP.to_owned()),
            ("tracestate".to_owned(), "BAD=1".to_owned()),
        ];
        let ctx = extract(&headers).unwrap();
        assert!(ctx.trace_state().is_empty());
    }

    #[test]
    fn insert_moves_key_to_front() {
        let s = TraceState::parse(["a=1,b=2"])
            .unwrap()
            .insert("b", "3")
            .unwrap();
        assert_eq!(s.header(), "b=3,a=1");
    }

    #[test]
    fn inject_writes_both_headers() {
        let headers = vec![
            ("traceparent".to_owned(), TP.to_owned()),
            ("tracestate".to_owned(), "a=1".to_owned()),
        ];
        let ctx = extract(&headers).unwrap();
        let mut out: HashMap<String, String> = HashMap::new();
        inject(&ctx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "a=1");
    }
}
