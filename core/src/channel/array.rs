//! The MPSC, SPMC and MPMC algorithm: a bounded array queue with per-slot
//! stamps (Dmitry Vyukov's bounded queue), specialised per side.
//!
//! A multi-producer side claims a position with a compare-and-swap on `tail`;
//! a single-producer side (SPMC) claims it with a plain store, guarded at run
//! time by [`SideGuard`] (see `side.rs`). Either way the producer then writes
//! the slot and publishes it by setting the slot's stamp to
//! `published(position)`. Consumers mirror this on `head`: a multi-consumer
//! side (SPMC, MPMC) claims with a compare-and-swap, the single consumer of
//! MPSC with plain stores. The consumer hands the emptied slot to the next lap
//! by setting its stamp to `free(position + capacity)`.
//!
//! Producers never read the consumers' index (nor consumers the producers')
//! on the fast path: the stamp of the slot they want says whether it is free
//! or published. Stamps are doubled (`free(p) = 2p`, `published(p) = 2p + 1`)
//! so the two stay apart even for capacity 1, where `p + 1` would be the next
//! free position.
//!
//! `tail` holds `position << 1 | CLOSED`, so closing is one `fetch_or` that no
//! concurrent claim can slip past: every successful claim happened before the
//! close, every later one sees the bit. A single producer stores `tail`
//! plainly, so there the closer first enters the producer side. Positions are
//! 64-bit and, at one claim per nanosecond, would take 146 years to wrap.

use super::side::SideGuard;
use crate::error::{Fail, Rejected, Side};
use crate::sync::{AtomicBool, AtomicU64, Backoff, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;

const CLOSED: u64 = 1;

#[inline]
fn free(pos: u64) -> u64 {
    pos << 1
}

#[inline]
fn published(pos: u64) -> u64 {
    pos << 1 | 1
}

pub(crate) struct Slot<T> {
    /// `free(pos)` when the slot is free for position `pos`; `published(pos)`
    /// when the item for position `pos` is in it.
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    pub(crate) fn new(pos: u64) -> Self {
        Slot { stamp: AtomicU64::new(free(pos)), value: UnsafeCell::new(MaybeUninit::uninit()) }
    }
}

/// `MP`: several producers may send at once; `MC`: several consumers may
/// receive at once. `<true, false>` is MPSC, `<false, true>` SPMC, `<true,
/// true>` MPMC. (SPSC uses the cached-index ring instead.)
pub(crate) struct ArrayQueue<T, const MP: bool, const MC: bool> {
    /// `next position to claim << 1 | CLOSED`.
    tail: CachePadded<AtomicU64>,
    /// Next position to read.
    head: CachePadded<AtomicU64>,
    /// Guards the single producer side (unused when `MP`), on a line of its
    /// own so that its stores contend with nobody.
    send_guard: CachePadded<SideGuard>,
    /// Guards the single consumer side (unused when `MC`).
    recv_guard: CachePadded<SideGuard>,
    /// Set by `close` after the CLOSED bit: lets receivers of an empty queue
    /// check for a close without touching `tail`.
    closed: CachePadded<AtomicBool>,
    buffer: Box<[Slot<T>]>,
    mask: u64,
}

// SAFETY: items move between threads (`T: Send`); no `&T` is shared. Slot
// ownership is arbitrated by the claims on `tail`/`head` and by the stamps,
// single-thread sides by their guards.
unsafe impl<T: Send, const MP: bool, const MC: bool> Send for ArrayQueue<T, MP, MC> {}
// SAFETY: see above.
unsafe impl<T: Send, const MP: bool, const MC: bool> Sync for ArrayQueue<T, MP, MC> {}

impl<T, const MP: bool, const MC: bool> ArrayQueue<T, MP, MC> {
    /// `buffer` has a power-of-two length and slot `i` was made with `Slot::new(i)`.
    pub(crate) fn new(buffer: Box<[Slot<T>]>) -> Self {
        debug_assert!(buffer.len().is_power_of_two());
        let mask = buffer.len() as u64 - 1;
        ArrayQueue {
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            send_guard: CachePadded::new(SideGuard::new()),
            recv_guard: CachePadded::new(SideGuard::new()),
            closed: CachePadded::new(AtomicBool::new(false)),
            buffer,
            mask,
        }
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.len()
    }

    #[inline]
    fn slot(&self, pos: u64) -> &Slot<T> {
        &self.buffer[(pos & self.mask) as usize]
    }

    /// Sends from any thread.
    #[inline]
    pub(crate) fn try_push(&self, value: T) -> Result<(), Rejected<T>> {
        if MP {
            return self.push_shared(value);
        }
        let entered = match self.send_guard.enter(Side::SpmcSend) {
            Ok(e) => e,
            Err(f) => return Err(Rejected::new(f, value)),
        };
        // SAFETY: the guard makes us the only producer.
        let result = unsafe { self.push_single(value) };
        self.send_guard.exit(entered);
        result
    }

    fn push_shared(&self, value: T) -> Result<(), Rejected<T>> {
        let mut backoff = Backoff::new();
        // Relaxed: the value is only a guess that the CAS below validates.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(Rejected::new(Fail::Closed, value));
            }
            let pos = tail >> 1;
            let slot = self.slot(pos);
            // Acquire: pairs with the consumer's Release that freed this slot
            // for `pos`, so its read of the previous lap's value is complete.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == free(pos) {
                // Relaxed: the CAS only arbitrates between producers; the slot
                // contents are published through the stamp, and consumers
                // learn of CLOSED through their own Acquire loads of `tail`.
                match self.tail.compare_exchange_weak(tail, tail + 2, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: winning the claim for `pos` while its stamp
                        // said free gives us the slot until we publish.
                        unsafe { self.publish(slot, pos, value) };
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp < free(pos) {
                // The slot still holds (or is about to hold) position
                // `pos - capacity`. Full, unless a receiver already claimed
                // that item and is just moving it out: then the slot frees in
                // nanoseconds.
                // Acquire: see `head`'s Release stores and CAS.
                if self.head.load(Ordering::Acquire) + self.capacity() as u64 <= pos {
                    return Err(Rejected::new(Fail::Full, value));
                }
                backoff.spin();
                tail = self.tail.load(Ordering::Relaxed);
            } else {
                // Another producer took `pos` already; catch up.
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// # Safety
    /// The caller is the only producer (holds the send guard).
    unsafe fn push_single(&self, value: T) -> Result<(), Rejected<T>> {
        // Relaxed: only the producer side (whose guard we hold, and which a
        // closer must enter) writes `tail`.
        let tail = self.tail.load(Ordering::Relaxed);
        if tail & CLOSED != 0 {
            return Err(Rejected::new(Fail::Closed, value));
        }
        let pos = tail >> 1;
        let slot = self.slot(pos);
        // Acquire: as in `push_shared`.
        if slot.stamp.load(Ordering::Acquire) != free(pos) {
            return Err(Rejected::new(Fail::Full, value));
        }
        // Relaxed: the claim needs no ordering of its own (see `push_shared`).
        self.tail.store(tail + 2, Ordering::Relaxed);
        // SAFETY: the slot is free for `pos` and we are the only producer.
        unsafe { self.publish(slot, pos, value) };
        Ok(())
    }

    /// # Safety
    /// The caller claimed `pos` and the slot is free for it.
    #[inline]
    unsafe fn publish(&self, slot: &Slot<T>, pos: u64, value: T) {
        // SAFETY: exclusive by the caller's claim.
        slot.value.with_mut(|p| unsafe { (*p).write(value) });
        // Release: publishes the value to the consumer's Acquire.
        slot.stamp.store(published(pos), Ordering::Release);
    }

    /// Receives from any thread; after `close`, the remaining items, then
    /// `Closed`.
    #[inline]
    pub(crate) fn try_pop(&self) -> Result<T, Fail> {
        if MC {
            return self.pop_shared();
        }
        let entered = self.recv_guard.enter(Side::MpscRecv)?;
        // SAFETY: the guard makes us the only consumer.
        let result = unsafe { self.pop_single() };
        self.recv_guard.exit(entered);
        result
    }

    fn pop_shared(&self) -> Result<T, Fail> {
        let mut backoff = Backoff::new();
        // Relaxed: a guess that the stamp check and the CAS validate.
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the producer's Release publication.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == published(head) {
                // Relaxed: the stamp load above already synchronized with the
                // producer; the CAS only arbitrates between consumers.
                match self.head.compare_exchange_weak(head, head + 1, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => {
                        // SAFETY: winning the claim for a published `head` gives
                        // us the value until we free the slot.
                        return Ok(unsafe { self.take(slot, head) });
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if stamp < published(head) {
                // Not published for `head`: empty, closed, or a producer in
                // flight (it will publish and notify).
                return self.nothing_at(head);
            } else {
                // Another consumer took `head` already; catch up.
                head = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// # Safety
    /// The caller is the only consumer (holds the receive guard).
    unsafe fn pop_single(&self) -> Result<T, Fail> {
        // Relaxed: only the consumer side writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        // Acquire: pairs with the producer's Release publication.
        if slot.stamp.load(Ordering::Acquire) != published(head) {
            return self.nothing_at(head);
        }
        // SAFETY: the item for `head` is published and we are the only consumer.
        let value = unsafe { self.take(slot, head) };
        // Release: `len` readers see the item gone only after it is; nothing
        // else reads `head` of a single-consumer queue.
        self.head.store(head + 1, Ordering::Release);
        Ok(value)
    }

    /// # Safety
    /// The caller claimed the published position `pos`.
    #[inline]
    unsafe fn take(&self, slot: &Slot<T>, pos: u64) -> T {
        // SAFETY: published and claimed by the caller.
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        // Release: hands the emptied slot to the producer of the next lap.
        slot.stamp.store(free(pos + self.mask + 1), Ordering::Release);
        value
    }

    /// The slot for `head` holds no published item: `Closed` if the queue is
    /// closed and nothing was claimed beyond `head`, else `Empty`.
    #[inline]
    fn nothing_at(&self, head: u64) -> Result<T, Fail> {
        // The read-mostly flag first: a receiver polling an empty queue must
        // not keep pulling `tail`'s line away from the producers' CAS.
        // Acquire: pairs with the Release store in `close`, made after the
        // CLOSED bit.
        if !self.closed.load(Ordering::Acquire) {
            return Err(Fail::Empty);
        }
        // Acquire: pairs with the AcqRel `fetch_or` of `close`.
        let tail = self.tail.load(Ordering::Acquire);
        if tail & CLOSED != 0 && tail >> 1 == head {
            Err(Fail::Closed)
        } else {
            Err(Fail::Empty)
        }
    }

    /// Sets the CLOSED bit; returns false if it was already set.
    pub(crate) fn close(&self) -> bool {
        // AcqRel: Release carries the closer's prior writes to receivers; the
        // bit itself orders every claim before or after the close.
        let was_open = if MP {
            self.tail.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
        } else {
            // A single producer stores `tail` plainly: enter its side so that
            // the store and our `fetch_or` cannot interleave.
            let entered = self.send_guard.close_enter();
            let was_open = self.tail.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0;
            self.send_guard.close_exit(entered);
            was_open
        };
        // Release: receivers that see the flag see the CLOSED bit too.
        self.closed.store(true, Ordering::Release);
        was_open
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.tail.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Items claimed and not yet consumed (a snapshot).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire) >> 1;
        (tail.saturating_sub(head) as usize).min(self.capacity())
    }

    /// The slot for the next send is free, or the queue is closed.
    pub(crate) fn send_ready(&self) -> bool {
        let tail = self.tail.load(Ordering::Acquire);
        tail & CLOSED != 0 || self.slot(tail >> 1).stamp.load(Ordering::Acquire) >= free(tail >> 1)
    }

    /// The next item is published, or the queue is closed and drained.
    pub(crate) fn recv_ready(&self) -> bool {
        let head = self.head.load(Ordering::Acquire);
        if self.slot(head).stamp.load(Ordering::Acquire) >= published(head) {
            return true;
        }
        if !self.closed.load(Ordering::Acquire) {
            return false;
        }
        let tail = self.tail.load(Ordering::Acquire);
        tail & CLOSED != 0 && tail >> 1 == head
    }
}

impl<T, const MP: bool, const MC: bool> Drop for ArrayQueue<T, MP, MC> {
    fn drop(&mut self) {
        // Exclusive access now. Every claimed position was published (a claim
        // is followed by its write without any way to bail out).
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed) >> 1;
        while head != tail {
            let slot = self.slot(head);
            // SAFETY: positions in [head, tail) hold initialized items.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            head += 1;
        }
    }
}
