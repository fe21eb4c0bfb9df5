//! The synchronization primitives the lock-free code is written against.
//!
//! Under `--cfg loom` they are loom's model-checked versions; otherwise the
//! standard library's. Every lock-free algorithm in the crate imports from here
//! so that the loom tests (`core/tests/loom_*.rs`) check the real code.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex};

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex};

/// Locks a mutex, ignoring poisoning: the data behind nimsync's mutexes (waiter
/// lists) stays consistent even if a thread panicked while holding the lock.
pub(crate) fn lock<T>(m: &Mutex<T>) -> impl std::ops::DerefMut<Target = T> + '_ {
    #[cfg(loom)]
    {
        m.lock().unwrap()
    }
    #[cfg(not(loom))]
    {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with loom's closure-based access API, so that the
/// same code compiles in both worlds.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Spin-then-yield backoff for the short waits before a thread parks, and
/// for retries after losing a compare-and-swap race.
///
/// Waiting (`snooze`) polls at a steady pace: a few `pause` instructions
/// between attempts for a while (about 20 µs on current x86), then a few
/// yields of the CPU, then the caller parks. The pace was chosen on the
/// channel benchmark: polling faster keeps pulling the cache lines a busy
/// producer is writing (MPSC throughput drops by a third), polling slower
/// adds directly to wake-up latency (ping-pong). Under loom the backoff is
/// "completed" at once: the model parks immediately instead of exploring spin
/// loops.
pub(crate) struct Backoff {
    step: u32,
}

/// `pause` instructions between two attempts while spinning.
const PAUSES_PER_ATTEMPT: u32 = 4;
/// Attempts made while spinning.
const SPIN_ATTEMPTS: u32 = 200;
/// Attempts made after yielding the CPU, before parking.
const YIELD_ATTEMPTS: u32 = 10;
/// Cap of the exponential spin after a lost compare-and-swap (2^6 pauses).
const CAS_SPIN_LIMIT: u32 = 6;

impl Backoff {
    pub(crate) fn new() -> Self {
        Self { step: 0 }
    }

    /// Backs off after losing a compare-and-swap race: spins a little longer
    /// each call (never yields: the winner is running and will be done in
    /// nanoseconds).
    #[inline]
    pub(crate) fn spin(&mut self) {
        for _ in 0..1u32 << self.step.min(CAS_SPIN_LIMIT) {
            std::hint::spin_loop();
        }
        #[cfg(loom)]
        loom::thread::yield_now();
        if self.step <= CAS_SPIN_LIMIT {
            self.step += 1;
        }
    }

    /// Waits a moment before the next attempt: spins, later yields the CPU.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        // Under loom every wait must yield: a spin that only re-reads an
        // atomic would be explored iteration by iteration.
        if self.step < SPIN_ATTEMPTS && !cfg!(loom) {
            for _ in 0..PAUSES_PER_ATTEMPT {
                std::hint::spin_loop();
            }
        } else {
            #[cfg(not(loom))]
            std::thread::yield_now();
            #[cfg(loom)]
            loom::thread::yield_now();
        }
        if self.step < SPIN_ATTEMPTS + YIELD_ATTEMPTS {
            self.step += 1;
        }
    }

    /// True once spinning and yielding have stopped paying off and the caller
    /// should park.
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        cfg!(loom) || self.step >= SPIN_ATTEMPTS + YIELD_ATTEMPTS
    }
}
