//! loom models of cancellation: the token tree under concurrent cancel,
//! child creation and callback registration, and a parked receiver woken by
//! its token.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --test
//! loom_cancel --release` (`make loom`).
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use nimsync_core::{CancelToken, Channel, Error, Mode, WaitOptions};
use std::sync::Arc;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// Two threads cancel the same root while a third creates a grandchild and
/// registers a callback on it: the root is cancelled once, the grandchild
/// ends up cancelled whichever way the race goes, and its callback runs once.
#[test]
fn concurrent_cancel_child_and_callback() {
    model(|| {
        let root = CancelToken::new();
        let child = root.child();
        let runs = Arc::new(AtomicUsize::new(0));
        let wins = Arc::new(AtomicUsize::new(0));
        let cancellers: Vec<_> = (0..2)
            .map(|_| {
                let (root, wins) = (root.clone(), wins.clone());
                thread::spawn(move || {
                    if root.cancel("stop") {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let grandchild = child.child();
        let r = runs.clone();
        grandchild
            .on_cancel(move |_| {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .forget();
        for h in cancellers {
            h.join().unwrap();
        }
        assert_eq!(wins.load(Ordering::Relaxed), 1);

        assert!(grandchild.is_cancelled());
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}

/// A receiver parks on an empty channel with a token; another thread cancels
/// it: the receiver returns `Cancelled` (never hangs), whichever comes first.
#[test]
fn cancel_wakes_a_parked_receiver() {
    model(|| {
        let ch = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
        let token = CancelToken::new();
        let t = token.clone();
        let canceller = thread::spawn(move || {
            t.cancel("");
        });
        assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&token)), Err(Error::Cancelled));
        canceller.join().unwrap();
    });
}
