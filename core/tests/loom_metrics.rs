//! loom models of metric recording: two threads racing to install a
//! histogram shard's buckets while a third reads a snapshot, the sum's carry
//! across 64 bits, and striped counters; nothing recorded is lost.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --test
//! loom_metrics --release` (`make loom`).
#![cfg(loom)]

use loom::thread;
use nimsync_core::metrics::Collector;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Two recorders race to allocate and publish the same shard; a reader
/// snapshots meanwhile. The reader never sees more than was recorded, and
/// after the joins the snapshot holds both records, their exact sum (with
/// the carry out of the low 64 bits) and the extremes.
#[test]
fn racing_first_records_and_a_reader() {
    model(|| {
        let c = Collector::new();
        let h = c.histogram("h", "").unwrap();
        let recorders: Vec<_> = [u64::MAX, 2]
            .into_iter()
            .map(|v| {
                let h = h.clone();
                thread::spawn(move || h.record(v))
            })
            .collect();
        let reader = {
            let h = h.clone();
            thread::spawn(move || {
                let s = h.snapshot();
                assert!(s.count() <= 2);
            })
        };
        for r in recorders {
            r.join().unwrap();
        }
        reader.join().unwrap();
        let s = h.snapshot();
        assert_eq!(s.count(), 2);
        assert_eq!(s.sum(), u128::from(u64::MAX) + 2);
        assert_eq!((s.min(), s.max()), (2, u64::MAX));
    });
}

/// Concurrent increments of one counter are all counted.
#[test]
fn counter_increments_are_exact() {
    model(|| {
        let c = Collector::new();
        let k = c.counter("k_total", "").unwrap();
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let k = k.clone();
                thread::spawn(move || {
                    k.inc();
                    k.add(2);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(k.get(), 6);
    });
}
