//! Semantics of `Channel` and `spsc::channel`: capacity, errors with values
//! handed back, close, timeouts, exactly-once delivery under concurrency, and
//! dropping of leftovers.

use nimsync_core::{spsc, Channel, Error, Mode, MAX_CAPACITY};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const MODES: [Mode; 4] = Mode::ALL;

#[test]
fn capacity_rounds_up_to_power_of_two() {
    assert_eq!(Channel::<u8>::new(0, Mode::Mpmc).unwrap().capacity(), 0);
    for mode in MODES {
        for (asked, got) in [(1, 1), (2, 2), (3, 4), (5, 8), (1000, 1024), (1024, 1024)] {
            assert_eq!(Channel::<u8>::new(asked, mode).unwrap().capacity(), got, "{mode} {asked}");
        }
    }
}

#[test]
fn bad_capacities_are_rejected_with_a_named_argument() {
    for mode in MODES {
        let zero_ok = mode == Mode::Mpmc; // capacity 0 is a rendezvous channel
        for cap in [0, MAX_CAPACITY + 1, usize::MAX, (-5isize) as usize] {
            if cap == 0 && zero_ok {
                continue;
            }
            match Channel::<u8>::new(cap, mode) {
                Err(e @ Error::InvalidArgument { name: "capacity", .. }) => {
                    assert!(e.to_string().contains("capacity"), "{e}")
                }
                other => panic!("capacity {cap}: expected InvalidArgument, got {other:?}"),
            }
        }
    }
    assert!(matches!(spsc::channel::<u8>(0), Err(Error::InvalidArgument { .. })));
    assert!("ring".parse::<Mode>().is_err());
}

#[test]
fn full_and_empty_hand_values_back() {
    for mode in MODES {
        let ch = Channel::new(2, mode).unwrap();
        assert_eq!(ch.try_recv(), Err(Error::Empty));
        ch.try_send(String::from("a")).unwrap();
        ch.try_send(String::from("b")).unwrap();
        assert!(ch.is_full());
        let err = ch.try_send(String::from("c")).unwrap_err();
        assert_eq!(err.error, Error::Full);
        assert_eq!(err.into_inner(), "c");
        assert_eq!(ch.len(), 2);
        assert_eq!(ch.try_recv().unwrap(), "a");
        assert_eq!(ch.try_recv().unwrap(), "b");
        assert!(ch.is_empty());
    }
}

#[test]
fn capacity_one_holds_exactly_one_item() {
    for mode in MODES {
        let ch = Channel::new(1, mode).unwrap();
        for round in 0..100 {
            ch.try_send(round).unwrap();
            assert_eq!(ch.try_send(-1).unwrap_err().error, Error::Full, "{mode}");
            assert_eq!(ch.try_recv(), Ok(round));
            assert_eq!(ch.try_recv(), Err(Error::Empty));
        }
    }
}

#[test]
fn close_drains_then_reports_closed() {
    for mode in MODES {
        let ch = Channel::new(4, mode).unwrap();
        ch.send(1).unwrap();
        ch.send(2).unwrap();
        assert!(ch.close());
        assert!(!ch.close(), "second close reports it was already closed");
        assert!(ch.is_closed());
        let err = ch.send(3).unwrap_err();
        assert_eq!((err.error.clone(), err.value), (Error::Closed, 3));
        assert_eq!(ch.try_send(4).unwrap_err().error, Error::Closed);
        assert_eq!(ch.recv(), Ok(1));
        assert_eq!(ch.try_recv(), Ok(2));
        assert_eq!(ch.recv(), Err(Error::Closed));
        assert_eq!(ch.try_recv(), Err(Error::Closed));
        assert_eq!(ch.recv_timeout(Duration::from_millis(1)), Err(Error::Closed));
    }
}

#[test]
fn close_wakes_a_blocked_receiver() {
    for mode in MODES {
        let ch = Channel::<u32>::new(4, mode).unwrap();
        let rx = ch.clone();
        let t = thread::spawn(move || rx.recv());
        // Wait until the receiver is really parked, then close.
        while ch.waiting().1 == 0 {
            thread::yield_now();
        }
        ch.close();
        assert_eq!(t.join().unwrap(), Err(Error::Closed), "{mode}");
    }
}

#[test]
fn close_wakes_a_blocked_sender_and_hands_its_value_back() {
    for mode in MODES {
        let ch = Channel::new(1, mode).unwrap();
        ch.send(String::from("first")).unwrap();
        let tx = ch.clone();
        let t = thread::spawn(move || tx.send(String::from("second")));
        while ch.waiting().0 == 0 {
            thread::yield_now();
        }
        ch.close();
        let err = t.join().unwrap().unwrap_err();
        assert_eq!(err.error, Error::Closed);
        assert_eq!(err.value, "second");
        assert_eq!(ch.recv().unwrap(), "first");
        assert_eq!(ch.recv(), Err(Error::Closed));
    }
}

#[test]
fn timeouts_fire_and_hand_values_back() {
    for mode in MODES {
        let ch = Channel::new(1, mode).unwrap();
        let t0 = Instant::now();
        assert_eq!(ch.recv_timeout(Duration::from_millis(30)), Err(Error::Timeout));
        assert!(t0.elapsed() >= Duration::from_millis(30));
        ch.send(1u8).unwrap();
        let t0 = Instant::now();
        let err = ch.send_timeout(2, Duration::from_millis(30)).unwrap_err();
        assert!(t0.elapsed() >= Duration::from_millis(30));
        assert_eq!((err.error, err.value), (Error::Timeout, 2));
        // A deadline in the past is one attempt.
        assert_eq!(ch.send_deadline(3, Instant::now()).unwrap_err().error, Error::Timeout);
        assert_eq!(ch.recv_deadline(Instant::now()), Ok(1));
    }
}

#[test]
fn blocked_receiver_wakes_when_an_item_arrives() {
    for mode in MODES {
        let ch = Channel::new(8, mode).unwrap();
        let rx = ch.clone();
        let t = thread::spawn(move || rx.recv());
        while ch.waiting().1 == 0 {
            thread::yield_now();
        }
        ch.send(7u64).unwrap();
        assert_eq!(t.join().unwrap(), Ok(7));
    }
}

#[test]
fn spsc_delivers_in_order_exactly_once() {
    const N: u64 = 1_000_000;
    let ch = Channel::new(64, Mode::Spsc).unwrap();
    let tx = ch.clone();
    let producer = thread::spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
        }
        tx.close();
    });
    let mut expected = 0;
    for v in ch {
        assert_eq!(v, expected);
        expected += 1;
    }
    producer.join().unwrap();
    assert_eq!(expected, N);
}

#[test]
fn mpsc_delivers_every_item_once_in_per_producer_order() {
    const PRODUCERS: u64 = 4;
    const PER: u64 = 100_000;
    let ch = Channel::new(32, Mode::Mpsc).unwrap();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let tx = ch.clone();
            thread::spawn(move || {
                for i in 0..PER {
                    tx.send((p, i)).unwrap();
                }
            })
        })
        .collect();
    let mut next = [0u64; PRODUCERS as usize];
    for _ in 0..PRODUCERS * PER {
        let (p, i) = ch.recv().unwrap();
        assert_eq!(i, next[p as usize], "producer {p} out of order");
        next[p as usize] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert!(next.iter().all(|&n| n == PER));
    assert_eq!(ch.try_recv(), Err(Error::Empty));
}

#[test]
fn a_single_thread_side_can_change_hands_between_threads() {
    // Sequential use of the one-sender side by different threads is legal.
    let ch = Channel::new(1024, Mode::Spsc).unwrap();
    for t in 0..8u32 {
        let tx = ch.clone();
        thread::spawn(move || {
            for i in 0..100 {
                tx.send(t * 100 + i).unwrap();
            }
        })
        .join()
        .unwrap();
    }
    let got: Vec<u32> = (0..800).map(|_| ch.recv().unwrap()).collect();
    assert_eq!(got, (0..800).collect::<Vec<_>>());
}

#[test]
fn concurrent_senders_on_spsc_get_busy_never_corruption() {
    // Two threads hammering the one-sender side: every send either succeeds
    // or is refused with Busy/Full; what was accepted arrives exactly once.
    let ch = Channel::new(1 << 16, Mode::Spsc).unwrap();
    let start = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2u64)
        .map(|t| {
            let tx = ch.clone();
            let start = start.clone();
            thread::spawn(move || {
                start.wait();
                let mut accepted = Vec::new();
                for i in 0..20_000u64 {
                    match tx.try_send(t << 32 | i) {
                        Ok(()) => accepted.push(t << 32 | i),
                        Err(e) => assert!(matches!(e.error, Error::Busy(_) | Error::Full), "{:?}", e.error),
                    }
                }
                accepted
            })
        })
        .collect();
    let mut accepted: Vec<u64> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let mut received: Vec<u64> = ch.drain().collect();
    accepted.sort_unstable();
    received.sort_unstable();
    assert_eq!(accepted, received);
}

struct Counted(Arc<AtomicUsize>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn leftovers_are_dropped_with_the_last_handle() {
    for mode in MODES {
        let drops = Arc::new(AtomicUsize::new(0));
        let ch = Channel::new(8, mode).unwrap();
        for _ in 0..5 {
            ch.send(Counted(drops.clone())).unwrap();
        }
        drop(ch.recv().unwrap());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let other = ch.clone();
        drop(ch);
        assert_eq!(drops.load(Ordering::SeqCst), 1, "a handle is still alive");
        drop(other);
        assert_eq!(drops.load(Ordering::SeqCst), 5);
    }
}

#[test]
fn split_spsc_closes_when_an_end_is_dropped() {
    let (tx, rx) = spsc::channel(4).unwrap();
    tx.send(1).unwrap();
    drop(tx);
    assert_eq!(rx.recv(), Ok(1));
    assert_eq!(rx.recv(), Err(Error::Closed));

    let (tx, rx) = spsc::channel(4).unwrap();
    drop(rx);
    assert_eq!(tx.send(5).unwrap_err().into_inner(), 5);
}

#[test]
fn split_spsc_blocks_and_wakes() {
    const N: u64 = 200_000;
    let (tx, rx) = spsc::channel(16).unwrap();
    let t = thread::spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
        }
    });
    let got: u64 = rx.into_iter().sum();
    t.join().unwrap();
    assert_eq!(got, N * (N - 1) / 2);
}

/// The number of senders and receivers each mode allows at once.
fn parties(mode: Mode) -> (u64, u64) {
    match mode {
        Mode::Spsc => (1, 1),
        Mode::Mpsc => (4, 1),
        Mode::Spmc => (1, 4),
        _ => (3, 3),
    }
}

#[test]
fn every_mode_delivers_exactly_once_with_n_producers_and_m_consumers() {
    const PER_PRODUCER: u64 = 50_000;
    let unbounded = || Channel::unbounded();
    let rendezvous = || Channel::new(0, Mode::Mpmc).unwrap();
    type Make = Box<dyn Fn() -> Channel<(u64, u64)>>;
    let cases: Vec<(&str, Mode, Make)> = MODES
        .into_iter()
        .map(|m| (m.name(), m, Box::new(move || Channel::new(16, m).unwrap()) as Make))
        .chain([
            ("unbounded", Mode::Mpmc, Box::new(unbounded) as Make),
            ("rendezvous", Mode::Mpmc, Box::new(rendezvous) as Make),
        ])
        .collect();
    for (mode, kind, make) in cases {
        let (producers, consumers) = parties(kind);
        let ch = make();
        let senders: Vec<_> = (0..producers)
            .map(|p| {
                let tx = ch.clone();
                thread::spawn(move || {
                    for i in 0..PER_PRODUCER {
                        tx.send((p, i)).unwrap();
                    }
                })
            })
            .collect();
        let receivers: Vec<_> = (0..consumers)
            .map(|_| {
                let rx = ch.clone();
                thread::spawn(move || {
                    // Per producer: how many this consumer saw, and the last index,
                    // which must only grow (FIFO per producer).
                    let mut seen = vec![(0u64, None::<u64>); producers as usize];
                    for (p, i) in rx {
                        let (count, last) = &mut seen[p as usize];
                        assert!(last.is_none_or(|l| l < i), "{mode}: producer {p} went backwards");
                        *last = Some(i);
                        *count += 1;
                    }
                    seen
                })
            })
            .collect();
        for s in senders {
            s.join().unwrap();
        }
        ch.close();
        let mut totals = vec![0u64; producers as usize];
        for r in receivers {
            for (p, (count, _)) in r.join().unwrap().into_iter().enumerate() {
                totals[p] += count;
            }
        }
        assert!(totals.iter().all(|&t| t == PER_PRODUCER), "{mode}: {totals:?}");
    }
}

#[test]
fn unbounded_grows_shrinks_and_drains() {
    let ch = Channel::unbounded();
    assert!(ch.is_unbounded());
    assert_eq!(ch.capacity(), usize::MAX);
    for i in 0..10_000u32 {
        ch.try_send(i).unwrap();
    }
    assert_eq!(ch.len(), 10_000);
    assert!(!ch.is_full());
    for i in 0..5_000 {
        assert_eq!(ch.try_recv(), Ok(i));
    }
    assert_eq!(ch.len(), 5_000);
    ch.close();
    assert_eq!(ch.try_send(1).unwrap_err().error, Error::Closed);
    let rest: Vec<u32> = ch.clone().into_iter().collect();
    assert_eq!(rest, (5_000..10_000).collect::<Vec<_>>());
    assert_eq!(ch.recv(), Err(Error::Closed));
}

#[test]
fn unbounded_drops_leftovers_across_blocks() {
    let drops = Arc::new(AtomicUsize::new(0));
    let ch = Channel::unbounded();
    for _ in 0..100 {
        ch.send(Counted(drops.clone())).unwrap();
    }
    for _ in 0..40 {
        drop(ch.recv().unwrap());
    }
    assert_eq!(drops.load(Ordering::SeqCst), 40);
    drop(ch);
    assert_eq!(drops.load(Ordering::SeqCst), 100);
}
