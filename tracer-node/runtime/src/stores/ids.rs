//! The protocol's id spellings: clients may name traces and spans with any
//! string. A 32-hex or hyphenated-UUID trace id (16-hex span id) stands
//! for its bits; any other string for a stable hash of it, the same on
//! every node.

use tracer_core::{SpanId, TraceId};

/// How a trace id is looked up: the two spellings of 128 bits are one key,
/// any other string is a key of its own (held as a 64-bit hash of it: a key
/// is a small copy, compared without touching the string; an index that
/// must be exact compares the spelling of what it finds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TraceKey {
    /// A 32-hex or hyphenated-UUID id, by value.
    Id(TraceId),
    /// Any other string, by its hash (this process's; not for the wire).
    Opaque(u64),
}

impl TraceKey {
    /// The key for an id as a client spelled it.
    pub fn new(spelled: &str) -> Self {
        match TraceId::parse(spelled) {
            Some(id) => TraceKey::Id(id),
            None => {
                use std::hash::BuildHasher;
                TraceKey::Opaque(foldhash::fast::FixedState::default().hash_one(spelled))
            }
        }
    }

    /// Whether ids spelled this way are matched exactly by their string
    /// (opaque ids) rather than by their bits.
    pub fn is_opaque(&self) -> bool {
        matches!(self, TraceKey::Opaque(_))
    }
}

impl From<TraceId> for TraceKey {
    fn from(id: TraceId) -> Self {
        TraceKey::Id(id)
    }
}

/// 64-bit finalizer of MurmurHash3: every input bit reaches every output bit.
fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// 128-bit FNV-1a of a string, each half finalized: stable across runs,
/// processes and platforms, so every node maps a string to the same bits.
fn stable_hash128(s: &str) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let h = s
        .bytes()
        .fold(OFFSET, |h, b| (h ^ u128::from(b)).wrapping_mul(PRIME));
    let (hi, lo) = ((h >> 64) as u64, h as u64);
    // Each half depends on both, so the low bits (which ratio sampling
    // reads) are as well mixed as the high ones.
    (u128::from(fmix64(hi ^ lo.rotate_left(32))) << 64) | u128::from(fmix64(lo ^ hi))
}

/// The 128 bits a client's trace id stands for: the id itself when it is
/// 32 hex digits or a hyphenated UUID, else a stable hash of the string
/// (never zero). The same string gives the same bits on every node, so
/// ratio sampling of an opaque id is consistent too.
pub fn trace_id_for(spelled: &str) -> TraceId {
    TraceId::parse(spelled).unwrap_or_else(|| TraceId::from_u128(stable_hash128(spelled).max(1)))
}

/// The 64 bits a client's span id stands for: the id itself when it is
/// 16 hex digits and not zero, else a stable hash of the string (never
/// zero).
pub fn span_id_for(spelled: &str) -> SpanId {
    SpanId::from_hex(spelled)
        .filter(|id| id.is_valid())
        .unwrap_or_else(|| {
            let h = stable_hash128(spelled);
            SpanId::from_u64(((h >> 64) as u64 ^ h as u64).max(1))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_keys_follow_the_spelling_rule() {
        assert_eq!(
            TraceKey::new("4bf92f3577b34da6a3ce929d0e0e4736"),
            TraceKey::new("4bf92f35-77b3-4da6-a3ce-929d0e0e4736")
        );
        assert_ne!(TraceKey::new("abc123"), TraceKey::new("ABC123"));
        assert_eq!(TraceKey::new("abc123"), TraceKey::new("abc123"));
    }
}
