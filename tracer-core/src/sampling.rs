//! Samplers: which traces are recorded.

use crate::context::SpanContext;
use crate::ids::TraceId;

/// A sampling policy, in the manner of OpenTelemetry's built-in samplers.
///
/// ```
/// use tracer_core::{InMemoryExporter, Sampler, Tracer, TraceId};
///
/// // The same decision for the same trace, on every node.
/// let ratio = Sampler::TraceIdRatio(0.5);
/// let id = TraceId::random();
/// assert_eq!(ratio.should_sample(None, id), ratio.should_sample(None, id));
///
/// // An unsampled span records nothing but still propagates its context.
/// let tracer = Tracer::new(Sampler::AlwaysOff, InMemoryExporter::new());
/// let span = tracer.start("quiet");
/// assert!(!span.is_recording());
/// assert!(span.context().is_valid() && !span.context().is_sampled());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// Record every span.
    AlwaysOn,
    /// Record no span (contexts still propagate).
    AlwaysOff,
    /// Record a fraction of traces, decided from the trace id alone, so every
    /// service makes the same decision for the same trace.
    TraceIdRatio(f64),
    /// Follow the parent's sampled flag; use the inner sampler for roots.
    ParentBased(Box<Sampler>),
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::ParentBased(Box::new(Sampler::AlwaysOn))
    }
}

impl Sampler {
    /// Whether a span with this parent in this trace is recorded.
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => ratio_decision(*ratio, trace_id),
            Sampler::ParentBased(root) => match parent {
                Some(p) if p.is_valid() => p.is_sampled(),
                _ => root.should_sample(None, trace_id),
            },
        }
    }
}

/// The ratio rule of W3C Trace Context Level 2 and OpenTelemetry's
/// consistent-probability sampling: the trace id's rightmost 7 bytes (56 bits,
/// random in W3C ids and in UUID v4 alike) against `ratio * 2^56`.
pub fn ratio_decision(ratio: f64, trace_id: TraceId) -> bool {
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    if ratio >= 1.0 {
        return true;
    }
    const BITS: u32 = 56;
    let bound = (ratio * (1u64 << BITS) as f64) as u64;
    let rnd = (trace_id.to_u128() as u64) & ((1u64 << BITS) - 1);
    rnd < bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::TraceFlags;
    use crate::ids::SpanId;
    use crate::propagation::TraceState;

    #[test]
    fn ratio_is_deterministic_and_close_to_rate() {
        let ids: Vec<TraceId> = (0..20_000).map(|_| TraceId::random()).collect();
        let s = Sampler::TraceIdRatio(0.25);
        let kept = ids.iter().filter(|&&id| s.should_sample(None, id)).count();
        assert!(
            (4_000..6_000).contains(&kept),
            "kept {kept} of 20000 at 0.25"
        );
        for &id in &ids[..100] {
            assert_eq!(s.should_sample(None, id), s.should_sample(None, id));
        }
        assert!(!Sampler::TraceIdRatio(0.0).should_sample(None, ids[0]));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(None, ids[0]));
    }

    #[test]
    fn parent_based_follows_the_flag() {
        let s = Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
        let id = TraceId::random();
        let sampled = SpanContext::new(
            id,
            SpanId::random(),
            TraceFlags::SAMPLED,
            true,
            TraceState::EMPTY,
        );
        let unsampled = SpanContext::new(
            id,
            SpanId::random(),
            TraceFlags::NONE,
            true,
            TraceState::EMPTY,
        );
        assert!(s.should_sample(Some(&sampled), id));
        assert!(!s.should_sample(Some(&unsampled), id));
        assert!(!s.should_sample(None, id));
    }
}
