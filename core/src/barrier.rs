//! Asymmetric memory barriers: a free "light" side and a costly "heavy" side.
//!
//! Waking a parked thread is a Dekker-style handshake. The side that makes a
//! condition true (a sender publishing an item) stores, then loads "is anybody
//! waiting?"; the side about to park stores "I am waiting", then re-loads the
//! condition. Each side needs a full (StoreLoad) barrier between its store and
//! its load, or both may miss each other and the waiter sleeps forever.
//!
//! The publishing side runs on every message, the parking side only when a
//! thread is about to sleep, which costs a system call anyway. So, as in
//! Linux's `membarrier(2)` pattern (also used by userspace RCU and folly's
//! `asymmetricLightBarrier`), the hot side issues only a compiler barrier and
//! the parking side issues `MEMBARRIER_CMD_PRIVATE_EXPEDITED`, which makes every
//! running thread of the process execute a full barrier. Either the publisher's
//! store is visible to the waiter's re-check, or the waiter's flag is visible to
//! the publisher's load.
//!
//! Where membarrier is unavailable (not Linux, an old kernel, a sandbox that
//! filters it), both sides fall back to `fence(SeqCst)`. Under loom both sides
//! are `fence(SeqCst)`, which is the model membarrier implements.

#[cfg(loom)]
mod imp {
    use crate::sync::{fence, Ordering};

    pub(crate) fn init() {}

    #[inline(always)]
    pub(crate) fn light() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
    }

    pub(crate) fn uses_membarrier() -> bool {
        false
    }
}

#[cfg(not(loom))]
mod imp {
    use std::sync::atomic::{compiler_fence, fence, AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const MEMBARRIER: u8 = 1;
    const FENCE: u8 = 2;

    /// Which strategy this process uses. It is decided once, in [`init`], before
    /// any channel exists, and never changes afterwards, so a `Relaxed` load is
    /// enough: every thread that can reach a channel was handed it through some
    /// synchronizing operation that happened after `init` returned.
    static STRATEGY: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Decides the strategy. Called by every constructor of a waitable object.
    pub(crate) fn init() {
        if STRATEGY.load(Ordering::Relaxed) != UNKNOWN {
            return;
        }
        let chosen = if register_membarrier() { MEMBARRIER } else { FENCE };
        // Two threads may race here; both compute the same answer, and
        // registration is idempotent, so the last store wins harmlessly.
        STRATEGY.store(chosen, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn light() {
        if STRATEGY.load(Ordering::Relaxed) == MEMBARRIER {
            // Only the compiler must not move the publishing store after the
            // waiter-count load; the CPU is ordered by the heavy side's IPI.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn heavy() {
        if STRATEGY.load(Ordering::Relaxed) == MEMBARRIER {
            if membarrier(libc_consts::CMD_PRIVATE_EXPEDITED) == 0 {
                return;
            }
            // Registration is per address space; after an exec-less clone of the
            // address space (e.g. a fork) it can be missing. Register again.
            if register_membarrier() && membarrier(libc_consts::CMD_PRIVATE_EXPEDITED) == 0 {
                return;
            }
            // Light barriers of other threads are only compiler fences, so a plain
            // fence here would not be enough. This cannot happen on a kernel that
            // accepted the registration; refuse to continue silently.
            panic!("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration");
        } else {
            fence(Ordering::SeqCst);
        }
    }

    pub(crate) fn uses_membarrier() -> bool {
        STRATEGY.load(Ordering::Relaxed) == MEMBARRIER
    }

    #[cfg(target_os = "linux")]
    mod libc_consts {
        pub(super) const CMD_QUERY: libc::c_int = 0;
        pub(super) const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
        pub(super) const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;
    }

    #[cfg(target_os = "linux")]
    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no
        // user memory.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_uint, 0 as libc::c_int) }
    }

    #[cfg(target_os = "linux")]
    fn register_membarrier() -> bool {
        if std::env::var_os("NIMSYNC_NO_MEMBARRIER").is_some() {
            return false;
        }
        let supported = membarrier(libc_consts::CMD_QUERY);
        if supported < 0 || supported & libc::c_long::from(libc_consts::CMD_PRIVATE_EXPEDITED) == 0 {
            return false;
        }
        membarrier(libc_consts::CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    #[cfg(not(target_os = "linux"))]
    mod libc_consts {
        pub(super) const CMD_PRIVATE_EXPEDITED: i32 = 0;
    }

    #[cfg(not(target_os = "linux"))]
    fn membarrier(_cmd: i32) -> i64 {
        -1
    }

    #[cfg(not(target_os = "linux"))]
    fn register_membarrier() -> bool {
        false
    }
}

pub(crate) use imp::{heavy, init, light};

/// Whether this process pairs compiler fences with `membarrier(2)` (true) or
/// uses `fence(SeqCst)` on both sides (false). Exposed for benchmarks and
/// diagnostics; set `NIMSYNC_NO_MEMBARRIER=1` before the first channel is
/// created to force the fence strategy.
pub fn uses_membarrier() -> bool {
    imp::uses_membarrier()
}
