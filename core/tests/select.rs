//! `Select`: one of several operations, fairly, blocking without polling.

use nimsync_core::{Channel, Error, Mode, Select};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq)]
enum Got {
    A(Result<u32, Error>),
    B(Result<u32, Error>),
    Sent(Result<(), Error>),
}

#[test]
fn a_ready_case_completes_and_default_when_none() {
    let a = Channel::new(4, Mode::Mpmc).unwrap();
    let b = Channel::new(4, Mode::Mpmc).unwrap();
    let none = Select::new().recv(&a, Got::A).recv(&b, Got::B).try_select();
    assert_eq!(none, None);
    b.send(2).unwrap();
    assert_eq!(Select::new().recv(&a, Got::A).recv(&b, Got::B).wait(), Got::B(Ok(2)));
    assert_eq!(Select::new().recv(&a, Got::A).recv(&b, Got::B).try_select(), None);
}

#[test]
fn a_blocked_select_wakes_for_the_channel_that_gets_an_item() {
    for which in [0, 1] {
        let a = Channel::new(4, Mode::Mpsc).unwrap();
        let b = Channel::new(4, Mode::Spsc).unwrap();
        let (a2, b2) = (a.clone(), b.clone());
        let t = thread::spawn(move || Select::new().recv(&a2, Got::A).recv(&b2, Got::B).wait());
        while a.waiting().1 + b.waiting().1 < 2 {
            thread::yield_now();
        }
        if which == 0 {
            a.send(10).unwrap();
            assert_eq!(t.join().unwrap(), Got::A(Ok(10)));
        } else {
            b.send(20).unwrap();
            assert_eq!(t.join().unwrap(), Got::B(Ok(20)));
        }
        // The select left no registration behind.
        assert_eq!((a.waiting(), b.waiting()), ((0, 0), (0, 0)));
    }
}

#[test]
fn send_cases_wait_for_space() {
    let full = Channel::new(1, Mode::Mpmc).unwrap();
    full.send(1).unwrap();
    let empty = Channel::<u32>::new(1, Mode::Mpmc).unwrap();
    let (f2, e2) = (full.clone(), empty.clone());
    let t = thread::spawn(move || {
        Select::new().send(&f2, 2, |r| Got::Sent(r.map_err(|e| e.error))).recv(&e2, Got::B).wait()
    });
    while full.waiting().0 == 0 {
        thread::yield_now();
    }
    assert_eq!(full.recv(), Ok(1));
    assert_eq!(t.join().unwrap(), Got::Sent(Ok(())));
    assert_eq!(full.recv(), Ok(2));
}

#[test]
fn timeouts_and_closed_cases() {
    let a = Channel::<u32>::new(4, Mode::Mpmc).unwrap();
    let t0 = Instant::now();
    let r = Select::new().recv(&a, Got::A).wait_timeout(Duration::from_millis(40));
    assert_eq!(r, Err(Error::Timeout));
    assert!(t0.elapsed() >= Duration::from_millis(40));
    a.close();
    assert_eq!(Select::new().recv(&a, Got::A).wait(), Got::A(Err(Error::Closed)));
    let handed_back = Select::new().send(&a, 5, |r| r.unwrap_err().into_inner()).wait();
    assert_eq!(handed_back, 5);
    assert!(matches!(Select::<()>::new().wait_with(&Default::default()), Err(Error::InvalidArgument { .. })));
}

#[test]
fn fairness_over_100_000_rounds() {
    const ROUNDS: usize = 100_000;
    let a = Channel::new(2, Mode::Mpmc).unwrap();
    let b = Channel::new(2, Mode::Mpmc).unwrap();
    a.send(0).unwrap();
    b.send(0).unwrap();
    let (mut na, mut nb) = (0usize, 0usize);
    for _ in 0..ROUNDS {
        // Both cases are always ready; refill whichever was taken.
        match Select::new().recv(&a, Got::A).recv(&b, Got::B).wait() {
            Got::A(_) => {
                na += 1;
                a.send(0).unwrap();
            }
            Got::B(_) => {
                nb += 1;
                b.send(0).unwrap();
            }
            Got::Sent(_) => unreachable!(),
        }
    }
    let fair = ROUNDS / 2;
    assert!(na * 10 >= fair * 4 && nb * 10 >= fair * 4, "a {na}, b {nb}");
}

#[test]
fn one_selecting_consumer_receives_everything_from_many_channels() {
    const PER: u32 = 20_000;
    let chans: Vec<Channel<u32>> = (0..3).map(|_| Channel::new(8, Mode::Spsc).unwrap()).collect();
    let producers: Vec<_> = chans
        .iter()
        .enumerate()
        .map(|(k, ch)| {
            let tx = ch.clone();
            thread::spawn(move || {
                for i in 0..PER {
                    tx.send(k as u32 * PER + i).unwrap();
                }
                tx.close();
            })
        })
        .collect();
    let mut got = Vec::new();
    let mut open = [true; 3];
    while open.iter().any(|&o| o) {
        let (k, r) =
            Select::new().recv(&chans[0], |r| (0, r)).recv(&chans[1], |r| (1, r)).recv(&chans[2], |r| (2, r)).wait();
        match r {
            Ok(v) => got.push(v),
            Err(Error::Closed) => open[k] = false,
            Err(e) => panic!("{e}"),
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    got.sort_unstable();
    assert_eq!(got, (0..3 * PER).collect::<Vec<_>>());
}

#[test]
fn select_over_rendezvous_and_unbounded_channels() {
    let rv = Channel::<u32>::new(0, Mode::Mpmc).unwrap();
    let ub = Channel::<u32>::unbounded();
    let tx = rv.clone();
    let sender = thread::spawn(move || tx.send(7));
    let got = Select::new().recv(&rv, Got::A).recv(&ub, Got::B).wait();
    assert_eq!(got, Got::A(Ok(7)));
    sender.join().unwrap().unwrap();
    ub.send(8).unwrap();
    assert_eq!(Select::new().recv(&rv, Got::A).recv(&ub, Got::B).wait(), Got::B(Ok(8)));
}
