//! The part of a span that crosses process boundaries.

use crate::ids::{SpanId, TraceId};
use crate::propagation::TraceState;

/// W3C trace flags: the 8-bit `trace-flags` field of a `traceparent`.
/// Trace Context Level 1 defines the sampled bit (`0x01`); Level 2 adds the
/// random trace id bit (`0x02`). The other wire bits are reserved: they are
/// kept as received, and [`Traceparent::format`](crate::Traceparent::format)
/// writes them as zero.
///
/// Beside the 8 bits that travel, one bit above them is local to the
/// process: the self-telemetry mark (see
/// [`SpanContext::with_self_telemetry`]). Kept here, it is inherited with
/// the flags by every child span at no cost, and never leaves: [`bits`]
/// returns the 8 wire bits only.
///
/// [`bits`]: TraceFlags::bits
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceFlags(u16);

/// The local self-telemetry bit, above the 8 wire bits.
const SELF_TELEMETRY: u16 = 0x100;

impl TraceFlags {
    /// The `sampled` bit (Trace Context Level 1, 3.2.2.5.1).
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The `random-trace-id` bit (Trace Context Level 2, 3.2.2.5.2): at
    /// least the right-most 7 bytes of the trace id are random, uniformly
    /// distributed. Set by the trace's root, propagated unchanged by every
    /// span of the trace.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    /// No flag set.
    pub const NONE: TraceFlags = TraceFlags(0);

    /// Wraps raw flag bits (as read from a `traceparent`).
    pub const fn new(bits: u8) -> Self {
        TraceFlags(bits as u16)
    }

    /// The wire bits (what a `traceparent` carries).
    pub const fn bits(self) -> u8 {
        self.0 as u8
    }

    /// Whether the sampled bit is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// Whether the random trace id bit is set.
    pub const fn is_random(self) -> bool {
        self.0 & 0x02 != 0
    }

    /// The same flags with the random trace id bit set or cleared.
    pub const fn with_random(self, random: bool) -> Self {
        if random {
            TraceFlags(self.0 | 0x02)
        } else {
            TraceFlags(self.0 & !0x02)
        }
    }

    /// The same flags with the sampled bit set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        if sampled {
            TraceFlags(self.0 | 0x01)
        } else {
            TraceFlags(self.0 & !0x01)
        }
    }

    const fn with_self_telemetry(self, yes: bool) -> Self {
        if yes {
            TraceFlags(self.0 | SELF_TELEMETRY)
        } else {
            TraceFlags(self.0 & !SELF_TELEMETRY)
        }
    }

    const fn is_self_telemetry(self) -> bool {
        self.0 & SELF_TELEMETRY != 0
    }

    /// All the bits, the local ones included (for the context stack).
    pub(crate) const fn to_raw(self) -> u16 {
        self.0
    }

    /// Flags from [`to_raw`](Self::to_raw)'s bits.
    pub(crate) const fn from_raw(bits: u16) -> Self {
        TraceFlags(bits)
    }
}

/// Identifies a span across processes: ids, flags and vendor trace state.
#[derive(Clone, PartialEq, Eq)]
pub struct SpanContext {
    trace_id: TraceId,
    span_id: SpanId,
    /// The flags' bits, and [`REMOTE`] above them: one word, so that a
    /// context is copied in aligned halves (odd-sized fields are copied
    /// by overlapping moves, whose reads the store buffer cannot serve).
    bits: u64,
    state: TraceState,
}

/// [`SpanContext::bits`]: the context came from another process.
pub(crate) const REMOTE: u64 = 1 << 16;

impl std::fmt::Debug for SpanContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanContext")
            .field("trace_id", &self.trace_id)
            .field("span_id", &self.span_id)
            .field("flags", &self.flags())
            .field("is_remote", &self.is_remote())
            .field("state", &self.state)
            .finish()
    }
}

impl SpanContext {
    /// A context from its parts.
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        flags: TraceFlags,
        is_remote: bool,
        state: TraceState,
    ) -> Self {
        let remote = if is_remote { REMOTE } else { 0 };
        SpanContext {
            trace_id,
            span_id,
            bits: u64::from(flags.to_raw()) | remote,
            state,
        }
    }

    /// The same context, marked as (or cleared of being) the process's own
    /// telemetry: the spans a sidecar makes for traffic that carried no
    /// trace context, as an Envoy sidecar does. Processors that keep user
    /// data (a trace store) skip such spans; exporters still get them. The
    /// mark is inherited by child spans and never propagated on the wire.
    pub fn with_self_telemetry(mut self, yes: bool) -> Self {
        let flags = self.flags().with_self_telemetry(yes);
        self.bits = (self.bits & REMOTE) | u64::from(flags.to_raw());
        self
    }

    /// Whether the span belongs to the process's own telemetry (see
    /// [`with_self_telemetry`](Self::with_self_telemetry)).
    pub fn is_self_telemetry(&self) -> bool {
        self.flags().is_self_telemetry()
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace_id
    }

    /// The span id.
    pub fn span_id(&self) -> SpanId {
        self.span_id
    }

    /// The trace flags.
    pub fn flags(&self) -> TraceFlags {
        TraceFlags::from_raw(self.bits as u16)
    }

    /// The flags and the remote mark, as one word (for the context stack).
    pub(crate) fn bits(&self) -> u64 {
        self.bits
    }

    /// Whether the sampled flag is set.
    pub fn is_sampled(&self) -> bool {
        self.flags().is_sampled()
    }

    /// Whether this context was extracted from another process.
    pub fn is_remote(&self) -> bool {
        self.bits & REMOTE != 0
    }

    /// The vendor trace state (`tracestate`).
    pub fn trace_state(&self) -> &TraceState {
        &self.state
    }

    /// Both ids are valid (non-zero).
    pub fn is_valid(&self) -> bool {
        self.trace_id.is_valid() && self.span_id.is_valid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_telemetry_mark_is_local_and_never_on_the_wire() {
        let ctx = SpanContext::new(
            TraceId::from_u128(1),
            SpanId::from_u64(2),
            TraceFlags::SAMPLED,
            false,
            TraceState::EMPTY,
        );
        let own = ctx.clone().with_self_telemetry(true);
        assert!(own.is_self_telemetry() && !ctx.is_self_telemetry());
        assert_eq!(own.flags().bits(), 0x01, "only the wire bits");
        assert!(own.is_sampled());
        assert_eq!(
            crate::Traceparent::format(&own),
            crate::Traceparent::format(&ctx)
        );
        assert!(!own.with_self_telemetry(false).is_self_telemetry());
    }

    // Trace Context Level 2, 3.2.2.5 (trace-flags) and 3.2.2.5.2 (Random
    // Trace ID Flag): bit 0x02, read as one bit, not by comparing the byte.
    #[test]
    fn the_random_bit_is_a_wire_bit_beside_the_local_mark() {
        assert_eq!(TraceFlags::RANDOM.bits(), 0x02);
        assert!(TraceFlags::RANDOM.is_random() && !TraceFlags::RANDOM.is_sampled());
        assert!(TraceFlags::new(0x03).is_random() && TraceFlags::new(0x03).is_sampled());
        assert!(!TraceFlags::new(0xfd).is_random());
        let both = TraceFlags::RANDOM
            .with_sampled(true)
            .with_self_telemetry(true);
        assert_eq!(both.bits(), 0x03, "bits() is the 8 wire bits only");
        assert!(both.is_self_telemetry() && both.is_random() && both.is_sampled());
        // Sampling moves the sampled bit only; the random bit and the local
        // mark stay.
        let unsampled = both.with_sampled(false);
        assert!(unsampled.is_random() && unsampled.is_self_telemetry());
        assert_eq!(unsampled.bits(), 0x02);
        let plain = both.with_random(false);
        assert!(!plain.is_random() && plain.is_sampled() && plain.is_self_telemetry());
        assert_eq!(plain.bits(), 0x01);
    }
}
