//! Samplers: which new spans are recorded and exported.

use super::ids::TraceId;
use super::SpanContext;
use crate::error::Error;

/// Decides, when a span starts, whether it is sampled (recorded, exported,
/// and flagged `sampled` to downstream services).
///
/// ```
/// use nimsync_core::tracing::{Sampler, TraceId};
/// let s = Sampler::parent_based(Sampler::ratio(0.25).unwrap());
/// let id = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
/// // No parent: the ratio sampler decides from the trace id's low 8 bytes.
/// assert_eq!(s.should_sample(None, id), id.low_u64() < 1 << 62);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Sampler {
    /// Every span is sampled.
    AlwaysOn,
    /// No span is sampled (spans still carry ids, so context propagates).
    AlwaysOff,
    /// A fraction of traces, decided from the trace id alone so that every
    /// service using the same ratio makes the same decision for a trace.
    /// Same rule as OpenTelemetry's `TraceIdRatioBased`: sampled when the
    /// trace id's lower 8 bytes, read big-endian and shifted right by one,
    /// are below `ratio × 2^63`.
    TraceIdRatio(f64),
    /// Follows the parent's `sampled` flag when there is a parent (remote
    /// or local); uses the inner sampler for root spans.
    ParentBased(Box<Sampler>),
}

impl Sampler {
    /// A [`TraceIdRatio`](Self::TraceIdRatio) sampler; `ratio` must be in
    /// `0.0..=1.0` (0 samples nothing, 1 everything).
    pub fn ratio(ratio: f64) -> Result<Sampler, Error> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::invalid("sampling_rate", format!("must be in 0.0..=1.0, got {ratio}")));
        }
        Ok(Sampler::TraceIdRatio(ratio))
    }

    /// A [`ParentBased`](Self::ParentBased) sampler around `root`.
    pub fn parent_based(root: Sampler) -> Sampler {
        Sampler::ParentBased(Box::new(root))
    }

    /// The decision for a new span in `trace_id` whose parent is `parent`
    /// (`None` for a root span).
    pub fn should_sample(&self, parent: Option<&SpanContext>, trace_id: TraceId) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => ratio_decision(*ratio, trace_id),
            Sampler::ParentBased(root) => match parent {
                Some(p) => p.flags.is_sampled(),
                None => root.should_sample(None, trace_id),
            },
        }
    }
}

fn ratio_decision(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    // `as` saturates; NaN and negatives give 0, which samples nothing.
    let bound = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
    (trace_id.low_u64() >> 1) < bound
}
