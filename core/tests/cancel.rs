//! Cancellation tokens: the tree, callbacks, deadlines, shields, and every
//! blocking operation giving up when its token fires.

use nimsync_core::{CancelReason, CancelToken, Channel, Error, Mode, Select, WaitGroup, WaitOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

/// Counts how often each token's callback ran.
fn counted(token: &CancelToken, counter: &Arc<AtomicUsize>) {
    let c = counter.clone();
    token
        .on_cancel(move |_| {
            c.fetch_add(1, Ordering::Relaxed);
        })
        .forget();
}

#[test]
fn cancelling_a_tree_of_10000_cancels_each_once_under_concurrent_cancels() {
    let root = CancelToken::new();
    // A tree: 100 children of the root, 99 grandchildren under each.
    let mut tokens = Vec::new();
    for _ in 0..100 {
        let child = root.child();
        for _ in 0..99 {
            tokens.push(child.child());
        }
        tokens.push(child);
    }
    assert_eq!(tokens.len(), 10_000);
    let runs: Vec<Arc<AtomicUsize>> = tokens.iter().map(|_| Arc::new(AtomicUsize::new(0))).collect();
    for (t, r) in tokens.iter().zip(&runs) {
        counted(t, r);
    }
    let tokens = Arc::new(tokens);
    let start = Arc::new(Barrier::new(4));
    let winners = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (root, tokens, start, winners) = (root.clone(), tokens.clone(), start.clone(), winners.clone());
            thread::spawn(move || {
                start.wait();
                // Two threads cancel the root, two cancel inner nodes.
                let won = if i < 2 { root.cancel("root") } else { tokens[i * 1234].cancel("inner") };
                if won && i < 2 {
                    winners.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(winners.load(Ordering::Relaxed), 1, "the root is cancelled exactly once");
    for (i, (t, r)) in tokens.iter().zip(&runs).enumerate() {
        assert!(t.is_cancelled(), "token {i} not cancelled");
        assert_eq!(r.load(Ordering::Relaxed), 1, "token {i}'s callback ran {} times", r.load(Ordering::Relaxed));
    }
}

#[test]
fn children_of_a_cancelled_parent_start_cancelled_and_callbacks_run_at_once() {
    let parent = CancelToken::new();
    parent.cancel("done");
    let child = parent.child();
    assert_eq!(child.reason(), Some(CancelReason::Requested("done".into())));
    let ran = Arc::new(AtomicUsize::new(0));
    counted(&child, &ran);
    assert_eq!(ran.load(Ordering::Relaxed), 1);
    assert_eq!(child.check(), Err(Error::Cancelled));
}

#[test]
fn cancelling_a_child_leaves_the_parent_alone() {
    let parent = CancelToken::new();
    let child = parent.child();
    let sibling = parent.child();
    assert!(child.cancel(""));
    assert!(!parent.is_cancelled());
    assert!(!sibling.is_cancelled());
    assert_eq!(parent.reason(), None);
}

#[test]
fn a_dropped_guard_withdraws_its_callback() {
    let token = CancelToken::new();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let guard = token.on_cancel(move |_| {
        r.fetch_add(1, Ordering::Relaxed);
    });
    drop(guard);
    token.cancel("");
    assert_eq!(ran.load(Ordering::Relaxed), 0);
}

#[test]
fn a_shielded_token_ignores_its_surroundings() {
    let outer = CancelToken::new();
    let shield = outer.shielded();
    outer.cancel("outer");
    assert!(!shield.is_cancelled());
    assert!(shield.cancel("itself"));
}

#[test]
fn deep_chains_cancel_without_recursion() {
    let root = CancelToken::new();
    let mut last = root.clone();
    let mut chain = Vec::new();
    for _ in 0..200_000 {
        last = last.child();
        chain.push(last.clone());
    }
    root.cancel("");
    assert!(last.is_cancelled());
    drop(chain);
}

#[test]
fn a_token_keeps_its_ancestors_linked_after_their_handles_are_dropped() {
    let root = CancelToken::new();
    let grandchild = root.child().child();
    let mut deep = root.clone();
    for _ in 0..200_000 {
        deep = deep.child(); // only the newest handle is kept
    }
    root.cancel("stop");
    assert_eq!(grandchild.reason(), Some(CancelReason::Requested("stop".into())));
    assert!(deep.is_cancelled());
    // Dropping the only handle of a 200,000-deep chain releases it without recursion.
    drop(root);
    drop(deep);
    // A dropped child unlinks itself: its parent does not keep it.
    let parent = CancelToken::new();
    for _ in 0..1000 {
        drop(parent.child().child());
    }
    assert!(parent.cancel(""));
}

#[test]
fn a_blocked_recv_returns_cancelled_promptly() {
    let ch = Channel::<u32>::new(4, Mode::Mpmc).unwrap();
    let token = CancelToken::new();
    let waiting = Arc::new(Barrier::new(2));
    let receiver = {
        let (ch, token, waiting) = (ch.clone(), token.child(), waiting.clone());
        thread::spawn(move || {
            waiting.wait();
            ch.recv_with(&WaitOptions::new().cancel(&token))
        })
    };
    waiting.wait();
    // Wait until the receiver is parked (its registration is visible).
    while ch.waiting().1 == 0 {
        thread::yield_now();
    }
    let t0 = Instant::now();
    token.cancel("stop");
    assert_eq!(receiver.join().unwrap(), Err(Error::Cancelled));
    let took = t0.elapsed();
    // Generous for CI; the wake is one futex call away.
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // The channel still works.
    ch.send(1).unwrap();
    assert_eq!(ch.recv(), Ok(1));
}

#[test]
fn a_deadline_of_50ms_on_a_blocked_recv_fires_within_50_to_200ms() {
    let ch = Channel::<u32>::new(4, Mode::Spsc).unwrap();
    let t0 = Instant::now();
    let token = CancelToken::new().with_timeout(Duration::from_millis(50));
    assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&token)), Err(Error::Timeout));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(50), "fired early: {took:?}");
    assert!(took <= Duration::from_millis(200), "fired late: {took:?}");
    assert_eq!(token.reason(), Some(CancelReason::DeadlineExceeded));
}

#[test]
fn deadlines_fire_in_order_and_dropped_ones_are_withdrawn() {
    let root = CancelToken::new();
    let late = root.with_timeout(Duration::from_millis(60));
    let early = root.with_timeout(Duration::from_millis(20));
    // Many dropped timeouts do not fire anything or pile up.
    for _ in 0..10_000 {
        drop(root.with_timeout(Duration::from_secs(3600)));
    }
    let ch = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
    assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&early)), Err(Error::Timeout));
    assert!(!late.is_cancelled(), "the later deadline has not passed yet");
    assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&late)), Err(Error::Timeout));
    assert!(!root.is_cancelled(), "a child's deadline does not cancel its parent");
    // A deadline that already passed cancels at once.
    assert!(root.with_deadline(Instant::now()).is_cancelled());
}

#[test]
fn a_parent_cancel_reaches_a_deadline_child_first() {
    let root = CancelToken::new();
    let child = root.with_timeout(Duration::from_secs(3600));
    root.cancel("early");
    assert_eq!(child.check(), Err(Error::Cancelled));
}

#[test]
fn blocked_send_select_rendezvous_and_waitgroup_give_up_on_cancel() {
    let full = Channel::<u32>::new(1, Mode::Mpsc).unwrap();
    full.send(0).unwrap();
    let empty = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
    // Two rendezvous channels, so that their sender and receiver do not meet.
    let zero = Channel::<u32>::new(0, Mode::Mpmc).unwrap();
    let zero2 = Channel::<u32>::new(0, Mode::Mpmc).unwrap();
    let wg = WaitGroup::new();
    wg.add(1);
    let token = CancelToken::new();
    let handles = vec![
        {
            let (full, t) = (full.clone(), token.clone());
            thread::spawn(move || {
                let e = full.send_with(7, &WaitOptions::new().cancel(&t)).unwrap_err();
                assert_eq!(e.value, 7, "the value comes back");
                e.error
            })
        },
        {
            let (empty, t) = (empty.clone(), token.clone());
            thread::spawn(move || {
                Select::new().recv(&empty, |r| r.map(|_| ())).wait_with(&WaitOptions::new().cancel(&t)).unwrap_err()
            })
        },
        {
            let (zero, t) = (zero.clone(), token.clone());
            thread::spawn(move || zero.recv_with(&WaitOptions::new().cancel(&t)).unwrap_err())
        },
        {
            let (zero2, t) = (zero2.clone(), token.clone());
            thread::spawn(move || zero2.send_with(5, &WaitOptions::new().cancel(&t)).unwrap_err().error)
        },
        {
            let (wg, t) = (wg.clone(), token.clone());
            thread::spawn(move || wg.wait_with(&WaitOptions::new().cancel(&t)).unwrap_err())
        },
    ];
    thread::sleep(Duration::from_millis(20));
    token.cancel("");
    for h in handles {
        assert_eq!(h.join().unwrap(), Error::Cancelled);
    }
    // Nothing was lost or left behind.
    assert_eq!(full.recv(), Ok(0));
    assert_eq!(full.try_recv(), Err(Error::Empty));
}

#[test]
fn a_select_without_cases_waits_for_its_token_or_deadline() {
    let token = CancelToken::new();
    let canceller = {
        let token = token.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            token.cancel("stop");
        })
    };
    let r = Select::<()>::new().wait_with(&WaitOptions::new().cancel(&token));
    assert_eq!(r, Err(Error::Cancelled));
    canceller.join().unwrap();

    let t0 = Instant::now();
    let r = Select::<()>::new().wait_with(&WaitOptions::new().deadline(t0 + Duration::from_millis(30)));
    assert_eq!(r, Err(Error::Timeout));
    assert!(t0.elapsed() >= Duration::from_millis(30));

    assert!(matches!(Select::<()>::new().wait_with(&WaitOptions::new()), Err(Error::InvalidArgument { .. })));
}
