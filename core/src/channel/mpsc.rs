//! The MPSC algorithm: a bounded array queue with per-slot stamps (Dmitry
//! Vyukov's bounded queue), with a single consumer.
//!
//! Producers claim a position with a compare-and-swap on `tail`, write the
//! slot, and publish it by setting the slot's stamp to "published(position)".
//! The one consumer reads the slot whose stamp says it is published, then
//! hands the slot to the next lap by setting its stamp to
//! "free(position + capacity)"; it needs no read-modify-write at all. Unlike the SPSC ring, producers never read the
//! consumer's index on the fast path: the stamp of the slot they want tells
//! them whether it is free.
//!
//! `tail` holds `position << 1 | CLOSED`, so closing is one `fetch_or` that no
//! concurrent claim can slip past: every successful claim happened before the
//! close, every later one sees the bit. Positions are 64-bit and, at one claim
//! per nanosecond, would take 146 years to wrap.
//!
//! The consumer side is guarded like the ring's (see `side.rs`), so two
//! threads receiving at once get [`Error::Busy`] rather than a race.

use super::side::SideGuard;
use crate::error::{Error, SendError};
use crate::sync::{AtomicU64, Backoff, Ordering, UnsafeCell};
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

const RECV_BUSY: &str = "MPSC channel: another thread is receiving at the same moment; \
                         use mode SPMC or MPMC for several receivers";

pub(crate) struct Slot<T> {
    /// `free(pos)` when the slot is free for position `pos`; `published(pos)`
    /// when the item for position `pos` is in it. Doubling keeps the two apart
    /// even for capacity 1, where `pos + 1` would be the next free position.
    stamp: AtomicU64,
    value: UnsafeCell<MaybeUninit<T>>,
}

pub(crate) struct Mpsc<T> {
    /// `next position to claim << 1 | CLOSED`.
    tail: CachePadded<AtomicU64>,
    /// Next position to read. Written only by the consumer; read by `len`.
    head: CachePadded<AtomicU64>,
    /// The consumer's guard, on a line of its own so that its stores contend
    /// with nobody.
    guard: CachePadded<SideGuard>,
    buffer: Box<[Slot<T>]>,
    mask: u64,
}

// SAFETY: items move between threads (`T: Send`); no `&T` is shared. Slot
// ownership is arbitrated by `tail` and the stamps, the consumer side by its
// guard.
unsafe impl<T: Send> Send for Mpsc<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for Mpsc<T> {}

impl<T> Slot<T> {
    pub(crate) fn new(pos: u64) -> Self {
        Slot {
            stamp: AtomicU64::new(free(pos)),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }
}

impl<T> Mpsc<T> {
    /// `buffer` has a power-of-two length and slot `i` was made with `Slot::new(i)`.
    pub(crate) fn new(buffer: Box<[Slot<T>]>) -> Self {
        debug_assert!(buffer.len().is_power_of_two());
        let mask = buffer.len() as u64 - 1;
        Mpsc {
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            guard: CachePadded::new(SideGuard::new()),
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
    pub(crate) fn try_push(&self, value: T) -> Result<(), SendError<T>> {
        let mut backoff = Backoff::new();
        // Relaxed: the value is only a guess that the CAS below validates.
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            if tail & CLOSED != 0 {
                return Err(SendError::new(Error::Closed, value));
            }
            let pos = tail >> 1;
            let slot = self.slot(pos);
            // Acquire: pairs with the consumer's Release that freed this slot
            // for `pos`, so its read of the previous lap's value is complete.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == free(pos) {
                // Relaxed: the CAS only arbitrates between producers; the slot
                // contents are published through the stamp, and the consumer
                // learns of CLOSED through its own Acquire load of `tail`.
                match self.tail.compare_exchange_weak(
                    tail,
                    tail + 2,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` while its stamp said
                        // free gives us the slot exclusively until we publish.
                        slot.value.with_mut(|p| unsafe { (*p).write(value) });
                        // Release: publishes the value to the consumer's Acquire.
                        slot.stamp.store(published(pos), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => {
                        tail = current;
                        backoff.snooze();
                    }
                }
            } else if stamp < free(pos) {
                // The slot still holds (or is about to hold) position
                // `pos - capacity`: the queue is full.
                return Err(SendError::new(Error::Full, value));
            } else {
                // Another producer took `pos` already; catch up.
                tail = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest published item.
    ///
    /// # Safety
    /// The caller is the only thread popping at this moment.
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // Relaxed: only the consumer writes `head`.
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        // Acquire: pairs with the producer's Release publication of the value.
        if slot.stamp.load(Ordering::Acquire) != published(head) {
            return None;
        }
        // SAFETY: the stamp says the producer for `head` finished writing, and no
        // producer touches the slot until we hand it on below.
        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
        // Release: hands the emptied slot to the producer of the next lap.
        slot.stamp
            .store(free(head + self.mask + 1), Ordering::Release);
        // Release: `len` readers see the item gone only after it is.
        self.head.store(head + 1, Ordering::Release);
        Some(value)
    }

    /// After `pop` found nothing: `Closed` if closed and drained, else `Empty`
    /// (including a claimed position whose producer has not published yet:
    /// that producer will publish and notify). Consumer only.
    #[inline]
    pub(crate) fn empty_or_closed(&self) -> Result<T, Error> {
        // Acquire: pairs with the AcqRel `fetch_or` of `close`.
        let tail = self.tail.load(Ordering::Acquire);
        if tail & CLOSED == 0 {
            return Err(Error::Empty);
        }
        let head = self.head.load(Ordering::Relaxed);
        if tail >> 1 == head {
            Err(Error::Closed)
        } else {
            // SAFETY: the caller is the only consumer.
            match unsafe { self.pop() } {
                Some(v) => Ok(v),
                None => Err(Error::Empty),
            }
        }
    }

    /// Receives through the consumer guard: safe from any thread.
    #[inline]
    pub(crate) fn try_pop(&self) -> Result<T, Error> {
        let entered = self.guard.enter(RECV_BUSY)?;
        // SAFETY: the guard makes us the only consumer.
        let result = match unsafe { self.pop() } {
            Some(v) => Ok(v),
            None => self.empty_or_closed(),
        };
        self.guard.exit(entered);
        result
    }

    /// Sets the CLOSED bit; returns false if it was already set.
    pub(crate) fn close(&self) -> bool {
        // AcqRel: Release carries the closer's prior writes to receivers; the
        // bit itself orders every claim before or after the close.
        self.tail.fetch_or(CLOSED, Ordering::AcqRel) & CLOSED == 0
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.tail.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Items claimed and not yet consumed (a snapshot).
    pub(crate) fn len(&self) -> usize {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire) >> 1;
        (tail.saturating_sub(head) as usize).min(self.capacity())
    }

    pub(crate) fn send_ready(&self) -> bool {
        let tail = self.tail.load(Ordering::Acquire);
        // Ready when the slot for the next position is free, or closed.
        tail & CLOSED != 0 || self.slot(tail >> 1).stamp.load(Ordering::Acquire) >= free(tail >> 1)
    }

    /// Consumer only: the next item is published, or the queue is closed and
    /// drained.
    pub(crate) fn recv_ready(&self) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        if self.slot(head).stamp.load(Ordering::Acquire) == published(head) {
            return true;
        }
        let tail = self.tail.load(Ordering::Acquire);
        tail & CLOSED != 0 && tail >> 1 == head
    }
}

impl<T> Drop for Mpsc<T> {
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
