//! loom model of the trace export thread's sleep/wake handshake: submitters
//! queue a span and maybe ring; the export thread drains, announces
//! idleness, re-checks and sleeps. No interleaving may leave a span queued
//! while the thread sleeps (loom reports that as a deadlock).
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --test
//! loom_tracing --release` (`make loom`).
#![cfg(loom)]

use loom::thread;
use nimsync_core::tracing::IdleHandshake;
use nimsync_core::{Channel, Mode};
use std::sync::Arc;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Two submitters, one export thread: every span is taken, and the thread
/// never sleeps past a span.
#[test]
fn no_lost_wakeup() {
    model(|| {
        let handshake = Arc::new(IdleHandshake::new());
        let queue = Channel::<u32>::new(4, Mode::Mpsc).unwrap();
        let bell = Channel::<()>::new(2, Mode::Mpsc).unwrap();
        let submitters: Vec<_> = (0..2)
            .map(|i| {
                let (handshake, queue, bell) = (handshake.clone(), queue.clone(), bell.clone());
                thread::spawn(move || {
                    queue.try_send(i).unwrap();
                    if handshake.submitted() {
                        // At most one ring per submitter: room for both.
                        bell.try_send(()).unwrap();
                    }
                })
            })
            .collect();
        // The export thread's role runs in a spawned thread: the main
        // thread only joins (see loom_channel.rs on late unparks, loom#249).
        let exporter = {
            let handshake = handshake.clone();
            thread::spawn(move || {
                let mut taken = 0;
                loop {
                    while queue.try_recv().is_ok() {
                        taken += 1;
                    }
                    if taken == 2 {
                        return taken;
                    }
                    if handshake.may_sleep(|| queue.is_empty()) {
                        bell.recv().unwrap();
                        handshake.awake();
                    } else {
                        // A submitter is between claiming its slot and
                        // filling it (the export thread snoozes here).
                        thread::yield_now();
                    }
                }
            })
        };
        for s in submitters {
            s.join().unwrap();
        }
        assert_eq!(exporter.join().unwrap(), 2);
        assert_eq!(handshake.count(), 2);
    });
}
