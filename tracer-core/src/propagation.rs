//! W3C Trace Context, Level 1 and Level 2: `traceparent` and `tracestate`,
//! extracted from and injected into any header carrier.
//!
//! The reference is the current text of the specification
//! (github.com/w3c/trace-context: branch `level-1` for Level 1, `level-2`
//! for Level 2, whose request-header chapter `main` repeats) and its test
//! suite at head (`test/test.py`). Section numbers in comments are those of
//! the published documents.
//!
//! Parsing follows the spec's processing model: a `traceparent` that is
//! invalid, or present more than once, yields no parent (the receiver starts a
//! new trace) and its `tracestate` is dropped with it. The trace flags are
//! kept as received: the sampled bit may change with the sampling decision,
//! the random trace id bit (Level 2) is propagated unchanged, and the
//! reserved bits are written as zero.

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
/// The longest `tracestate` this library propagates, in characters, commas
/// included: the 512 the spec asks every vendor to propagate at least
/// (Trace Context Level 2, 3.3.3.1 "tracestate Limits"). A longer one loses
/// whole members: those over 128 characters first, then from the end.
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Members longer than this are the first to go when over [`MAX_TRACESTATE_LEN`].
const LARGE_MEMBER: usize = 128;
/// The longest `tracestate` key (Level 2, 3.3.2.2.1 "Key").
const MAX_KEY_LEN: usize = 256;
/// The longest `tracestate` value (Level 2, 3.3.2.2.2 "Value").
const MAX_VALUE_LEN: usize = 256;
/// The trace-flags bits a version-00 `traceparent` defines: sampled
/// (Level 1, 3.2.2.5.1) and random trace id (Level 2, 3.2.2.5.2). The others
/// are reserved and written as zero (Level 2, 3.2.2.5.3 "Other Flags").
const DEFINED_FLAGS: u8 = TraceFlags::SAMPLED.bits() | TraceFlags::RANDOM.bits();

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
    /// The flags, as sent: all 8 bits, the reserved ones included
    /// ([`format`](Self::format) writes those as zero).
    pub flags: TraceFlags,
}

impl Traceparent {
    /// Parses a header value by the version-00 rules, accepting higher
    /// versions with extra `-`-separated fields as the spec requires
    /// (Trace Context Level 1, 3.2.2 and 3.2.4).
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

    /// The version-00 header for a span context. Of the flags, the sampled
    /// and random trace id bits are written; the reserved bits are zero
    /// (Trace Context Level 2, 3.2.2.5.3, and for a parent of a higher
    /// version, 4.1.2: "Vendors will set all unparsed / unknown
    /// `trace-flags` to 0 on outgoing requests").
    pub fn format(ctx: &SpanContext) -> String {
        String::from_utf8(Self::encode(ctx).to_vec()).expect("hex digits and dashes")
    }

    /// The bytes of [`format`](Self::format), without allocating: 55 of
    /// lowercase hex digits and dashes, ready for a header value.
    pub fn encode(ctx: &SpanContext) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        fn hex(out: &mut [u8], v: u128) {
            let n = out.len();
            for (i, b) in out.iter_mut().enumerate() {
                *b = HEX[((v >> (4 * (n - 1 - i))) & 0xf) as usize];
            }
        }
        let mut buf = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex(&mut buf[3..35], ctx.trace_id().to_u128());
        hex(&mut buf[36..52], u128::from(ctx.span_id().to_u64()));
        hex(
            &mut buf[53..55],
            u128::from(ctx.flags().bits() & DEFINED_FLAGS),
        );
        buf
    }
}

/// Why a `tracestate` was rejected as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceStateError {
    /// More than [`MAX_TRACESTATE_MEMBERS`] members (the count when the
    /// limit was passed).
    TooManyMembers(usize),
    /// A member's key breaks the key grammar.
    Key(String),
    /// A member's value breaks the value grammar.
    Value(String),
    /// A member without `=`.
    Member(String),
    /// The same key twice. [`TraceState::parse`] no longer returns it: a
    /// header with a duplicated key is inherited, its first member kept
    /// (see there).
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
/// newest first, each key once. Cheap to clone.
///
/// One word: a thin pointer (an `Arc` of a `Vec`, not of a slice, which
/// would be two words that every span context copies, and a new span's
/// reads back through a stalled store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState(Option<Arc<Vec<(String, String)>>>);

/// Optional white space around list members: spaces and horizontal tabs
/// (RFC 9110, 5.6.3 `OWS`).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Trace Context Level 2, 3.3.2.2.1 (Key):
///
/// ```text
/// key     = ( lcalpha / DIGIT ) 0*255 ( keychar )
/// keychar = lcalpha / DIGIT / "_" / "-"/ "*" / "/" / "@"
/// lcalpha = %x61-7A ; a-z
/// ```
///
/// A multi-tenant key (`tenant@system`, such as `fw529a3039@dt`) is a key
/// like any other under this grammar: `@` may appear anywhere but first,
/// any number of times, and the 256-character limit is on the whole key.
/// Level 1 had a stricter two-form grammar (a simple key starting with a
/// letter; `tenant@system` with a tenant of at most 241 and a system of at
/// most 14 characters, the system starting with a letter). The current text
/// (since w3c/trace-context#386) and the test suite at head (commit acab820,
/// "Fix tracestate key grammar tests") both use the grammar above, so this
/// is what is checked.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && b.len() <= MAX_KEY_LEN
        && b.iter()
            .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@'))
}

/// Trace Context Level 2, 3.3.2.2.2 (Value):
///
/// ```text
/// value    = 0*255(chr) nblk-chr
/// nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
/// chr      = %x20 / nblk-chr
/// ```
///
/// 1 to 256 printable ASCII characters but `,` and `=`, not ending in a
/// space; leading spaces are part of the value.
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    !b.is_empty()
        && b.len() <= MAX_VALUE_LEN
        && nblk(b[b.len() - 1])
        && b.iter().all(|&c| c == b' ' || nblk(c))
}

impl TraceState {
    /// The empty state.
    pub const EMPTY: TraceState = TraceState(None);

    /// Parses one or more header values, by the current spec (Trace Context
    /// Level 2, 3.3.2 to 3.3.3.1) and its test suite at head:
    ///
    /// - Several `tracestate` headers are one list, joined by commas in
    ///   order (RFC 9110, 5.3).
    /// - Optional white space (spaces, tabs) around members is ignored;
    ///   empty and white-space-only members are allowed and skipped.
    /// - Each member is `key=value` by the key and value grammars; one
    ///   invalid member rejects the whole header.
    /// - More than 32 members rejects the whole header.
    /// - A duplicated key is kept once, its first (left-most, most recent)
    ///   member; the header is inherited.
    /// - Over 512 characters, whole members are dropped: those over 128
    ///   characters first, then from the end.
    pub fn parse<'a>(
        values: impl IntoIterator<Item = &'a str>,
    ) -> Result<TraceState, TraceStateError> {
        let mut members: Vec<(String, String)> = Vec::new();
        // The 32-member limit counts key/value members. The ABNF of Level 2,
        // 3.3.2.1 (`list = list-member 0*31( OWS "," OWS list-member )`,
        // where an empty member is a `list-member` too) would count empty
        // ones as well; the suite at head counts key/value pairs
        // (`len(Tracestate)` in test/test.py, `test_tracestate_member_count_limit`),
        // and empty members exist to make joining headers harmless, so
        // those are not counted. Duplicates are counted: the limit is on
        // the list as received.
        let mut count = 0;
        for value in values {
            for raw in value.split(',') {
                let m = raw.trim_matches(is_ows);
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
                count += 1;
                if count > MAX_TRACESTATE_MEMBERS {
                    return Err(TraceStateError::TooManyMembers(count));
                }
                // Level 2, 3.3.3 (Combined Header Value): "Tracing tools are
                // not supposed to add the same header multiple times", and
                // 3.5 (Mutating the tracestate Field): "vendors MAY also
                // discard duplicate keys that were not generated by them".
                // Level 1 said "Only one entry per key is allowed", which
                // this library read as grounds to drop the whole header;
                // the suite at head (`test_tracestate_duplicated_keys`)
                // expects such a header to be inherited, with the
                // duplicates kept or one of them dropped. The first is kept:
                // modified keys move to the left, so it is the most recent.
                if members.iter().any(|(key, _)| key == k) {
                    continue;
                }
                members.push((k.to_owned(), v.to_owned()));
            }
        }
        Ok(Self::from_members(truncate(members)))
    }

    fn from_members(members: Vec<(String, String)>) -> TraceState {
        if members.is_empty() {
            TraceState(None)
        } else {
            TraceState(Some(Arc::new(members)))
        }
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The members, newest first.
    pub fn members(&self) -> &[(String, String)] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// The value for a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A new state with `key=value` at the front (a vendor adding or
    /// updating its own entry; Trace Context Level 2, 3.5), the key's
    /// earlier member removed. Over 32 members, the right-most goes
    /// (3.3.2). Over 512 characters, whole members go by the rule of
    /// 3.3.3.1: members over 128 characters first (from the end), then from
    /// the end; the new member itself goes only if it is over 128
    /// characters and dropping every other such member was not enough.
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

    /// The header value: `k1=v1,k2=v2`, without optional white space.
    pub fn header(&self) -> String {
        let mut out = String::with_capacity(header_len(self.members()));
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

/// The length of one member, `key=value`.
fn member_len((k, v): &(String, String)) -> usize {
    k.len() + 1 + v.len()
}

/// The length of the header [`TraceState::header`] writes.
fn header_len(members: &[(String, String)]) -> usize {
    members.iter().map(member_len).sum::<usize>() + members.len().saturating_sub(1)
}

/// Trace Context Level 2, 3.3.3.1 (tracestate Limits): "the vendor MUST
/// truncate whole entries. Entries larger than `128` characters long SHOULD
/// be removed first. Then entries SHOULD be removed starting from the end of
/// `tracestate`." Only as many members go as it takes to fit in
/// [`MAX_TRACESTATE_LEN`]. The spec does not order the large entries among
/// themselves; they go from the end too, so the newest (left-most) member,
/// the one of the vendor that wrote the `traceparent`, is the last to go.
fn truncate(mut members: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut len = header_len(&members);
    let mut i = members.len();
    while len > MAX_TRACESTATE_LEN && i > 0 {
        i -= 1;
        if member_len(&members[i]) > LARGE_MEMBER {
            members.remove(i);
            len = header_len(&members);
        }
    }
    while len > MAX_TRACESTATE_LEN {
        members.pop();
        len = header_len(&members);
    }
    members
}

/// Something headers can be read from. Names are matched case-insensitively;
/// a name may occur more than once, as on the wire.
pub trait Extractor {
    /// Every value of the header `name`, in order, as the carrier holds
    /// them (no list is built).
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str>;
}

/// Something headers can be written to.
pub trait Injector {
    /// Sets the header `name` to `value`, replacing an earlier value.
    fn set(&mut self, name: &str, value: String);
}

impl Extractor for HashMap<String, String> {
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Injector for HashMap<String, String> {
    fn set(&mut self, name: &str, value: String) {
        self.retain(|k, _| !k.eq_ignore_ascii_case(name));
        self.insert(name.to_owned(), value);
    }
}

impl Extractor for Vec<(String, String)> {
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.as_slice().get_all(name)
    }
}

impl Extractor for [(String, String)] {
    fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
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
    let mut parents = carrier.get_all(TRACEPARENT);
    let tp = match (parents.next(), parents.next()) {
        (None, _) => return Err(ExtractError::Missing),
        (Some(one), None) => Traceparent::parse(one).map_err(ExtractError::Invalid)?,
        _ => return Err(ExtractError::Duplicated),
    };
    // Read only once the parent is known good.
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
    //! One test (or more) per rule, each citing its section. Level 1 numbers
    //! are those of the Level 1 document (w3c/trace-context branch
    //! `level-1`), Level 2 numbers those of Level 2 (branch `level-2`; the
    //! request-header chapter of `main` has the same sections). The
    //! `suite_*` tests send exactly what the named test of the suite at head
    //! (`test/test.py`) sends, through [`service`], and check what it checks.

    use super::*;
    use crate::{NoopProcessor, Sampler, Tracer};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// The `traceparent` most suite tests send.
    const SUITE_TP: &str = "00-12345678901234567890123456789012-1234567890123456-00";
    const SUITE_TRACE: &str = "12345678901234567890123456789012";

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// What a traced service does with a request, as the suite sees it:
    /// extracts the incoming headers, starts a span (a child of the remote
    /// parent, else a new root) and injects its context into the outgoing
    /// request.
    fn service(sampler: Sampler, incoming: &[(&str, &str)]) -> Vec<(String, String)> {
        let tracer = Tracer::new(sampler, NoopProcessor);
        let span = tracer
            .span_builder("serve")
            .parent_or_root(extract(&headers(incoming)).ok())
            .start();
        let mut out = Vec::new();
        inject(span.context(), &mut out);
        out
    }

    /// The outgoing `traceparent` and `tracestate` of [`service`], read back
    /// as the suite does (`make_single_request_and_get_tracecontext`).
    fn outgoing(incoming: &[(&str, &str)]) -> (Traceparent, TraceState) {
        outgoing_with(Sampler::default(), incoming)
    }

    fn outgoing_with(sampler: Sampler, incoming: &[(&str, &str)]) -> (Traceparent, TraceState) {
        let out = service(sampler, incoming);
        let tp: Vec<&str> = out.get_all(TRACEPARENT).collect();
        assert_eq!(tp.len(), 1, "one traceparent: {out:?}");
        let tp = Traceparent::parse(tp[0]).unwrap();
        (tp, TraceState::parse(out.get_all(TRACESTATE)).unwrap())
    }

    fn rejected(value: &str) -> bool {
        Traceparent::parse(value).is_err()
    }

    // ---- traceparent: Level 1 ----------------------------------------

    // Trace Context Level 1, 3.2.3 (Examples of HTTP traceparent Headers).
    #[test]
    fn traceparent_spec_examples() {
        let tp = Traceparent::parse(TP).unwrap();
        assert_eq!(tp.version, 0);
        assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.parent_id.to_hex(), "00f067aa0ba902b7");
        assert!(tp.flags.is_sampled());
        let unsampled = Traceparent::parse(&TP.replace("-01", "-00")).unwrap();
        assert!(!unsampled.flags.is_sampled());
    }

    // Trace Context Level 1, 3.2.2.1 (version): 2 lowercase hex digits, ff
    // forbidden. Suite: test_traceparent_version_0xff,
    // test_traceparent_version_illegal_characters, _too_long, _too_short.
    #[test]
    fn traceparent_version() {
        let rest = "-12345678901234567890123456789012-1234567890123456-01";
        for v in ["ff", ".0", "0.", "000", "0000", "0", "0A", "Cc"] {
            assert!(rejected(&format!("{v}{rest}")), "version {v:?} accepted");
        }
        assert_eq!(Traceparent::parse(&format!("00{rest}")).unwrap().version, 0);
    }

    // Trace Context Level 1, 3.2.2.2 (version-format): version 00 is exactly
    // `version-traceid-parentid-flags`. Suite: test_traceparent_version_0x00.
    #[test]
    fn traceparent_version_00_format() {
        for v in [
            "00-12345678901234567890123456789012-1234567890123456-01.",
            "00-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
            "00_12345678901234567890123456789012-1234567890123456-01",
            "00-12345678901234567890123456789012_1234567890123456-01",
            "00-12345678901234567890123456789012-1234567890123456_01",
            "",
        ] {
            assert!(rejected(v), "{v:?} accepted");
        }
    }

    // Trace Context Level 1, 3.2.2.3 (trace-id): 32 lowercase hex digits,
    // not all zero. Suite: test_traceparent_trace_id_all_zero,
    // _illegal_characters, _too_long, _too_short.
    #[test]
    fn traceparent_trace_id() {
        for id in [
            "00000000000000000000000000000000",
            ".2345678901234567890123456789012",
            "1234567890123456789012345678901.",
            "123456789012345678901234567890123",
            "1234567890123456789012345678901",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
        ] {
            let v = format!("00-{id}-1234567890123456-01");
            assert!(rejected(&v), "{v:?} accepted");
        }
    }

    // Trace Context Level 1, 3.2.2.4 (parent-id): 16 lowercase hex digits,
    // not all zero. Suite: test_traceparent_parent_id_all_zero,
    // _illegal_characters, _too_long, _too_short.
    #[test]
    fn traceparent_parent_id() {
        for id in [
            "0000000000000000",
            ".234567890123456",
            "123456789012345.",
            "12345678901234567",
            "123456789012345",
            "00F067AA0BA902B7",
        ] {
            let v = format!("00-12345678901234567890123456789012-{id}-01");
            assert!(rejected(&v), "{v:?} accepted");
        }
    }

    // Trace Context Level 1, 3.2.2.5 (trace-flags): 2 lowercase hex digits.
    // Suite: test_traceparent_trace_flags_illegal_characters, _too_long,
    // _too_short.
    #[test]
    fn traceparent_trace_flags() {
        for f in [".0", "0.", "001", "1", "0A", "0g"] {
            let v = format!("00-12345678901234567890123456789012-1234567890123456-{f}");
            assert!(rejected(&v), "{v:?} accepted");
        }
        for (f, bits) in [("00", 0), ("01", 1), ("02", 2), ("03", 3), ("ff", 0xff)] {
            let v = format!("00-12345678901234567890123456789012-1234567890123456-{f}");
            assert_eq!(Traceparent::parse(&v).unwrap().flags.bits(), bits, "{v}");
        }
    }

    // Trace Context Level 1, 3.2.2 (traceparent Header Field Values): the
    // field value excludes leading and trailing optional white space
    // (RFC 9110, 5.5). Suite: test_traceparent_ows_handling.
    #[test]
    fn traceparent_ows() {
        let tp = "00-12345678901234567890123456789012-1234567890123456-01";
        for v in [
            format!(" {tp}"),
            format!("\t{tp}"),
            format!("{tp} "),
            format!("{tp}\t"),
            format!("\t {tp} \t"),
        ] {
            assert_eq!(
                Traceparent::parse(&v).unwrap().trace_id.to_hex(),
                SUITE_TRACE
            );
        }
    }

    // Trace Context Level 1, 3.2.4 (Versioning of traceparent): a higher
    // version is parsed by the version-00 layout when at least 55
    // characters, the flags followed by the end or a dash, and the header
    // written back as version 00. Suite: test_traceparent_version_0xcc.
    #[test]
    fn traceparent_higher_versions() {
        let tp = Traceparent::parse(
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )
        .unwrap();
        assert_eq!(
            (tp.version, tp.trace_id.to_hex()),
            (0xcc, SUITE_TRACE.into())
        );
        assert!(!rejected(
            "cc-12345678901234567890123456789012-1234567890123456-01"
        ));
        assert!(rejected(
            "cc-12345678901234567890123456789012-1234567890123456-01.what-the-future-will-be-like"
        ));
        assert!(rejected(
            "cc-12345678901234567890123456789012-1234567890123456-1"
        ));
        let (out, _) = outgoing(&[(
            "traceparent",
            "cc-12345678901234567890123456789012-1234567890123456-01-what-the-future-will-be-like",
        )]);
        assert_eq!(
            (out.version, out.trace_id.to_hex()),
            (0, SUITE_TRACE.into())
        );
    }

    // Trace Context Level 1, 3.2.1 (Header Name): ASCII case-insensitive, a
    // single word. Suite: test_traceparent_header_name,
    // test_traceparent_header_name_valid_casing.
    #[test]
    fn traceparent_header_name() {
        for name in ["TraceParent", "TrAcEpArEnT", "TRACEPARENT"] {
            let ctx = extract(&headers(&[(name, TP)])).unwrap();
            assert!(ctx.is_remote());
        }
        for name in ["trace-parent", "trace.parent"] {
            assert_eq!(extract(&headers(&[(name, TP)])), Err(ExtractError::Missing));
        }
    }

    // Two traceparent headers are one field value by RFC 9110, 5.3, which
    // is not a valid traceparent (Level 1, 3.2.2): a new trace. Suite:
    // test_traceparent_duplicated.
    #[test]
    fn duplicated_traceparent_restarts_the_trace() {
        let twice = headers(&[("traceparent", TP), ("traceparent", TP)]);
        assert_eq!(extract(&twice), Err(ExtractError::Duplicated));
        let (out, _) = outgoing(&[
            (
                "traceparent",
                "00-12345678901234567890123456789011-1234567890123456-01",
            ),
            (
                "traceparent",
                "00-12345678901234567890123456789012-1234567890123456-01",
            ),
        ]);
        assert_ne!(out.trace_id.to_hex(), "12345678901234567890123456789011");
        assert_ne!(out.trace_id.to_hex(), SUITE_TRACE);
    }

    // Trace Context Level 1, 3.4 (Mutating the traceparent Field): the same
    // trace id, a new parent id. Suite:
    // test_traceparent_included_tracestate_missing.
    #[test]
    fn traceparent_continues_the_trace_with_a_new_parent_id() {
        let ctx = extract(&headers(&[("TraceParent", TP)])).unwrap();
        assert_eq!(Traceparent::format(&ctx), TP, "formats round trip");
        let (out, _) = outgoing(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-01",
        )]);
        assert_eq!(out.trace_id.to_hex(), SUITE_TRACE);
        assert_ne!(out.parent_id.to_hex(), "1234567890123456");
    }

    // ---- trace-flags: Level 2 ----------------------------------------

    // Trace Context Level 2, 3.2.2.5.2 (Random Trace ID Flag): "If the flag
    // is set in the incoming traceparent header, it MUST also be set in all
    // outgoing traceparent headers which use the same trace-id", whatever
    // the sampling decision does to the sampled bit (3.4 "Update sampled").
    #[test]
    fn the_random_flag_is_kept_and_sampling_moves_only_the_sampled_bit() {
        let with = |flags: &str| format!("00-{SUITE_TRACE}-1234567890123456-{flags}");
        for (sampler, sent, expected) in [
            (Sampler::default(), "02", 0x02),
            (Sampler::default(), "03", 0x03),
            (Sampler::AlwaysOn, "02", 0x03),
            (Sampler::AlwaysOff, "03", 0x02),
            (Sampler::TraceIdRatio(0.0), "03", 0x02),
        ] {
            let (out, _) = outgoing_with(sampler.clone(), &[("traceparent", &with(sent))]);
            assert_eq!(out.flags.bits(), expected, "{sampler:?} on {sent}");
            assert_eq!(out.trace_id.to_hex(), SUITE_TRACE);
        }
        let parsed = Traceparent::parse(&with("02")).unwrap();
        assert!(parsed.flags.is_random() && !parsed.flags.is_sampled());
    }

    // Trace Context Level 2, 3.2.2.5.2: "If the flag is unset in the
    // incoming traceparent header, it MUST also be unset in any outgoing
    // traceparent headers which use the same trace-id."
    #[test]
    fn an_unset_random_flag_stays_unset() {
        let with = |flags: &str| format!("00-{SUITE_TRACE}-1234567890123456-{flags}");
        for (sampler, sent, expected) in [
            (Sampler::default(), "00", 0x00),
            (Sampler::default(), "01", 0x01),
            (Sampler::AlwaysOn, "00", 0x01),
            (Sampler::AlwaysOff, "01", 0x00),
        ] {
            let (out, _) = outgoing_with(sampler.clone(), &[("traceparent", &with(sent))]);
            assert_eq!(out.flags.bits(), expected, "{sampler:?} on {sent}");
        }
    }

    // Suite: TraceContext2Test.test_propagates_random_flag (Level 2,
    // 3.2.2.5.2).
    #[test]
    fn suite_test_propagates_random_flag() {
        let (tp, _) = outgoing(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-02",
        )]);
        assert_eq!(tp.trace_id.to_hex(), "12345678901234567890123456789012");
        assert_ne!(tp.parent_id.to_hex(), "1234567890123456");
        assert_eq!(tp.flags.bits() & 0x02, 0x02, "random flag not set");
    }

    // Trace Context Level 2, 3.2.2.3 (trace-id): "If the right-most 7 bytes
    // are randomly (or pseudo-randomly) generated, the corresponding random
    // trace id flag SHOULD be set", and 3.2.2.5.2 for a new trace. The
    // library's trace ids are UUID v4: all but the version and variant bits
    // random, the right-most 7 bytes among them.
    #[test]
    fn new_roots_with_a_generated_trace_id_set_the_random_flag() {
        for (sampler, expected) in [(Sampler::AlwaysOn, 0x03), (Sampler::AlwaysOff, 0x02)] {
            let tracer = Tracer::new(sampler, NoopProcessor);
            for span in [
                tracer.start("root"),
                tracer.span_builder("root").root().start(),
                tracer.span_builder("root").parent_or_root(None).start(),
                // An invalid id given: the library makes one.
                tracer
                    .span_builder("root")
                    .root_in(TraceId::INVALID)
                    .start(),
            ] {
                assert_eq!(span.context().flags().bits(), expected);
                let mut out: HashMap<String, String> = HashMap::new();
                inject(span.context(), &mut out);
                assert!(out["traceparent"].ends_with(&format!("-{expected:02x}")));
                // Its children keep the bit (3.2.2.5.2, continuing a trace).
                let child = tracer
                    .span_builder("child")
                    .parent(span.context().clone())
                    .start();
                assert!(child.context().flags().is_random());
            }
        }
        // No traceparent, or an invalid one: a new trace, random. Suite:
        // test_both_traceparent_and_tracestate_missing,
        // test_multiple_requests_with_illegal_traceparent.
        for incoming in [
            &[][..],
            &[(
                "traceparent",
                "00-00000000000000000000000000000000-1234567890123456-01",
            )][..],
        ] {
            let (tp, _) = outgoing(incoming);
            assert!(tp.flags.is_random() && tp.flags.is_sampled(), "{tp:?}");
        }
    }

    // Trace Context Level 2, 3.2.2.5.2: "If the flag is not set, the
    // trace-id MAY still be randomly generated"; a trace id a client names
    // (`root_in`, an opaque id hashed to 128 bits) is not known to be
    // random, so the bit stays unset.
    #[test]
    fn roots_in_a_named_trace_do_not_set_the_random_flag() {
        for sampler in [Sampler::AlwaysOn, Sampler::AlwaysOff] {
            let tracer = Tracer::new(sampler, NoopProcessor);
            let span = tracer
                .span_builder("root")
                .root_in(TraceId::from_u128(
                    0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
                ))
                .start();
            assert!(!span.context().flags().is_random());
            let mut out: HashMap<String, String> = HashMap::new();
            inject(span.context(), &mut out);
            assert!(out["traceparent"].ends_with("-00") || out["traceparent"].ends_with("-01"));
        }
    }

    // Trace Context Level 2, 3.2.2.5.3 (Other Flags): reserved, "Vendors
    // MUST set those to zero"; and 4.1.2 (A traceparent is Received), for a
    // higher version: only the flags this version defines are parsed,
    // "Vendors will set all unparsed / unknown trace-flags to 0 on outgoing
    // requests".
    #[test]
    fn reserved_flags_are_written_as_zero() {
        let ctx = extract(&headers(&[(
            "traceparent",
            "00-12345678901234567890123456789012-1234567890123456-ff",
        )]))
        .unwrap();
        assert_eq!(ctx.flags().bits(), 0xff, "kept as received");
        assert!(Traceparent::format(&ctx).ends_with("-03"));
        for (sent, expected) in [("fc", 0x00), ("fd", 0x01), ("fe", 0x02), ("ff", 0x03)] {
            for version in ["00", "cc"] {
                let (out, _) = outgoing(&[(
                    "traceparent",
                    &format!("{version}-{SUITE_TRACE}-1234567890123456-{sent}"),
                )]);
                assert_eq!(out.flags.bits(), expected, "{version} {sent}");
            }
        }
    }

    // ---- tracestate: header and processing ---------------------------

    // Trace Context Level 2, 3.3.1 (Header Name): ASCII case-insensitive.
    // Suite: test_tracestate_header_name, _valid_casing.
    #[test]
    fn tracestate_header_name() {
        for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
            let (_, ts) = outgoing(&[("traceparent", SUITE_TP), (name, "foo=1")]);
            assert_eq!(ts.get("foo"), Some("1"));
        }
        for name in ["trace-state", "trace.state"] {
            let (_, ts) = outgoing(&[("traceparent", SUITE_TP), (name, "foo=1")]);
            assert!(ts.get("foo").is_none());
        }
    }

    // Trace Context Level 2, 3.3 (Tracestate Header): "If the vendor failed
    // to parse traceparent, it MUST NOT attempt to parse tracestate", and
    // 4.1.1 (No traceparent Received): a tracestate without traceparent "is
    // invalid and MUST be discarded". Suite:
    // test_tracestate_included_traceparent_missing.
    #[test]
    fn tracestate_needs_a_valid_traceparent() {
        for incoming in [
            &[("tracestate", "foo=1")][..],
            &[("tracestate", "foo=1,bar=2")][..],
            &[
                (
                    "traceparent",
                    "00-00000000000000000000000000000000-1234567890123456-01",
                ),
                ("tracestate", "foo=1"),
            ][..],
        ] {
            let (_, ts) = outgoing(incoming);
            assert!(ts.is_empty(), "{incoming:?}");
        }
    }

    // Trace Context Level 2, 3.3: "failure to parse tracestate MUST NOT
    // affect the parsing of traceparent"; 4.1.2 step 3: a tracestate that
    // cannot be parsed MAY be discarded whole (the suite at head expects
    // that, see the `suite_*` tests below).
    #[test]
    fn an_invalid_tracestate_is_dropped_but_the_parent_kept() {
        let ctx = extract(&headers(&[
            ("traceparent", TP),
            ("tracestate", "BAD=1,a=1"),
        ]))
        .unwrap();
        assert!(ctx.trace_state().is_empty());
        assert_eq!(ctx.trace_id().to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    // Suite: test_tracestate_included_traceparent_included.
    #[test]
    fn suite_test_tracestate_included_traceparent_included() {
        let (tp, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", "foo=1,bar=2")]);
        assert_eq!(tp.trace_id.to_hex(), SUITE_TRACE);
        assert_eq!((ts.get("foo"), ts.get("bar")), (Some("1"), Some("2")));
    }

    // ---- tracestate: key ---------------------------------------------

    // Trace Context Level 2, 3.3.2.2.1 (Key): `( lcalpha / DIGIT ) 0*255
    // ( keychar )`, keychar being a-z, 0-9, `_`, `-`, `*`, `/` and `@`.
    #[test]
    fn tracestate_key_grammar() {
        for key in [
            "a",
            "0",
            "1special",
            "abcdefghijklmnopqrstuvwxyz0123456789_-*/@",
            "a_-*/@",
            &"z".repeat(256),
            &format!("9{}", "/".repeat(255)),
        ] {
            let ts = TraceState::parse([format!("{key}=1").as_str()]).unwrap();
            assert_eq!(ts.get(key), Some("1"), "{key:?}");
        }
        for key in [
            "",
            "Foo",
            "FOO",
            "foo ",
            " foo\tbar",
            "foo.bar",
            "_foo",
            "-foo",
            "*foo",
            "/foo",
            "@foo",
            "foo\u{e9}",
            "foo%",
            &"z".repeat(257),
        ] {
            let member = format!("{key}=1");
            assert!(
                matches!(
                    TraceState::parse([member.as_str()]),
                    Err(TraceStateError::Key(_))
                ),
                "{key:?} accepted"
            );
        }
    }

    // Trace Context Level 2, 3.3.2.2.1 (Key): multi-tenant keys,
    // `tenant@system` (`fw529a3039@dt`), are keys like any other: `@`
    // anywhere but first, any number of times, 256 characters in all.
    // Level 1's tenant (≤ 241) and system (≤ 14, starting with a letter)
    // limits are gone from the current text and the suite at head.
    #[test]
    fn tracestate_multi_tenant_keys() {
        for key in [
            "fw529a3039@dt",
            "special@vendor",
            "special@",
            "special@@vendor",
            "special@vendor@tenant",
            "1tenant@system",
            "tenant@1system",
            "tenant@_system",
            &format!("{}@{}", "t".repeat(241), "v".repeat(14)),
            &format!("{}@v", "t".repeat(242)),
            &format!("t@{}", "v".repeat(15)),
            &format!("{}@{}", "t".repeat(14), "v".repeat(241)),
        ] {
            let ts = TraceState::parse([format!("{key}=1").as_str()]).unwrap();
            assert_eq!(ts.get(key), Some("1"), "{key:?}");
            assert!(TraceState::EMPTY.insert(key, "1").is_ok(), "{key:?}");
        }
        for key in [
            "@vendor".to_owned(),
            "@".to_owned(),
            "special.vendor".to_owned(),
            "Tenant@system".to_owned(),
            "tenant@System".to_owned(),
            format!("{}@{}", "t".repeat(200), "v".repeat(56)),
        ] {
            let member = format!("{key}=1");
            assert!(
                TraceState::parse([member.as_str()]).is_err(),
                "{key:?} accepted"
            );
            assert!(
                TraceState::EMPTY.insert(&key, "1").is_err(),
                "{key:?} inserted"
            );
        }
        // 200 + 1 + 55: 256 in all.
        let key = format!("{}@{}", "t".repeat(200), "v".repeat(55));
        assert!(TraceState::parse([format!("{key}=1").as_str()]).is_ok());
    }

    // Suite: test_tracestate_key_illegal_characters (Level 2, 3.3.2.2.1).
    #[test]
    fn suite_test_tracestate_key_illegal_characters() {
        for (ts, key) in [
            ("foo =1", "foo "),
            ("FOO=1", "FOO"),
            ("foo.bar=1", "foo.bar"),
        ] {
            let (_, out) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", ts)]);
            assert!(out.get(key).is_none(), "{ts:?}");
        }
    }

    // Suite: test_tracestate_key_illegal_vendor_format (Level 2, 3.3.2.2.1).
    #[test]
    fn suite_test_tracestate_key_illegal_vendor_format() {
        let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", "foo@=1,bar=2")]);
        assert_eq!((ts.get("foo@"), ts.get("bar")), (Some("1"), Some("2")));

        let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", "@foo=1,bar=2")]);
        assert!(ts.get("bar").is_none());

        let (_, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", "foo@@bar=1,bar=2"),
        ]);
        assert_eq!((ts.get("foo@@bar"), ts.get("bar")), (Some("1"), Some("2")));

        let (_, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", "foo@bar@baz=1,bar=2"),
        ]);
        assert_eq!(
            (ts.get("foo@bar@baz"), ts.get("bar")),
            (Some("1"), Some("2"))
        );
    }

    // Suite: test_tracestate_key_length_limit (Level 2, 3.3.2.2.1: up to 256
    // characters).
    #[test]
    fn suite_test_tracestate_key_length_limit() {
        let kept = |key: &str| {
            let member = format!("{key}=1");
            let (_, ts) = outgoing(&[
                ("traceparent", SUITE_TP),
                ("tracestate", "foo=1"),
                ("tracestate", &member),
            ]);
            assert_eq!(ts.get("foo"), Some("1"), "{key}");
            assert_eq!(ts.get(key), Some("1"), "{key}");
        };
        kept(&"z".repeat(256));

        let member = format!("{}=1", "z".repeat(257));
        let (_, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", "foo=1"),
            ("tracestate", &member),
        ]);
        assert!(ts.get("foo").is_none());

        kept(&format!("{}@{}", "t".repeat(241), "v".repeat(14)));
        kept(&format!("{}@v", "t".repeat(242)));
        kept(&format!("t@{}", "v".repeat(15)));
    }

    // ---- tracestate: value -------------------------------------------

    // Trace Context Level 2, 3.3.2.2.2 (Value): 1 to 256 of 0x20-0x7E but
    // `,` and `=`, the last not a space; leading spaces are part of the
    // value, trailing ones are optional white space.
    #[test]
    fn tracestate_value_grammar() {
        let all: String = (0x20u8..=0x7e)
            .filter(|&c| c != b',' && c != b'=')
            .map(char::from)
            .collect();
        for value in [all.as_str(), "x", "a b", &"x".repeat(256), "  lead"] {
            let ts = TraceState::parse([format!("k={value}").as_str()]).unwrap();
            assert_eq!(ts.get("k"), Some(value), "{value:?}");
            assert_eq!(ts.header(), format!("k={value}"));
        }
        let ts = TraceState::parse(["k=v  \t"]).unwrap();
        assert_eq!(
            ts.get("k"),
            Some("v"),
            "trailing white space is not the value"
        );
        for value in [
            "",
            "   ",
            "a=b",
            "a\tb",
            "a\u{7f}",
            "caf\u{e9}",
            "a\nb",
            &"x".repeat(257),
        ] {
            let member = format!("k={value}");
            assert!(
                matches!(
                    TraceState::parse([member.as_str()]),
                    Err(TraceStateError::Value(_))
                ),
                "{value:?} accepted"
            );
            assert!(TraceState::EMPTY.insert("k", value).is_err(), "{value:?}");
        }
        assert!(
            TraceState::EMPTY.insert("k", "v ").is_err(),
            "ends with a space"
        );
        assert!(
            TraceState::EMPTY.insert("k", " v").is_ok(),
            "leading spaces"
        );
    }

    // Suite: test_tracestate_value_illegal_characters (Level 2, 3.3.2.2.2).
    #[test]
    fn suite_test_tracestate_value_illegal_characters() {
        let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", "foo=bar=baz")]);
        assert!(ts.get("foo").is_none());
        let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", "foo=,bar=3")]);
        assert!(ts.get("foo").is_none() && ts.get("bar").is_none());
    }

    // Suite: test_tracestate_all_allowed_characters (Level 2, 3.3.2.2.1 and
    // 3.3.2.2.2).
    #[test]
    fn suite_test_tracestate_all_allowed_characters() {
        let key_without_vendor = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
        let key_with_vendor = format!("{key_without_vendor}@a-z0-9_-*/");
        let value: String = (0x20u8..=0x2b)
            .chain(0x2d..=0x3c)
            .chain(0x3e..=0x7e)
            .map(char::from)
            .collect();
        for key in [key_without_vendor, key_with_vendor.as_str()] {
            let member = format!("{key}={value}");
            let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", &member)]);
            assert_eq!(ts.get(key), Some(value.as_str()), "{key}");
        }
    }

    // ---- tracestate: list --------------------------------------------

    // Trace Context Level 2, 3.3.2 (tracestate Header Field Values) and
    // 3.3.2.1 (list): spaces and tabs around members are ignored; empty and
    // white-space-only members are allowed; a member is `key=value`.
    // Suite: test_tracestate_ows_handling.
    #[test]
    fn tracestate_ows_and_empty_members() {
        for header in [
            "foo=1 \t , \t bar=2, \t baz=3",
            "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
            ",foo=1,,bar=2, ,\t,baz=3,",
        ] {
            let (_, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", header)]);
            assert_eq!(ts.header(), "foo=1,bar=2,baz=3", "{header:?}");
        }
        for header in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
            let (tp, ts) = outgoing(&[("traceparent", SUITE_TP), ("tracestate", header)]);
            assert_eq!(tp.trace_id.to_hex(), SUITE_TRACE);
            assert_eq!(ts.get("foo"), Some("1"), "{header:?}");
        }
        for header in ["", " ", ",", " , \t ,"] {
            assert!(
                TraceState::parse([header]).unwrap().is_empty(),
                "{header:?}"
            );
        }
        assert!(matches!(
            TraceState::parse(["foo=1,foobarbaz"]),
            Err(TraceStateError::Member(_))
        ));
    }

    // Suite: test_tracestate_empty_header (Level 2, 3.3.2: "Vendors MUST
    // accept empty tracestate headers but SHOULD avoid sending them").
    #[test]
    fn suite_test_tracestate_empty_header() {
        let out = service(
            Sampler::default(),
            &[("traceparent", SUITE_TP), ("tracestate", "")],
        );
        assert!(
            out.get_all(TRACESTATE).next().is_none(),
            "not sent: {out:?}"
        );
        for pair in [["foo=1", ""], ["", "foo=1"]] {
            let (tp, ts) = outgoing(&[
                ("traceparent", SUITE_TP),
                ("tracestate", pair[0]),
                ("tracestate", pair[1]),
            ]);
            assert_eq!(tp.trace_id.to_hex(), SUITE_TRACE);
            assert_eq!(ts.get("foo"), Some("1"));
        }
    }

    // Trace Context Level 2, 3.3.2: several tracestate headers are combined
    // into one by RFC 9110, 5.3 (in order, joined by commas). Suite:
    // test_tracestate_multiple_headers_different_keys.
    #[test]
    fn suite_test_tracestate_multiple_headers_different_keys() {
        let (tp, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", "foo=1,bar=2"),
            ("tracestate", "rojo=1,congo=2"),
            ("tracestate", "baz=3"),
        ]);
        assert_eq!(tp.trace_id.to_hex(), SUITE_TRACE);
        assert_eq!(ts.header(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
    }

    // Trace Context Level 2, 3.3.2: "There can be a maximum of 32
    // list-members in a list." A longer list is discarded whole (4.1.2
    // step 3; the suite expects that). Empty members do not count (see
    // `TraceState::parse`); duplicated ones do. Suite:
    // test_tracestate_member_count_limit.
    #[test]
    fn tracestate_member_count_limit() {
        let first = "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,bar09=09,bar10=10";
        let second = "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,bar19=19,bar20=20";
        let third = "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,bar29=29,bar30=30";
        let (_, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", first),
            ("tracestate", second),
            ("tracestate", third),
            ("tracestate", "bar31=31,bar32=32"),
        ]);
        assert_eq!(ts.get("bar01"), Some("01"));
        assert_eq!(ts.members().len(), 32);
        let (_, ts) = outgoing(&[
            ("traceparent", SUITE_TP),
            ("tracestate", first),
            ("tracestate", second),
            ("tracestate", third),
            ("tracestate", "bar31=31,bar32=32,bar33=33"),
        ]);
        assert!(ts.get("bar01").is_none());

        let many = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        assert!(matches!(
            TraceState::parse([many(33).join(",").as_str()]),
            Err(TraceStateError::TooManyMembers(33))
        ));
        let padded = format!(",{}, ,\t,", many(32).join(",,"));
        assert_eq!(
            TraceState::parse([padded.as_str()])
                .unwrap()
                .members()
                .len(),
            32
        );
        let with_a_duplicate = format!("{},k0=v", many(32).join(","));
        assert!(TraceState::parse([with_a_duplicate.as_str()]).is_err());
    }

    // Trace Context Level 2, 3.3.3 (Combined Header Value): tracing tools
    // "are not supposed to add the same header multiple times", and 3.5
    // (Mutating the tracestate Field): "vendors MAY also discard duplicate
    // keys that were not generated by them". The suite at head expects the
    // header inherited, duplicates kept or one dropped; the first is kept.
    // Suite: test_tracestate_duplicated_keys.
    #[test]
    fn suite_test_tracestate_duplicated_keys() {
        for (incoming, expected) in [
            (&[("tracestate", "foo=1,foo=1")][..], "foo=1"),
            (&[("tracestate", "foo=1,foo=2")][..], "foo=1"),
            (
                &[("tracestate", "foo=1"), ("tracestate", "foo=1")][..],
                "foo=1",
            ),
            (
                &[("tracestate", "foo=1"), ("tracestate", "foo=2")][..],
                "foo=1",
            ),
        ] {
            let mut all = vec![("traceparent", SUITE_TP)];
            all.extend_from_slice(incoming);
            let (tp, ts) = outgoing(&all);
            assert_eq!(tp.trace_id.to_hex(), SUITE_TRACE);
            assert_eq!(ts.header(), expected, "{incoming:?}");
        }
        let ts = TraceState::parse(["a=1,b=2,a=3,c=4,b=5"]).unwrap();
        assert_eq!(ts.header(), "a=1,b=2,c=4", "first kept, order kept");
        // 3.5: "Adding a key/value pair MUST NOT result in the same key
        // being present multiple times."
        assert_eq!(ts.insert("b", "6").unwrap().header(), "b=6,a=1,c=4");
        // A duplicate is still checked by the grammar.
        assert!(TraceState::parse(["a=1,a="]).is_err());
    }

    // ---- tracestate: limits ------------------------------------------

    // Trace Context Level 2, 3.3.3.1 (tracestate Limits): "Vendors SHOULD
    // propagate at least 512 characters of a combined header", commas
    // included.
    #[test]
    fn tracestate_of_512_characters_is_propagated_whole() {
        // 4 members of 127 characters and 3 commas: 511; then 512.
        let member = |k: char, n: usize| format!("{k}={}", "v".repeat(n - 2));
        let members: Vec<String> = ['a', 'b', 'c', 'd']
            .iter()
            .map(|&k| member(k, 127))
            .collect();
        let header = members.join(",");
        assert_eq!(header.len(), 511);
        assert_eq!(
            TraceState::parse([header.as_str()]).unwrap().header(),
            header
        );
        let header = format!("{header}x");
        assert_eq!(header.len(), 512);
        assert_eq!(
            TraceState::parse([header.as_str()]).unwrap().header(),
            header
        );
        // One character more: a member goes.
        let header = format!("{header}x");
        let ts = TraceState::parse([header.as_str()]).unwrap();
        assert_eq!(ts.members().len(), 3);
        assert!(ts.header().len() <= MAX_TRACESTATE_LEN);
    }

    // Trace Context Level 2, 3.3.3.1 (tracestate Limits): "the vendor MUST
    // truncate whole entries. Entries larger than 128 characters long SHOULD
    // be removed first. Then entries SHOULD be removed starting from the end
    // of tracestate."
    #[test]
    fn tracestate_truncation_drops_large_members_first_then_from_the_end() {
        let member = |k: &str, n: usize| format!("{k}={}", "v".repeat(n - k.len() - 1));
        // Large members (over 128) go first, from the end, only as many as
        // it takes; a member of exactly 128 is not large.
        let header = [
            member("big1", 200),
            member("k1", 60),
            member("exact", 128),
            member("big2", 129),
            member("k2", 60),
            member("big3", 150),
        ]
        .join(",");
        let ts = TraceState::parse([header.as_str()]).unwrap();
        let keys: Vec<&str> = ts.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["big1", "k1", "exact", "k2"]);
        assert_eq!(ts.header().len(), 200 + 60 + 128 + 60 + 3);

        // No large member left: from the end.
        let header = [
            member("big", 200),
            member("a", 120),
            member("b", 120),
            member("c", 120),
            member("d", 120),
            member("e", 120),
        ]
        .join(",");
        let ts = TraceState::parse([header.as_str()]).unwrap();
        let keys: Vec<&str> = ts.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "d"]);
        // Whole members only: every value is intact.
        assert!(ts.members().iter().all(|(_, v)| v.len() == 118));
    }

    // ---- tracestate: mutation ----------------------------------------

    // Trace Context Level 2, 3.5 (Mutating the tracestate Field): a new
    // key/value pair is added at the left; an updated one moves to the
    // left; the others keep their order. The 3.1 example (Relationship
    // Between the Headers).
    #[test]
    fn insert_adds_and_updates_at_the_left() {
        let ts = TraceState::parse(["congo=t61rcWkgMzE"])
            .unwrap()
            .insert("rojo", "00f067aa0ba902b7")
            .unwrap();
        assert_eq!(ts.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
        let ts = ts.insert("congo", "ucfJifl5GOE").unwrap();
        assert_eq!(ts.header(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
        let ts = TraceState::parse(["a=1,b=2,c=3"])
            .unwrap()
            .insert("b", "4")
            .unwrap();
        assert_eq!(ts.header(), "b=4,a=1,c=3");
        assert!(matches!(ts.insert("B", "1"), Err(TraceStateError::Key(_))));
        assert!(matches!(
            ts.insert("b", "x=y"),
            Err(TraceStateError::Value(_))
        ));
    }

    // Trace Context Level 2, 3.3.2: "If adding an entry would cause the
    // tracestate list to contain more than 32 list-members the right-most
    // list-member should be removed from the list."
    #[test]
    fn insert_into_32_members_drops_the_right_most() {
        let full: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let ts = TraceState::parse([full.join(",").as_str()]).unwrap();
        let ts = ts.insert("new", "v").unwrap();
        assert_eq!(ts.members().len(), 32);
        assert_eq!(ts.members()[0].0, "new");
        assert!(ts.get("k31").is_none() && ts.get("k30").is_some());
        // Updating a present key removes nothing else.
        let ts = ts.insert("k5", "w").unwrap();
        assert_eq!(ts.members().len(), 32);
        assert!(ts.get("k30").is_some());
    }

    // Trace Context Level 2, 3.3.3.1, applied to an insertion: the older
    // large members go first, from the end, then the oldest.
    #[test]
    fn insert_keeps_the_length_limit() {
        let member = |k: &str, n: usize| format!("{k}={}", "v".repeat(n - k.len() - 1));
        let header = [member("big", 200), member("a", 120), member("b", 120)].join(",");
        let ts = TraceState::parse([header.as_str()]).unwrap();
        assert_eq!(ts.members().len(), 3);
        let ts = ts.insert("mine", &"m".repeat(120)).unwrap();
        let keys: Vec<&str> = ts.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["mine", "a", "b"]);
        let ts = ts.insert("more", &"m".repeat(120)).unwrap();
        let keys: Vec<&str> = ts.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["more", "mine", "a", "b"], "{}", ts.header().len());
        let ts = ts.insert("last", &"m".repeat(120)).unwrap();
        let keys: Vec<&str> = ts.members().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["last", "more", "mine", "a"],
            "no large member: from the end"
        );
        assert!(ts.header().len() <= MAX_TRACESTATE_LEN);
    }

    // Trace Context Level 2, 3.5: "Vendors receiving a tracestate request
    // header MUST send it to outgoing requests"; 3.3.2: an empty one is not
    // sent.
    #[test]
    fn inject_writes_both_headers() {
        let ctx = extract(&headers(&[("traceparent", TP), ("tracestate", "a=1")])).unwrap();
        let mut out: HashMap<String, String> = HashMap::new();
        inject(&ctx, &mut out);
        assert_eq!(out["traceparent"], TP);
        assert_eq!(out["tracestate"], "a=1");
        let ctx = extract(&headers(&[("traceparent", TP), ("tracestate", " , ")])).unwrap();
        let mut out: HashMap<String, String> = HashMap::new();
        inject(&ctx, &mut out);
        assert!(!out.contains_key("tracestate"));
    }
}
