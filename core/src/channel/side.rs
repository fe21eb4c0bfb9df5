//! Run-time exclusion for a channel side that allows one thread at a time (both
//! sides of SPSC, the receiving side of MPSC), at almost no cost to the thread
//! that keeps using it.
//!
//! A compare-and-swap per operation would be simple, but a locked instruction
//! on every send and receive costs several times the ring operation itself.
//! Instead the side is *biased* to the thread that used it last (the technique
//! of biased locking). The owner enters with plain stores and loads:
//!
//! ```text
//! owner:  busy = true; light barrier; if owner == me { operate; busy = false }
//! thief:  owner = REVOKING; heavy barrier; if busy { give back, Busy } else { owner = thief }
//! ```
//!
//! The asymmetric barrier pair (see `barrier.rs`) makes this a Dekker
//! handshake: either the owner sees the revocation and backs off, or the thief
//! sees the owner busy. A thief that finds the owner busy has found two threads
//! using a single-thread side at the same moment and reports `Busy`;
//! one that finds it idle takes over, synchronizing with the owner's last
//! `busy = false` (Release) through its own Acquire load. Changing hands costs
//! one heavy barrier; staying with one thread costs nothing locked.
//!
//! [`SideGuard::close_enter`] is the closer's variant: it waits out an
//! operation in progress instead of failing, so that close is ordered after it.

use crate::barrier;
use crate::error::{Fail, Side};
use crate::sync::{AtomicBool, AtomicUsize, Backoff, Ordering};

const NONE: usize = 0;
const REVOKING: usize = 1;
const CLOSING: usize = 2;

/// A number unique to the calling thread among the threads alive now: the
/// thread pointer, which the platform ABI points at the thread's own control
/// block (`fs:0` on x86-64 holds that address; `tpidr_el0` on AArch64).
///
/// One register read: a `thread_local!` in a shared library goes through
/// `__tls_get_addr`, which costs more than the ring operation it guards (this
/// is what the C ABI pays per call otherwise). The same technique serves
/// mimalloc for page ownership.
///
/// A control block is reused only after its thread has exited and been
/// reclaimed (joined, or detached and reaped by the C library under its
/// stack-cache lock), and the new thread is created after that, so a thread
/// that inherits a dead owner's id also inherits a happens-before edge from
/// everything the dead owner did: entering on the fast path is then as sound
/// as the dead owner entering again.
#[cfg(all(not(loom), target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
#[inline]
fn thread_id() -> usize {
    let tp: usize;
    // SAFETY: reads the thread pointer register (AArch64) or the first word
    // of the thread control block, which the x86-64 ABI requires to point to
    // itself; no memory is written.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        std::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags));
        #[cfg(target_arch = "aarch64")]
        std::arch::asm!("mrs {}, tpidr_el0", out(reg) tp, options(nostack, nomem, preserves_flags));
    }
    debug_assert!(tp > CLOSING, "thread pointer {tp:#x} collides with a guard state");
    tp
}

/// A small number unique to the calling thread for the life of the process.
#[cfg(all(not(loom), not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))))]
#[inline]
fn thread_id() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    static NEXT: StdAtomicUsize = StdAtomicUsize::new(CLOSING + 1);
    thread_local! {
        static ID: Cell<usize> = const { Cell::new(NONE) };
    }
    ID.with(|id| {
        let v = id.get();
        if v != NONE {
            return v;
        }
        // Relaxed: only uniqueness matters.
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        id.set(v);
        v
    })
}

#[cfg(loom)]
fn thread_id() -> usize {
    // loom thread ids are small and unique within one execution.
    let id = format!("{:?}", loom::thread::current().id());
    let digits: String = id.chars().filter(|c| c.is_ascii_digit()).collect();
    digits.parse::<usize>().unwrap() + CLOSING + 1
}

/// The exclusion word pair of one side.
pub(crate) struct SideGuard {
    /// Thread id of the owner, `NONE`, `REVOKING` while a thread takes over, or
    /// `CLOSING` while the channel is being closed.
    owner: AtomicUsize,
    /// True while the owner is inside an operation.
    busy: AtomicBool,
}

/// Proof of having entered; leaving is [`SideGuard::exit`].
#[must_use]
pub(crate) struct Entered(());

impl SideGuard {
    pub(crate) fn new() -> Self {
        SideGuard { owner: AtomicUsize::new(NONE), busy: AtomicBool::new(false) }
    }

    /// Enters the side, or fails with `Busy(side)` if another thread is
    /// inside it right now.
    #[inline]
    pub(crate) fn enter(&self, side: Side) -> Result<Entered, Fail> {
        let me = thread_id();
        // Relaxed: if this reads `me`, we wrote it ourselves (only the thread
        // itself installs its id); any other value sends us to the slow path,
        // which synchronizes properly.
        if self.owner.load(Ordering::Relaxed) == me {
            // Relaxed store + light barrier + Relaxed re-load: the owner's half
            // of the Dekker handshake with `take_over`.
            self.busy.store(true, Ordering::Relaxed);
            barrier::light();
            if self.owner.load(Ordering::Relaxed) == me {
                return Ok(Entered(()));
            }
            // Being revoked: step aside (Release hands our past writes over).
            self.busy.store(false, Ordering::Release);
        }
        self.take_over(me, side)
    }

    /// Leaves the side.
    #[inline]
    pub(crate) fn exit(&self, _entered: Entered) {
        // Release: the next owner's Acquire load of `busy` sees every write we
        // made inside the side (indices, caches).
        self.busy.store(false, Ordering::Release);
    }

    #[cold]
    fn take_over(&self, me: usize, side: Side) -> Result<Entered, Fail> {
        let mut backoff = Backoff::new();
        let current = loop {
            // Acquire: pairs with the Release that installed the current owner
            // (`NONE` after a close carries the closed flag with it).
            let current = self.owner.load(Ordering::Acquire);
            match current {
                // Another thread is taking the side over at this very moment.
                REVOKING => return Err(Fail::Busy(side)),
                // A close is in progress; it holds the side for nanoseconds.
                // Afterwards the caller finds the channel closed.
                CLOSING => backoff.snooze(),
                // Acquire: as above, on success.
                _ => match self.owner.compare_exchange(current, REVOKING, Ordering::Acquire, Ordering::Relaxed) {
                    Ok(_) => break current,
                    Err(CLOSING) => backoff.snooze(),
                    Err(_) => return Err(Fail::Busy(side)),
                },
            }
        };
        // The thief's half of the handshake: our REVOKING is visible to the
        // owner's re-check, or its `busy = true` is visible to the load below.
        barrier::heavy();
        // Acquire: pairs with the previous owner's Release in `exit`.
        if self.busy.load(Ordering::Acquire) {
            // Release: restores the owner unchanged.
            self.owner.store(current, Ordering::Release);
            return Err(Fail::Busy(side));
        }
        // Relaxed: nobody else writes `busy` while the owner word is REVOKING,
        // and the old owner only reads `owner`.
        self.busy.store(true, Ordering::Relaxed);
        // Release: publishes `busy = true` before anyone can see us as owner.
        self.owner.store(me, Ordering::Release);
        Ok(Entered(()))
    }

    /// Enters to close the side: waits for an operation in progress (it takes
    /// nanoseconds; operations never block inside the side) instead of failing.
    pub(crate) fn close_enter(&self) -> Entered {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: see `take_over`.
            let current = self.owner.load(Ordering::Acquire);
            if current != REVOKING
                && current != CLOSING
                && self.owner.compare_exchange(current, CLOSING, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                barrier::heavy();
                // Acquire: pairs with the owner's Release in `exit`.
                while self.busy.load(Ordering::Acquire) {
                    backoff.snooze();
                }
                // Relaxed: we hold CLOSING; see `take_over`.
                self.busy.store(true, Ordering::Relaxed);
                return Entered(());
            }
            backoff.snooze();
        }
    }

    /// Leaves after `close_enter`, giving up ownership so that the next user
    /// synchronizes with the close through `owner`.
    pub(crate) fn close_exit(&self, _entered: Entered) {
        self.busy.store(false, Ordering::Relaxed);
        // Release: whoever takes the side next (Acquire in `take_over`) sees
        // everything the closer wrote, the closed flag included.
        self.owner.store(NONE, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    const MSG: Side = Side::SpscSend;

    #[test]
    fn a_second_thread_inside_at_the_same_moment_gets_busy() {
        let guard = std::sync::Arc::new(SideGuard::new());
        let entered = guard.enter(MSG).unwrap();
        let g = guard.clone();
        let other = std::thread::spawn(move || g.enter(MSG).map(|e| g.exit(e)));
        assert_eq!(other.join().unwrap(), Err(Fail::Busy(MSG)));
        guard.exit(entered);
        // Once the owner left, another thread takes over.
        let g = guard.clone();
        std::thread::spawn(move || g.enter(MSG).map(|e| g.exit(e))).join().unwrap().unwrap();
        // And the old owner can take it back.
        let e = guard.enter(MSG).unwrap();
        guard.exit(e);
    }

    #[test]
    fn close_waits_for_the_owner_to_leave() {
        let guard = std::sync::Arc::new(SideGuard::new());
        let entered = guard.enter(MSG).unwrap();
        let (tx, rx) = mpsc::channel();
        let g = guard.clone();
        let closer = std::thread::spawn(move || {
            let e = g.close_enter();
            tx.send(()).unwrap();
            g.close_exit(e);
        });
        // The closer cannot get in while we are inside.
        assert!(rx.recv_timeout(std::time::Duration::from_millis(50)).is_err());
        guard.exit(entered);
        rx.recv().unwrap();
        closer.join().unwrap();
        let e = guard.enter(MSG).unwrap();
        guard.exit(e);
    }
}
