//! Trace and span identifiers, their spellings, and the fast generator behind them.

use std::cell::Cell;
use std::fmt;

/// A 128-bit trace id. The all-zero id is invalid (W3C Trace Context).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(u128);

/// A 64-bit span id. The all-zero id is invalid (W3C Trace Context).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(u64);

impl TraceId {
    /// The invalid (all-zero) trace id.
    pub const INVALID: TraceId = TraceId(0);

    /// Wraps raw bits.
    pub const fn from_u128(bits: u128) -> Self {
        TraceId(bits)
    }

    /// The raw bits.
    pub const fn to_u128(self) -> u128 {
        self.0
    }

    /// A new random trace id: 128 bits from the thread's generator, stamped
    /// as a UUID v4 (version and variant bits), so it is never zero.
    #[inline]
    pub fn random() -> Self {
        let bits = (u128::from(next_u64()) << 64) | u128::from(next_u64());
        let uuid = uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid();
        TraceId(uuid.as_u128())
    }

    /// Whether the id is non-zero.
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// The W3C spelling: 32 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    /// The hyphenated UUID spelling, lowercase (`8-4-4-4-12`).
    pub fn to_uuid_string(self) -> String {
        uuid::Uuid::from_u128(self.0)
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned()
    }

    /// Parses exactly 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        parse_hex_u128(s.as_bytes()).map(TraceId)
    }

    /// Parses either spelling: 32 hex digits or a hyphenated UUID, either case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.len() {
            32 => Self::from_hex(s),
            36 => {
                let b = s.as_bytes();
                if b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
                    return None;
                }
                let mut digits = [0u8; 32];
                let mut n = 0;
                for (i, &c) in b.iter().enumerate() {
                    if matches!(i, 8 | 13 | 18 | 23) {
                        continue;
                    }
                    digits[n] = c;
                    n += 1;
                }
                parse_hex_u128(&digits).map(TraceId)
            }
            _ => None,
        }
    }
}

impl SpanId {
    /// The invalid (all-zero) span id.
    pub const INVALID: SpanId = SpanId(0);

    /// Wraps raw bits.
    pub const fn from_u64(bits: u64) -> Self {
        SpanId(bits)
    }

    /// The raw bits.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// A new random, non-zero span id.
    #[inline]
    pub fn random() -> Self {
        loop {
            let v = next_u64();
            if v != 0 {
                return SpanId(v);
            }
        }
    }

    /// Whether the id is non-zero.
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// 16 lowercase hex digits.
    pub fn to_hex(self) -> String {
        format!("{:016x}", self.0)
    }

    /// Parses exactly 16 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 16 {
            return None;
        }
        parse_hex_u128(s.as_bytes()).map(|v| SpanId(v as u64))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex_u128(digits: &[u8]) -> Option<u128> {
    let mut v: u128 = 0;
    for &c in digits {
        v = (v << 4) | u128::from(hex_val(c)?);
    }
    Some(v)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({:032x})", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({:016x})", self.0)
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// Seeds each thread's generator from the OS (through `uuid`'s getrandom).
fn seed() -> u64 {
    let bits = uuid::Uuid::new_v4().as_u128();
    (bits as u64) ^ ((bits >> 64) as u64)
}

/// wyrand: a fast, statistically good 64-bit generator. Ids need to be unique
/// and unpredictable enough for tracing, not cryptographic.
#[inline]
pub(crate) fn next_u64() -> u64 {
    RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn random_trace_ids_are_uuid_v4_and_distinct() {
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = TraceId::random();
            assert!(id.is_valid());
            let s = id.to_uuid_string();
            assert_eq!(s.len(), 36);
            assert_eq!(&s[14..15], "4", "version nibble in {s}");
            assert!(
                matches!(&s[19..20], "8" | "9" | "a" | "b"),
                "variant in {s}"
            );
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn span_ids_are_nonzero_and_distinct() {
        let ids: HashSet<_> = (0..10_000).map(|_| SpanId::random()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&SpanId::INVALID));
    }

    #[test]
    fn both_spellings_parse_to_the_same_bits() {
        let hex = "4bf92f3577b34da6a3ce929d0e0e4736";
        let a = TraceId::parse(hex).unwrap();
        let b = TraceId::parse("4BF92F35-77B3-4DA6-A3CE-929D0E0E4736").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_hex(), hex);
        assert_eq!(a.to_uuid_string(), "4bf92f35-77b3-4da6-a3ce-929d0e0e4736");
        assert_eq!(TraceId::parse(&a.to_uuid_string()), Some(a));
    }

    #[test]
    fn malformed_ids_do_not_parse() {
        assert_eq!(TraceId::parse("abc123"), None);
        assert_eq!(TraceId::parse("4bf92f3577b34da6a3ce929d0e0e473g"), None);
        assert_eq!(TraceId::parse("4bf92f35x77b3-4da6-a3ce-929d0e0e4736"), None);
        assert_eq!(SpanId::from_hex("00f067aa0ba902b"), None);
        assert_eq!(
            SpanId::from_hex("00f067aa0ba902b7"),
            Some(SpanId::from_u64(0x00f0_67aa_0ba9_02b7))
        );
    }
}
