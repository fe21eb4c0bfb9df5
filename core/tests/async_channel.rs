//! Channels awaited from async tasks: waking, cancellation without loss, and
//! the loop waker's readiness descriptor.

use nimsync_core::{Channel, Error, LoopWaker, Mode};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

/// A waker that counts its wake-ups.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

#[test]
fn a_pending_receive_is_woken_by_a_send_and_completes() {
    for mode in Mode::ALL {
        let ch = Channel::new(4, mode).unwrap();
        let (count, waker) = counting();
        let mut recv = ch.recv_async();
        assert!(poll(&mut recv, &waker).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        ch.send(9).unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "{mode}: exactly one wake-up");
        assert_eq!(poll(&mut recv, &waker), Poll::Ready(Ok(9)));
    }
}

#[test]
fn a_pending_send_is_woken_when_a_slot_frees() {
    let ch = Channel::new(1, Mode::Mpmc).unwrap();
    ch.send(1).unwrap();
    let (count, waker) = counting();
    let mut send = ch.send_async(2);
    assert!(poll(&mut send, &waker).is_pending());
    assert_eq!(ch.recv(), Ok(1));
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll(&mut send, &waker), Poll::Ready(Ok(()))));
    assert_eq!(ch.recv(), Ok(2));
}

#[test]
fn close_wakes_pending_futures() {
    let ch = Channel::<u8>::new(1, Mode::Mpmc).unwrap();
    let (count, waker) = counting();
    let mut recv = ch.recv_async();
    assert!(poll(&mut recv, &waker).is_pending());
    ch.close();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut recv, &waker), Poll::Ready(Err(Error::Closed)));
    let err = match poll(&mut ch.send_async(3), &waker) {
        Poll::Ready(Err(e)) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!((err.error, err.value), (Error::Closed, 3));
}

#[test]
fn dropping_a_woken_receive_passes_the_wake_up_on() {
    let ch = Channel::new(8, Mode::Mpmc).unwrap();
    let (first_count, first_waker) = counting();
    let (second_count, second_waker) = counting();
    let mut first = ch.recv_async();
    let mut second = ch.recv_async();
    assert!(poll(&mut first, &first_waker).is_pending());
    assert!(poll(&mut second, &second_waker).is_pending());
    ch.send("item").unwrap();
    // One item, one wake-up: the oldest waiter.
    assert_eq!(first_count.0.load(Ordering::SeqCst), 1);
    assert_eq!(second_count.0.load(Ordering::SeqCst), 0);
    // The first task is cancelled before it takes the item...
    drop(first);
    // ...so the second is woken in its place, and the item is not lost.
    assert_eq!(second_count.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut second, &second_waker), Poll::Ready(Ok("item")));
}

#[test]
fn dropping_an_unwoken_future_unregisters_it() {
    let ch = Channel::<u32>::new(8, Mode::Mpsc).unwrap();
    let (_, waker) = counting();
    let mut recv = ch.recv_async();
    assert!(poll(&mut recv, &waker).is_pending());
    assert_eq!(ch.waiting(), (0, 1));
    drop(recv);
    assert_eq!(ch.waiting(), (0, 0));
}

#[test]
fn loop_waker_reports_tokens_and_clears_its_descriptor() {
    let lw = LoopWaker::new().unwrap();
    let fd = lw.fd();
    let readable = || {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one live pollfd, zero timeout.
        unsafe { libc::poll(&mut p, 1, 0) == 1 }
    };
    assert!(!readable());
    let ch = Channel::new(2, Mode::Spsc).unwrap();
    let mut a = ch.recv_async();
    assert!(poll(&mut a, &lw.waker(41)).is_pending());
    assert!(!readable(), "registering writes nothing");
    ch.send(1).unwrap();
    assert!(readable());
    assert_eq!(lw.drain(), vec![41]);
    assert!(!readable());
    assert_eq!(poll(&mut a, &lw.waker(41)), Poll::Ready(Ok(1)));
    // Several wake-ups before a drain: one write, all tokens.
    lw.wake(1);
    lw.wake(2);
    assert!(readable());
    assert_eq!(lw.drain(), vec![1, 2]);
    assert_eq!(lw.drain(), Vec::<u64>::new());
}

#[test]
fn tokio_tasks_and_threads_share_a_channel() {
    const N: u64 = 20_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let ch = Channel::new(16, Mode::Mpmc).unwrap();
    // Two threads send with blocking calls; two tasks receive with futures.
    let senders: Vec<_> = (0..2)
        .map(|t| {
            let tx = ch.clone();
            thread::spawn(move || {
                for i in 0..N {
                    tx.send(t * N + i).unwrap();
                }
            })
        })
        .collect();
    let receivers: Vec<_> = (0..2)
        .map(|_| {
            let rx = ch.clone();
            rt.spawn(async move {
                let mut sum = 0u64;
                let mut n = 0u64;
                while let Ok(v) = rx.recv_async().await {
                    sum += v;
                    n += 1;
                }
                (n, sum)
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    ch.close();
    let (n, sum) = rt.block_on(async {
        let mut total = (0, 0);
        for r in receivers {
            let (n, s) = r.await.unwrap();
            total = (total.0 + n, total.1 + s);
        }
        total
    });
    assert_eq!(n, 2 * N);
    assert_eq!(sum, (0..2 * N).sum::<u64>());
}

#[test]
fn cancelled_tokio_receives_lose_no_item() {
    // Receivers that time out (their future is dropped) while items arrive:
    // every item is still received by someone.
    const N: u64 = 5_000;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap();
    let ch = Channel::new(4, Mode::Mpmc).unwrap();
    let tx = ch.clone();
    let sender = thread::spawn(move || {
        for i in 0..N {
            tx.send(i).unwrap();
            if i % 64 == 0 {
                thread::sleep(Duration::from_micros(50));
            }
        }
        tx.close();
    });
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let rx = ch.clone();
            rt.spawn(async move {
                let mut got = Vec::new();
                loop {
                    match tokio::time::timeout(Duration::from_micros(30), rx.recv_async()).await {
                        Ok(Ok(v)) => got.push(v),
                        Ok(Err(_)) => break,
                        Err(_elapsed) => continue, // the receive was cancelled
                    }
                }
                got
            })
        })
        .collect();
    sender.join().unwrap();
    let mut all: Vec<u64> = rt.block_on(async {
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>());
}

#[test]
fn wait_group_wakes_threads_and_tasks_at_zero() {
    use nimsync_core::WaitGroup;
    let wg = WaitGroup::new();
    assert!(matches!(wg.done(), Err(Error::InvalidArgument { .. })));
    wg.add(2);
    let (count, waker) = counting();
    let mut fut = wg.wait_async();
    assert!(poll(&mut fut, &waker).is_pending());
    let w2 = wg.clone();
    let blocked = thread::spawn(move || w2.wait());
    wg.done().unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert_eq!(
        wg.wait_with(&nimsync_core::WaitOptions::new().deadline(std::time::Instant::now())),
        Err(Error::Timeout)
    );
    wg.done().unwrap();
    blocked.join().unwrap();
    assert_eq!(count.0.load(Ordering::SeqCst), 1);
    assert!(poll(&mut fut, &waker).is_ready());
}
