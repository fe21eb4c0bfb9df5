//! The SPSC algorithm: a bounded ring with cached indices.
//!
//! One producer owns `tail`, one consumer owns `head`; each keeps a private
//! copy of the other's index and reloads it only when its copy says the ring is
//! full (producer) or empty (consumer). In steady state a push or pop touches
//! only its own cache line and the slot, which is what makes rtrb-style rings
//! fast. Indices run freely and wrap; `capacity` is a power of two, so the slot
//! is `index & mask`.
//!
//! The unguarded `push`/`pop` require the caller to be the only producer or
//! consumer. [`Ring::try_push`] and [`Ring::try_pop`] enforce that at run time
//! with a biased per-side guard (`side.rs`): a second thread arriving while the
//! side is in use gets `Busy` instead of a data race. The producer's
//! guard also orders `close` against an in-flight push, see [`Ring::close`].

use super::side::SideGuard;
use crate::error::{Fail, Rejected, Side};
use crate::sync::{AtomicBool, AtomicUsize, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;

/// State only the producer touches in steady state. It sits on a line apart
/// from `tail`, which the consumer reads, so that the guard's stores never
/// contend with the consumer.
struct ProducerLocal {
    /// The producer's own copy of `tail`, so that pushing never loads the
    /// shared line the consumer polls.
    tail: UnsafeCell<usize>,
    /// The producer's copy of `head`.
    head_cache: UnsafeCell<usize>,
    guard: SideGuard,
}

/// State only the consumer touches in steady state.
struct ConsumerLocal {
    /// The consumer's own copy of `head`.
    head: UnsafeCell<usize>,
    /// The consumer's copy of `tail`.
    tail_cache: UnsafeCell<usize>,
    guard: SideGuard,
}

pub(crate) struct Ring<T> {
    /// Next index to write. Written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// Next index to read. Written only by the consumer.
    head: CachePadded<AtomicUsize>,
    prod: CachePadded<ProducerLocal>,
    cons: CachePadded<ConsumerLocal>,
    /// Set once by `close`; read-mostly, on a line of its own.
    closed: CachePadded<AtomicBool>,
    buffer: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
}

// SAFETY: the ring moves `T`s between threads (needs `T: Send`) and never hands
// out `&T`, so it is `Sync` whenever `T: Send`. Exclusive access to each slot is
// guaranteed by the index protocol; to each side by its guard or by ownership.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T> Ring<T> {
    /// `capacity` must be a power of two, already validated and allocated for.
    pub(crate) fn new(capacity: usize, buffer: Box<[UnsafeCell<MaybeUninit<T>>]>) -> Self {
        debug_assert!(capacity.is_power_of_two() && buffer.len() == capacity);
        Ring {
            tail: CachePadded::new(AtomicUsize::new(0)),
            head: CachePadded::new(AtomicUsize::new(0)),
            prod: CachePadded::new(ProducerLocal {
                tail: UnsafeCell::new(0),
                head_cache: UnsafeCell::new(0),
                guard: SideGuard::new(),
            }),
            cons: CachePadded::new(ConsumerLocal {
                head: UnsafeCell::new(0),
                tail_cache: UnsafeCell::new(0),
                guard: SideGuard::new(),
            }),
            closed: CachePadded::new(AtomicBool::new(false)),
            buffer,
            mask: capacity - 1,
        }
    }

    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Writes `value` into the next slot, or returns it if the ring is full.
    ///
    /// # Safety
    /// The caller is the only thread pushing at this moment.
    #[inline]
    pub(crate) unsafe fn push(&self, value: T) -> Result<(), T> {
        // SAFETY: the producer's own index (caller contract: single producer).
        let tail = self.prod.tail.with(|p| unsafe { *p });
        // SAFETY: `head_cache` belongs to the single producer (caller contract).
        let cached = self.prod.head_cache.with(|p| unsafe { *p });
        if tail.wrapping_sub(cached) == self.capacity() {
            // Acquire: pairs with the consumer's Release store of `head`, so its
            // read of the slot we are about to overwrite is complete.
            let head = self.head.load(Ordering::Acquire);
            // SAFETY: as above.
            self.prod.head_cache.with_mut(|p| unsafe { *p = head });
            if tail.wrapping_sub(head) == self.capacity() {
                return Err(value);
            }
        }
        let slot = &self.buffer[tail & self.mask];
        // SAFETY: slot `tail` is outside [head, tail): no consumer reads it, and
        // we are the only producer.
        slot.with_mut(|p| unsafe { (*p).write(value) });
        // SAFETY: as above.
        self.prod.tail.with_mut(|p| unsafe { *p = tail.wrapping_add(1) });
        // Release: publishes the slot write to the consumer's Acquire of `tail`.
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Takes the oldest item, if any.
    ///
    /// # Safety
    /// The caller is the only thread popping at this moment.
    #[inline]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // SAFETY: the consumer's own index (caller contract: single consumer).
        let head = self.cons.head.with(|p| unsafe { *p });
        // SAFETY: `tail_cache` belongs to the single consumer (caller contract).
        let cached = self.cons.tail_cache.with(|p| unsafe { *p });
        if head == cached {
            // Acquire: pairs with the producer's Release store of `tail`, making
            // the slot contents visible.
            let tail = self.tail.load(Ordering::Acquire);
            // SAFETY: as above.
            self.cons.tail_cache.with_mut(|p| unsafe { *p = tail });
            if head == tail {
                return None;
            }
        }
        let slot = &self.buffer[head & self.mask];
        // SAFETY: slot `head` is inside [head, tail): the producer initialized
        // it and will not touch it until we advance `head`.
        let value = slot.with(|p| unsafe { (*p).assume_init_read() });
        // SAFETY: as above.
        self.cons.head.with_mut(|p| unsafe { *p = head.wrapping_add(1) });
        // Release: the producer's Acquire of `head` sees the slot as moved out.
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(value)
    }

    /// Push through the producer guard: safe from any thread.
    #[inline]
    pub(crate) fn try_push(&self, value: T) -> Result<(), Rejected<T>> {
        let entered = match self.prod.guard.enter(Side::SpscSend) {
            Ok(e) => e,
            Err(f) => return Err(Rejected::new(f, value)),
        };
        // Relaxed: whoever holds the producer side synchronized with the close
        // through the guard (see `close`).
        let result = if self.closed.load(Ordering::Relaxed) {
            Err(Rejected::new(Fail::Closed, value))
        } else {
            // SAFETY: the guard makes us the only producer.
            unsafe { self.push(value) }.map_err(|v| Rejected::new(Fail::Full, v))
        };
        self.prod.guard.exit(entered);
        result
    }

    /// Pop through the consumer guard: safe from any thread. After `close`,
    /// returns the remaining items, then `Closed`.
    #[inline]
    pub(crate) fn try_pop(&self) -> Result<T, Fail> {
        let entered = self.cons.guard.enter(Side::SpscRecv)?;
        // SAFETY: the guard makes us the only consumer.
        let result = match unsafe { self.pop() } {
            Some(v) => Ok(v),
            None => self.empty_or_closed(),
        };
        self.cons.guard.exit(entered);
        result
    }

    /// After finding the ring empty: `Closed` if it was closed and is still
    /// empty, else `Empty`. Consumer only.
    #[inline]
    pub(crate) fn empty_or_closed(&self) -> Result<T, Fail> {
        // Acquire: pairs with the Release in `close`, which came after every
        // successful push (see there), so the re-check below sees them all.
        if !self.closed.load(Ordering::Acquire) {
            return Err(Fail::Empty);
        }
        // SAFETY: our caller is the only consumer.
        match unsafe { self.pop() } {
            Some(v) => Ok(v),
            None => Err(Fail::Closed),
        }
    }

    /// Marks the ring closed; returns false if it already was.
    ///
    /// The closer enters the producer side first (waiting out a push in
    /// progress), so every push either completed before the close — and the
    /// close's Release store of `closed` carries it to any receiver that sees
    /// the flag — or starts after it and fails with `Closed`. Without this, a
    /// receiver could report `Closed` while a racing push lands afterwards.
    pub(crate) fn close(&self) -> bool {
        let entered = self.prod.guard.close_enter();
        // Release: pairs with receivers' Acquire loads of `closed`.
        let was_open = !self.closed.swap(true, Ordering::Release);
        self.prod.guard.close_exit(entered);
        was_open
    }

    /// Close from the single producer itself (split API): no guard needed.
    pub(crate) fn close_by_producer(&self) -> bool {
        // Release: carries this producer's pushes to receivers that see the flag.
        !self.closed.swap(true, Ordering::Release)
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: see `empty_or_closed`.
        self.closed.load(Ordering::Acquire)
    }

    /// Items in the ring right now (a snapshot when others are active).
    pub(crate) fn len(&self) -> usize {
        // Load head first: tail only grows, so tail >= head holds for the pair.
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(head).min(self.capacity())
    }

    /// A send could complete now (or would fail with Closed).
    pub(crate) fn send_ready(&self) -> bool {
        self.len() < self.capacity() || self.is_closed()
    }

    /// A receive could complete now (or would fail with Closed).
    pub(crate) fn recv_ready(&self) -> bool {
        self.len() > 0 || self.is_closed()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // Exclusive access: no other thread can touch the ring any more.
        let mut head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        while head != tail {
            let slot = &self.buffer[head & self.mask];
            // SAFETY: [head, tail) holds initialized items nobody else can reach.
            slot.with_mut(|p| unsafe { (*p).assume_init_drop() });
            head = head.wrapping_add(1);
        }
    }
}
