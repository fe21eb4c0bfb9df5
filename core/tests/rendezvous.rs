//! The rendezvous channel (capacity 0, mode MPMC): a send completes only when
//! a receiver takes the value.

use nimsync_core::{Channel, Error, Mode};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

fn rendezvous<T: Send>() -> Channel<T> {
    Channel::new(0, Mode::Mpmc).unwrap()
}

#[test]
fn nothing_is_buffered() {
    let ch = rendezvous::<u8>();
    assert_eq!((ch.capacity(), ch.len()), (0, 0));
    assert_eq!(ch.try_send(1).unwrap_err().error, Error::Full);
    assert_eq!(ch.try_recv(), Err(Error::Empty));
    let err = ch.send_timeout(2, Duration::from_millis(20)).unwrap_err();
    assert_eq!((err.error, err.value), (Error::Timeout, 2));
    assert_eq!(ch.recv_timeout(Duration::from_millis(20)), Err(Error::Timeout));
}

#[test]
fn a_send_completes_when_a_receiver_takes_it() {
    let ch = rendezvous::<String>();
    let rx = ch.clone();
    let receiver = thread::spawn(move || rx.recv());
    // The receiver is blocked as a want: a non-blocking send now succeeds.
    while ch.waiting().1 == 0 && ch.try_send(String::from("hi")).is_err() {
        thread::yield_now();
    }
    assert_eq!(receiver.join().unwrap().unwrap(), "hi");

    let tx = ch.clone();
    let t0 = Instant::now();
    let sender = thread::spawn(move || tx.send(String::from("there")));
    thread::sleep(Duration::from_millis(30));
    assert!(!sender.is_finished(), "the send waits for a receiver");
    assert_eq!(ch.recv().unwrap(), "there");
    sender.join().unwrap().unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(30));
}

#[test]
fn many_senders_and_receivers_exchange_every_value_once() {
    const PER: u64 = 5_000;
    let ch = rendezvous::<u64>();
    let senders: Vec<_> = (0..3)
        .map(|t| {
            let tx = ch.clone();
            thread::spawn(move || (0..PER).for_each(|i| tx.send(t * PER + i).unwrap()))
        })
        .collect();
    let receivers: Vec<_> = (0..3)
        .map(|_| {
            let rx = ch.clone();
            thread::spawn(move || rx.into_iter().collect::<Vec<u64>>())
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    ch.close();
    let mut all: Vec<u64> = receivers.into_iter().flat_map(|r| r.join().unwrap()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..3 * PER).collect::<Vec<_>>());
}

#[test]
fn close_wakes_blocked_senders_with_their_values_and_receivers() {
    let ch = rendezvous::<String>();
    let tx = ch.clone();
    let sender = thread::spawn(move || tx.send(String::from("kept")));
    let rx = ch.clone();
    ch.close();
    let err = sender.join().unwrap().unwrap_err();
    // Either the close beat the offer or it withdrew it: the value comes back.
    assert_eq!((err.error, err.value.as_str()), (Error::Closed, "kept"));
    let receiver = thread::spawn(move || rx.recv());
    assert_eq!(receiver.join().unwrap(), Err(Error::Closed));
    assert_eq!(ch.try_send(String::new()).unwrap_err().error, Error::Closed);
}

struct Flag(AtomicUsize);
impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

#[test]
fn an_async_send_is_an_offer_that_a_thread_takes() {
    let ch = rendezvous::<u32>();
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    let waker = Waker::from(flag.clone());
    let mut send = ch.send_async(7);
    assert!(poll(&mut send, &waker).is_pending());
    assert_eq!(ch.try_recv(), Ok(7));
    assert_eq!(flag.0.load(Ordering::SeqCst), 1);
    assert!(matches!(poll(&mut send, &waker), Poll::Ready(Ok(()))));
}

#[test]
fn a_dropped_async_send_withdraws_its_offer() {
    let ch = rendezvous::<u32>();
    let waker = Waker::from(Arc::new(Flag(AtomicUsize::new(0))));
    let mut send = ch.send_async(7);
    assert!(poll(&mut send, &waker).is_pending());
    drop(send);
    assert_eq!(ch.try_recv(), Err(Error::Empty));
}

#[test]
fn async_receivers_are_woken_by_offers() {
    let ch = rendezvous::<u32>();
    let flag = Arc::new(Flag(AtomicUsize::new(0)));
    let waker = Waker::from(flag.clone());
    let mut recv = ch.recv_async();
    assert!(poll(&mut recv, &waker).is_pending());
    let tx = ch.clone();
    let sender = thread::spawn(move || tx.send(11));
    while flag.0.load(Ordering::SeqCst) == 0 {
        thread::yield_now();
    }
    assert_eq!(poll(&mut recv, &waker), Poll::Ready(Ok(11)));
    sender.join().unwrap().unwrap();
}

#[test]
fn async_tasks_on_both_ends() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let ch = rendezvous::<u64>();
    let tx = ch.clone();
    let total = rt.block_on(async move {
        let producer = tokio::spawn(async move {
            for i in 0..2_000u64 {
                tx.send_async(i).await.unwrap();
            }
            tx.close();
        });
        let mut sum = 0;
        while let Ok(v) = ch.recv_async().await {
            sum += v;
        }
        producer.await.unwrap();
        sum
    });
    assert_eq!(total, (0..2_000u64).sum::<u64>());
}
