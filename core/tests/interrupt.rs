//! The interrupt hook: a signal that wakes a blocked thread asks the hook
//! whether to stop; stopping ends the wait with `Interrupted`, hands a send's
//! value back, and takes nothing from the channel.

use nimsync_core::{Channel, Error, Mode, Select, WaitOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;

extern "C" fn on_signal(_: libc::c_int) {}

fn install_handler() {
    // SAFETY: installs a handler that does nothing, without SA_RESTART, so a
    // blocked futex wait returns EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        sa.sa_flags = 0;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
}

/// Runs `op` on a thread with a hook that counts calls and says stop; sends
/// SIGUSR1 until the thread is back.
fn interrupted<R: Send + 'static>(op: impl FnOnce(&WaitOptions<'_>) -> R + Send + 'static) -> (R, usize) {
    install_handler();
    let (tx, rx) = mpsc::channel();
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let t = thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        tx.send(unsafe { libc::pthread_self() }).unwrap();
        let hook = || {
            c2.fetch_add(1, Ordering::SeqCst);
            true
        };
        op(&WaitOptions::new().interrupt(&hook))
    });
    let id = rx.recv().unwrap();
    while !t.is_finished() {
        // SAFETY: the thread is alive until `is_finished`; SIGUSR1 has a handler.
        unsafe { libc::pthread_kill(id, libc::SIGUSR1) };
        thread::sleep(std::time::Duration::from_millis(5));
    }
    (t.join().unwrap(), calls.load(Ordering::SeqCst))
}

#[test]
fn a_blocked_receive_is_interrupted_and_takes_nothing() {
    let ch = Channel::<u32>::new(4, Mode::Mpmc).unwrap();
    let rx = ch.clone();
    let (r, calls) = interrupted(move |o| rx.recv_with(o));
    assert_eq!(r, Err(Error::Interrupted));
    assert!(calls >= 1);
    ch.send(1).unwrap();
    assert_eq!(ch.recv(), Ok(1));
    assert_eq!(ch.waiting(), (0, 0));
}

#[test]
fn a_blocked_send_is_interrupted_and_hands_its_value_back() {
    let ch = Channel::new(1, Mode::Mpsc).unwrap();
    ch.send(String::from("in")).unwrap();
    let tx = ch.clone();
    let (r, _) = interrupted(move |o| tx.send_with(String::from("out"), o));
    let err = r.unwrap_err();
    assert_eq!((err.error, err.value.as_str()), (Error::Interrupted, "out"));
    assert_eq!(ch.recv().unwrap(), "in");
    assert_eq!(ch.try_recv(), Err(Error::Empty));
}

#[test]
fn select_and_rendezvous_are_interrupted_too() {
    let a = Channel::<u8>::new(2, Mode::Mpmc).unwrap();
    let b = Channel::<u8>::new(0, Mode::Mpmc).unwrap();
    let (a2, b2) = (a.clone(), b.clone());
    let (r, _) = interrupted(move |o| Select::new().recv(&a2, |r| r).recv(&b2, |r| r).wait_with(o));
    assert_eq!(r, Err(Error::Interrupted));
    let b3 = b.clone();
    let (r, _) = interrupted(move |o| b3.recv_with(o));
    assert_eq!(r, Err(Error::Interrupted));
    let b4 = b.clone();
    let (r, _) = interrupted(move |o| b4.send_with(9, o).map_err(|e| (e.error, e.value)));
    assert_eq!(r, Err((Error::Interrupted, 9)));
    assert_eq!(b.try_recv(), Err(Error::Empty));
}
