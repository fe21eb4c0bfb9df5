//! A lock-free log-linear histogram in the HdrHistogram way.
//!
//! # Buckets
//!
//! Values are `u64` (nanoseconds, bytes, anything countable). Values below
//! 256 get a bucket each. Above that, every power-of-two range
//! `[2^k, 2^(k+1))` is cut into 128 equal sub-buckets, so a bucket is never
//! wider than 1/128 of the values it holds: reporting a bucket's midpoint is
//! within 0.4% of any value inside it, which keeps every percentile within 1%
//! of the exact one over the whole `u64` range (1 ns to centuries). The index
//! is a shift and a leading-zeros count; the full range takes 7,424 buckets.
//!
//! # Why our own and not the `hdrhistogram` crate
//!
//! The `hdrhistogram` crate records through `&mut self`: sharing it between
//! threads needs a lock (or one histogram per thread plus a merge that needs a
//! lock on every record to stay safe against a concurrent scrape). Here every
//! bucket is an `AtomicU64`, so recording is one `fetch_add` on the bucket,
//! one on the sum, and a load (rarely a `fetch_min`/`fetch_max`) for the
//! extremes: lock-free, wait-free but for the rare extreme update, and a
//! scrape can read while any number of threads record. The bucket math is
//! small enough to own.
//!
//! # Striping
//!
//! Threads that record the same values would fight over one cache line, so
//! the state is split into shards (a power of two up to 16, from the number of
//! cores); a thread records into the shard picked by its thread slot
//! (`super::thread_slot`), threads beyond the shard count share. A shard's
//! 58 KiB of buckets is allocated (zeroed, so the OS can hand out untouched
//! pages) on the first record that lands in it and published with a
//! compare-and-swap; a scrape adds the shards up.

use crate::sync::{AtomicPtr, AtomicU64, Ordering};
use crossbeam_utils::CachePadded;
// The buckets are plain counters with no protocol between them, so they stay
// std atomics even under loom (whose model covers the publication of the
// array, the sum and the extremes); that also lets them come from zeroed memory.
use std::sync::atomic::AtomicU64 as BucketCell;

/// Sub-buckets per power of two (the linear part of log-linear).
const SUB_BUCKETS: usize = 128;
/// `log2(SUB_BUCKETS)`.
const SUB_BITS: u32 = 7;
/// Buckets over the whole `u64` range: 256 exact ones, then 128 per power of
/// two for exponents 8..=63 (shifts 1..=56).
pub(crate) const BUCKETS: usize = 2 * SUB_BUCKETS + (64 - SUB_BITS as usize - 1) * SUB_BUCKETS;

/// The bucket that holds `v`.
#[inline]
pub(crate) fn bucket_index(v: u64) -> usize {
    if v < 2 * SUB_BUCKETS as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    // `v >> shift` is in [128, 256): the sub-bucket plus the half offset.
    shift as usize * SUB_BUCKETS + (v >> shift) as usize
}

/// The lowest value and the width of bucket `index`.
#[inline]
pub(crate) fn bucket_range(index: usize) -> (u64, u64) {
    if index < 2 * SUB_BUCKETS {
        return (index as u64, 1);
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub = (index - shift as usize * SUB_BUCKETS) as u64;
    (sub << shift, 1u64 << shift)
}

/// The value reported for bucket `index`: its midpoint.
#[inline]
fn bucket_value(index: usize) -> u64 {
    let (low, width) = bucket_range(index);
    low + (width - 1) / 2
}

/// One shard: the extremes and the sum (the bucket array hangs off it).
struct Shard {
    buckets: AtomicPtr<BucketCell>,
    /// The low 64 bits of the sum of recorded values.
    sum_low: AtomicU64,
    /// Carries out of `sum_low`.
    sum_high: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Shard {
    fn new() -> Self {
        Shard {
            buckets: AtomicPtr::new(std::ptr::null_mut()),
            sum_low: AtomicU64::new(0),
            sum_high: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    /// The shard's buckets, allocating them on first use.
    #[inline]
    fn buckets(&self) -> Result<&[BucketCell], crate::Error> {
        // Acquire: pairs with the AcqRel compare-exchange below, so the zeroed
        // memory is visible before the pointer is used.
        let p = self.buckets.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: a non-null pointer was published by `install` from a live
            // allocation of `BUCKETS` atomics that lives until the shard drops.
            return Ok(unsafe { std::slice::from_raw_parts(p, BUCKETS) });
        }
        self.install()
    }

    #[cold]
    fn install(&self) -> Result<&[BucketCell], crate::Error> {
        let fresh = alloc_buckets()?;
        // AcqRel: Release publishes the zeroed buckets; Acquire (on failure)
        // sees the winner's buckets.
        match self.buckets.compare_exchange(std::ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: `fresh` is a live allocation of `BUCKETS` atomics, now owned by the shard.
            Ok(_) => Ok(unsafe { std::slice::from_raw_parts(fresh, BUCKETS) }),
            Err(winner) => {
                // SAFETY: `fresh` was never shared; we still own it.
                unsafe { free_buckets(fresh) };
                // SAFETY: as in `buckets`: `winner` is the published allocation.
                Ok(unsafe { std::slice::from_raw_parts(winner, BUCKETS) })
            }
        }
    }

    /// The buckets if some record allocated them.
    fn existing_buckets(&self) -> Option<&[BucketCell]> {
        // Acquire: as in `buckets`.
        let p = self.buckets.load(Ordering::Acquire);
        // SAFETY: as in `buckets`.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts(p, BUCKETS) })
    }

    fn sum(&self) -> u128 {
        loop {
            // Relaxed throughout: the sum is a statistic. Reading high, low,
            // high and retrying if high moved rules out a torn read across a
            // carry (a carry not yet added is the one window left, see `record`).
            let high = self.sum_high.load(Ordering::Relaxed);
            let low = self.sum_low.load(Ordering::Relaxed);
            if self.sum_high.load(Ordering::Relaxed) == high {
                return (u128::from(high) << 64) | u128::from(low);
            }
        }
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        // Acquire: `&mut self` already excludes other users; this keeps one
        // code path for std and loom atomics.
        let p = self.buckets.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the shard owns the published allocation and is going away.
            unsafe { free_buckets(p) };
        }
    }
}

fn bucket_layout() -> std::alloc::Layout {
    std::alloc::Layout::array::<BucketCell>(BUCKETS).expect("bucket array size fits in isize")
}

/// Allocates a zeroed bucket array (zero bits are a valid `AtomicU64` 0).
fn alloc_buckets() -> Result<*mut BucketCell, crate::Error> {
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(bucket_layout()) } as *mut BucketCell;
    if p.is_null() {
        return Err(crate::Error::OutOfMemory(format!("{BUCKETS} histogram buckets")));
    }
    Ok(p)
}

/// Frees an array from [`alloc_buckets`].
///
/// # Safety
/// `p` came from `alloc_buckets` and is not used again.
unsafe fn free_buckets(p: *mut BucketCell) {
    // SAFETY: allocated by `alloc_zeroed` with this layout; atomics need no drop.
    unsafe { std::alloc::dealloc(p as *mut u8, bucket_layout()) }
}

/// The atomic state of one histogram (one label set).
pub(crate) struct AtomicHistogram {
    shards: Box<[CachePadded<Shard>]>,
    mask: usize,
}

impl AtomicHistogram {
    /// A histogram of `shards` shards (a power of two); the first shard's
    /// buckets are allocated now, so that a record never has nowhere to go.
    pub(crate) fn new(shards: usize) -> Result<Self, crate::Error> {
        debug_assert!(shards.is_power_of_two());
        let h =
            AtomicHistogram { shards: (0..shards).map(|_| CachePadded::new(Shard::new())).collect(), mask: shards - 1 };
        // Under loom every shard starts empty, so that the model covers two
        // threads racing to install the same shard's buckets.
        #[cfg(not(loom))]
        h.shards[0].buckets()?;
        Ok(h)
    }

    /// Records `v` once, into the shard of `slot` (or into the first shard if
    /// that one's buckets cannot be allocated: nothing is lost).
    #[inline]
    pub(crate) fn record(&self, v: u64, slot: usize) {
        let mut shard = &self.shards[slot & self.mask];
        let buckets = match shard.buckets() {
            Ok(b) => b,
            Err(_) => {
                shard = &self.shards[0];
                shard.existing_buckets().expect("the first shard is allocated at creation")
            }
        };
        // Relaxed: each bucket is an independent exact counter; a scrape that
        // runs concurrently may miss records still in flight, never lose them.
        buckets[bucket_index(v)].fetch_add(1, Ordering::Relaxed);
        // Relaxed: as above; the carry is added right after a wrap.
        let old = shard.sum_low.fetch_add(v, Ordering::Relaxed);
        if old.checked_add(v).is_none() {
            shard.sum_high.fetch_add(1, Ordering::Relaxed);
        }
        // Relaxed: the extremes only ever move outward; a load first keeps the
        // common case (not a new extreme) free of read-modify-writes.
        if v < shard.min.load(Ordering::Relaxed) {
            shard.min.fetch_min(v, Ordering::Relaxed);
        }
        if v > shard.max.load(Ordering::Relaxed) {
            shard.max.fetch_max(v, Ordering::Relaxed);
        }
    }

    /// Adds up the shards.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut counts = vec![0u64; BUCKETS];
        let mut sum = 0u128;
        let mut min = u64::MAX;
        let mut max = 0u64;
        for shard in self.shards.iter() {
            let Some(buckets) = shard.existing_buckets() else { continue };
            for (c, b) in counts.iter_mut().zip(buckets) {
                // Relaxed: see `record`.
                *c += b.load(Ordering::Relaxed);
            }
            sum += shard.sum();
            // Relaxed: see `record`.
            min = min.min(shard.min.load(Ordering::Relaxed));
            max = max.max(shard.max.load(Ordering::Relaxed));
        }
        HistogramSnapshot::from_counts(counts, sum, min, max)
    }
}

/// The 1-based nearest rank of percentile `p` (0–100) among `count` values:
/// `ceil(p/100 * count)`, at least 1, with the product's rounding noise
/// removed (99.9% of 1000 is rank 999, not 1000).
pub(crate) fn nearest_rank(p: f64, count: u64) -> u64 {
    let x = p / 100.0 * count as f64;
    (x - x * 1e-12).ceil().max(1.0) as u64
}

/// A point-in-time copy of a histogram: count, sum, extremes and the buckets
/// that answer percentile queries.
///
/// ```
/// use nimsync_core::metrics::Collector;
/// let c = Collector::new();
/// let h = c.histogram("latency_ns", "Round-trip latency.").unwrap();
/// for v in 1..=1000 {
///     h.record(v);
/// }
/// let s = h.snapshot();
/// assert_eq!((s.count(), s.min(), s.max(), s.sum()), (1000, 1, 1000, 500_500));
/// let p99 = s.percentile(99.0);
/// assert!((p99 as f64 - 990.0).abs() <= 990.0 * 0.01);
/// ```
#[derive(Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// Non-empty buckets as (bucket index, count), ascending.
    buckets: Vec<(u32, u64)>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min())
            .field("max", &self.max)
            .field("p50", &self.percentile(50.0))
            .field("p99", &self.percentile(99.0))
            .finish()
    }
}

impl HistogramSnapshot {
    fn from_counts(counts: Vec<u64>, sum: u128, min: u64, max: u64) -> Self {
        let buckets: Vec<(u32, u64)> =
            counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(i, &c)| (i as u32, c)).collect();
        let count = buckets.iter().map(|b| b.1).sum();
        HistogramSnapshot { buckets, count, sum, min, max }
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum of the values recorded (exact; `u128` so that hours of
    /// nanoseconds recorded billions of times cannot overflow).
    pub fn sum(&self) -> u128 {
        self.sum
    }

    /// The smallest value recorded (exact); 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 {
            0
        } else {
            self.min
        }
    }

    /// The largest value recorded (exact); 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The arithmetic mean (exact up to floating point); 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `p` (0–100; out-of-range values are clamped,
    /// NaN counts as 0): the recorded value of nearest rank `ceil(p/100 *
    /// count)`, within 1% (in fact 0.4%). `percentile(0.0)` is the minimum,
    /// `percentile(100.0)` the maximum; an empty histogram answers 0.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
        let rank = nearest_rank(p, self.count);
        if rank >= self.count {
            return self.max;
        }
        if rank <= 1 {
            // The first recorded value: the minimum, kept exactly.
            return self.min;
        }
        let mut seen = 0u64;
        for &(index, c) in &self.buckets {
            seen += c;
            if seen >= rank {
                return bucket_value(index as usize).clamp(self.min, self.max);
            }
        }
        self.max
    }

    /// Values recorded that are at most `bound`, to bucket resolution: every
    /// value in a bucket whose lowest value is `<= bound` counts, so a value
    /// above `bound` by less than 1/128 of it may be counted too.
    pub fn count_at_most(&self, bound: f64) -> u64 {
        if bound.is_nan() || bound < 0.0 {
            return 0;
        }
        self.buckets.iter().take_while(|&&(i, _)| (bucket_range(i as usize).0 as f64) <= bound).map(|b| b.1).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_narrow() {
        assert_eq!(BUCKETS, 7424);
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bucket_range(i);
            assert_eq!(low, next, "bucket {i}");
            assert!(width == 1 || width as f64 / low as f64 <= 1.0 / 128.0, "bucket {i} too wide");
            assert_eq!(bucket_index(low), i);
            assert_eq!(bucket_index(low + (width - 1)), i);
            next = low.wrapping_add(width);
        }
        assert_eq!(next, 0, "the last bucket ends at u64::MAX");
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn sum_carries_past_u64() {
        let h = AtomicHistogram::new(1).unwrap();
        h.record(u64::MAX, 0);
        h.record(u64::MAX, 0);
        h.record(2, 0);
        let s = h.snapshot();
        assert_eq!(s.sum(), 2 * u128::from(u64::MAX) + 2);
        assert_eq!((s.count(), s.min(), s.max()), (3, 2, u64::MAX));
    }
}
