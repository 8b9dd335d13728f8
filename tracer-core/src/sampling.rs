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
    #[inline]
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        Decider::of(self).decide(parent, trace_id)
    }
}

/// A sampler flattened for the span-start path: nested `ParentBased` layers
/// collapse into one flag (they decide alike), and a ratio becomes its
/// integer bound, so a decision is a compare or two, with no pointer to
/// follow and no float arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decider {
    follow_parent: bool,
    /// Roots (and all spans unless `follow_parent`) are sampled when the
    /// trace id's low 56 bits are below this bound; `u64::MAX` is always.
    bound: u64,
}

const RATIO_BITS: u32 = 56;
const RATIO_MASK: u64 = (1u64 << RATIO_BITS) - 1;

impl Decider {
    pub(crate) fn of(sampler: &Sampler) -> Decider {
        let mut follow_parent = false;
        let mut s = sampler;
        while let Sampler::ParentBased(root) = s {
            follow_parent = true;
            s = root;
        }
        let bound = match *s {
            Sampler::AlwaysOn => u64::MAX,
            Sampler::AlwaysOff => 0,
            Sampler::TraceIdRatio(ratio) => ratio_bound(ratio),
            Sampler::ParentBased(_) => unreachable!("unwrapped above"),
        };
        Decider {
            follow_parent,
            bound,
        }
    }

    #[inline]
    pub(crate) fn decide(self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match parent {
            Some(p) if self.follow_parent && p.is_valid() => p.is_sampled(),
            _ => self.bound == u64::MAX || (trace_id.to_u128() as u64 & RATIO_MASK) < self.bound,
        }
    }
}

/// `ratio * 2^56` as an integer bound: 0 for no trace, `u64::MAX` for all.
fn ratio_bound(ratio: f64) -> u64 {
    if ratio.is_nan() || ratio <= 0.0 {
        0
    } else if ratio >= 1.0 {
        u64::MAX
    } else {
        (ratio * (1u64 << RATIO_BITS) as f64) as u64
    }
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

    #[test]
    fn nested_parent_based_decides_like_one_layer() {
        let nested = Sampler::ParentBased(Box::new(Sampler::ParentBased(Box::new(
            Sampler::TraceIdRatio(0.5),
        ))));
        let flat = Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(0.5)));
        for _ in 0..1000 {
            let id = TraceId::random();
            let parent = SpanContext::new(
                id,
                SpanId::random(),
                TraceFlags::new((id.to_u128() >> 64) as u8 & 1),
                true,
                TraceState::EMPTY,
            );
            for p in [None, Some(&parent)] {
                assert_eq!(nested.should_sample(p, id), flat.should_sample(p, id));
            }
        }
    }

    #[test]
    fn ratio_bound_edges() {
        let id = TraceId::from_u128(u128::MAX);
        assert!(!Sampler::TraceIdRatio(f64::NAN).should_sample(None, id));
        assert!(!Sampler::TraceIdRatio(-1.0).should_sample(None, id));
        assert!(Sampler::TraceIdRatio(1.0).should_sample(None, id));
        assert!(Sampler::TraceIdRatio(7.0).should_sample(None, id));
        // Low 56 bits all set: only a ratio of 1 keeps it.
        assert!(!Sampler::TraceIdRatio(0.999_999).should_sample(None, id));
        assert!(Sampler::TraceIdRatio(0.000_001).should_sample(None, TraceId::from_u128(1 << 64)));
    }
}
