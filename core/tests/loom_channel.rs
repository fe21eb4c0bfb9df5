//! loom models of the channel protocols: the SPSC ring, the MPSC stamped
//! queue, the biased side guard, close, and waiter registration/wake-up.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p nimsync-core --test
//! loom_channel --release` (`make loom`). Under loom the asymmetric barriers
//! are `fence(SeqCst)` on both sides, which is what membarrier provides.
#![cfg(loom)]

use loom::thread;
use nimsync_core::{Channel, Error, Mode};

/// Runs `f` under loom. Threads that wait in nimsync may receive a late
/// (harmless) unpark; loom 0.7 aborts when such an unpark reaches a thread
/// blocked in `join` (tokio-rs/loom#249), so every model runs its waiting
/// threads as spawned threads and lets only the untouched main thread join.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// A sender blocks on a full channel and a receiver blocks on an empty one;
/// every item arrives once, in order, then `Closed`.
fn blocking_send_recv_close(mode: Mode) {
    model(move || {
        let ch = Channel::new(1, mode).unwrap();
        let tx = ch.clone();
        let producer = thread::spawn(move || {
            tx.send(1).unwrap();
            tx.send(2).unwrap();
            tx.close();
        });
        let consumer = thread::spawn(move || {
            assert_eq!(ch.recv(), Ok(1));
            assert_eq!(ch.recv(), Ok(2));
            assert_eq!(ch.recv(), Err(Error::Closed));
        });
        producer.join().unwrap();
        consumer.join().unwrap();
    });
}

#[test]
fn spsc_blocking_send_recv_close() {
    blocking_send_recv_close(Mode::Spsc);
}

#[test]
fn mpsc_blocking_send_recv_close() {
    blocking_send_recv_close(Mode::Mpsc);
}

#[test]
fn spmc_blocking_send_recv_close() {
    blocking_send_recv_close(Mode::Spmc);
}

#[test]
fn mpmc_blocking_send_recv_close() {
    blocking_send_recv_close(Mode::Mpmc);
}

/// Two receivers compete for two items; each item goes to exactly one.
fn two_consumers(mode: Mode) {
    model(move || {
        let ch = Channel::new(2, mode).unwrap();
        let a = ch.clone();
        let b = ch.clone();
        let ra = thread::spawn(move || a.recv().unwrap());
        let rb = thread::spawn(move || b.recv().unwrap());
        let tx = thread::spawn(move || {
            ch.send(1).unwrap();
            ch.send(2).unwrap();
        });
        tx.join().unwrap();
        let mut got = [ra.join().unwrap(), rb.join().unwrap()];
        got.sort();
        assert_eq!(got, [1, 2]);
    });
}

#[test]
fn spmc_two_consumers() {
    two_consumers(Mode::Spmc);
}

#[test]
fn mpmc_two_consumers() {
    two_consumers(Mode::Mpmc);
}

#[test]
fn mpsc_two_producers_one_consumer() {
    model(|| {
        let ch = Channel::new(1, Mode::Mpsc).unwrap();
        let a = ch.clone();
        let b = ch.clone();
        let ta = thread::spawn(move || a.send(1).unwrap());
        let tb = thread::spawn(move || b.send(2).unwrap());
        let consumer = thread::spawn(move || {
            let x = ch.recv().unwrap();
            let y = ch.recv().unwrap();
            assert_eq!(x + y, 3);
            ch
        });
        ta.join().unwrap();
        tb.join().unwrap();
        let ch = consumer.join().unwrap();
        assert_eq!(ch.try_recv(), Err(Error::Empty));
    });
}

/// A send racing with close either lands before the close (and is received
/// before `Closed`) or fails with `Closed` and hands the value back.
fn send_races_close(mode: Mode) {
    model(move || {
        let ch = Channel::new(2, mode).unwrap();
        let tx = ch.clone();
        let closer = ch.clone();
        let sender = thread::spawn(move || tx.try_send(7).map_err(|e| (e.error, e.value)));
        let closing = thread::spawn(move || closer.close());
        let receiver = thread::spawn(move || ch.recv());
        let got = receiver.join().unwrap();
        let sent = sender.join().unwrap();
        assert!(closing.join().unwrap());
        match sent {
            // Accepted before the close: receivers drain it before `Closed`.
            Ok(()) => assert_eq!(got, Ok(7)),
            Err((e, v)) => {
                assert_eq!((e, v), (Error::Closed, 7));
                assert_eq!(got, Err(Error::Closed));
            }
        }
    });
}

#[test]
fn spsc_send_races_close() {
    send_races_close(Mode::Spsc);
}

#[test]
fn mpsc_send_races_close() {
    send_races_close(Mode::Mpsc);
}

#[test]
fn spmc_send_races_close() {
    send_races_close(Mode::Spmc);
}

/// Two threads using the one-sender side of SPSC at once: each send either
/// succeeds or gets `Busy`; what was accepted is received exactly once.
#[test]
fn spsc_side_guard_takeover() {
    model(|| {
        let ch = Channel::new(4, Mode::Spsc).unwrap();
        let a = ch.clone();
        let b = ch.clone();
        let ta = thread::spawn(move || a.try_send(1).is_ok() as u32);
        let tb = thread::spawn(move || b.try_send(2).is_ok() as u32 * 2);
        let accepted = ta.join().unwrap() + tb.join().unwrap();
        let mut received = 0;
        while let Ok(v) = ch.try_recv() {
            received += v;
        }
        assert_eq!(received, accepted);
    });
}

/// A waker that unparks a loom thread.
struct Unpark(loom::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// An async receive registers its waker while a thread sends: the task is
/// woken (no lost wake-up) and receives the item.
#[test]
fn async_receive_is_woken() {
    use std::future::Future;
    model(|| {
        let ch = Channel::new(1, Mode::Mpsc).unwrap();
        let tx = ch.clone();
        let task = thread::spawn(move || {
            let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(thread::current())));
            let mut cx = std::task::Context::from_waker(&waker);
            let mut recv = ch.recv_async();
            loop {
                match std::pin::Pin::new(&mut recv).poll(&mut cx) {
                    std::task::Poll::Ready(v) => return v,
                    std::task::Poll::Pending => thread::park(),
                }
            }
        });
        let sender = thread::spawn(move || tx.send(5).unwrap());
        sender.join().unwrap();
        assert_eq!(task.join().unwrap(), Ok(5));
    });
}

/// Rendezvous: two blocked senders and a receiver; each value handed over once.
#[test]
fn rendezvous_handover() {
    model(|| {
        let ch = Channel::new(0, Mode::Mpmc).unwrap();
        let a = ch.clone();
        let b = ch.clone();
        let ta = thread::spawn(move || a.send(1).unwrap());
        let tb = thread::spawn(move || b.send(2).unwrap());
        let rx = thread::spawn(move || ch.recv().unwrap() + ch.recv().unwrap());
        ta.join().unwrap();
        tb.join().unwrap();
        assert_eq!(rx.join().unwrap(), 3);
    });
}

/// Rendezvous: close while a sender waits gives its value back; a receiver
/// racing the close gets the value or Closed, never both.
#[test]
fn rendezvous_close() {
    model(|| {
        let ch = Channel::new(0, Mode::Mpmc).unwrap();
        let tx = ch.clone();
        let rx = ch.clone();
        let sender = thread::spawn(move || tx.send(9).map_err(|e| (e.error, e.value)));
        let receiver = thread::spawn(move || rx.recv());
        let closer = thread::spawn(move || ch.close());
        let sent = sender.join().unwrap();
        let got = receiver.join().unwrap();
        closer.join().unwrap();
        match sent {
            Ok(()) => assert_eq!(got, Ok(9)),
            Err(e) => {
                assert_eq!(e, (Error::Closed, 9));
                assert_eq!(got, Err(Error::Closed));
            }
        }
    });
}

/// Unbounded list: a sender fills past a block boundary (blocks hold two
/// values under loom) while a receiver drains; every value arrives once, in
/// order, and every block is freed exactly once (loom checks the frees).
#[test]
fn unbounded_list_blocks() {
    model(|| {
        let ch = Channel::unbounded();
        let tx = ch.clone();
        let sender = thread::spawn(move || {
            for i in 1..=3 {
                tx.send(i).unwrap();
            }
        });
        let receiver = thread::spawn(move || [ch.recv().unwrap(), ch.recv().unwrap(), ch.recv().unwrap()]);
        sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), [1, 2, 3]);
    });
}

/// Unbounded list: two receivers race for the two values of one block.
#[test]
fn unbounded_list_two_receivers() {
    model(|| {
        let ch = Channel::unbounded();
        ch.send(1).unwrap();
        ch.send(2).unwrap();
        ch.close();
        let a = ch.clone();
        let ra = thread::spawn(move || a.recv().unwrap());
        let rb = thread::spawn(move || ch.recv().unwrap());
        assert_eq!(ra.join().unwrap() + rb.join().unwrap(), 3);
    });
}

/// Select registers one context in two queues; two senders each wake it for
/// their own channel; both values arrive, none twice.
#[test]
fn select_over_two_channels() {
    model(|| {
        let a = Channel::new(1, Mode::Mpsc).unwrap();
        let b = Channel::new(1, Mode::Mpsc).unwrap();
        let (ta, tb) = (a.clone(), b.clone());
        let sa = thread::spawn(move || ta.send(1).unwrap());
        let sb = thread::spawn(move || tb.send(2).unwrap());
        let selector = thread::spawn(move || {
            let one = nimsync_core::Select::new().recv(&a, |r| r.unwrap()).recv(&b, |r| r.unwrap()).wait();
            let two = nimsync_core::Select::new().recv(&a, |r| r.unwrap()).recv(&b, |r| r.unwrap()).wait();
            one + two
        });
        sa.join().unwrap();
        sb.join().unwrap();
        assert_eq!(selector.join().unwrap(), 3);
    });
}
