//! The unbounded MPMC algorithm: a linked list of fixed-size blocks.
//!
//! Positions are claimed with compare-and-swap on `tail` (senders) and `head`
//! (receivers) exactly as in the array queue, but slots live in blocks of
//! `BLOCK_CAP` that are allocated as the tail advances and freed as the head
//! leaves them, so the channel grows and shrinks with its contents. Every
//! `LAP` positions one position is a sentinel that belongs to no slot: the
//! sender that claims the last slot of a block installs the next block and
//! steps `tail` over the sentinel; a thread that finds a position on a
//! sentinel waits the few instructions until that happens.
//!
//! A slot's `state` records `WRITE` (the value is in), `READ` (the value was
//! taken) and `DESTROY` (the block is being freed). The receiver of a block's
//! last slot frees the block once every other slot is read; a receiver still
//! busy in an earlier slot when that happens sees `DESTROY` when it finishes
//! and completes the freeing itself. No thread ever touches a block after it
//! is freed, with no garbage collector. This is the design of
//! crossbeam-channel's list flavor.
//!
//! `tail` carries the CLOSED bit; in `head` the same bit says "the head's
//! block is not the last one", which lets a receiver skip reading `tail`.

use crate::error::{Fail, Rejected};
use crate::sync::{fence, AtomicPtr, AtomicU64, AtomicUsize, Backoff, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;
use std::ptr;

const WRITE: usize = 1;
const READ: usize = 2;
const DESTROY: usize = 4;

/// Positions per block, one of them the sentinel. Small under loom, so that
/// the models cross block boundaries.
#[cfg(not(loom))]
const LAP: u64 = 32;
#[cfg(loom)]
const LAP: u64 = 3;
/// Slots per block.
const BLOCK_CAP: u64 = LAP - 1;
/// Low bits of an index reserved for the mark bit.
const SHIFT: u32 = 1;
/// In `tail`: closed. In `head`: the head's block has a successor.
const MARK: u64 = 1;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

impl<T> Slot<T> {
    /// Waits for the sender that claimed this slot to finish writing (a few
    /// instructions away: the claim and the write are back to back).
    fn wait_write(&self) {
        let mut backoff = Backoff::new();
        // Acquire: pairs with the sender's Release `fetch_or(WRITE)`.
        while self.state.load(Ordering::Acquire) & WRITE == 0 {
            backoff.snooze();
        }
    }
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP as usize],
}

impl<T> Block<T> {
    fn new() -> Box<Self> {
        Box::new(Block {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                state: AtomicUsize::new(0),
            }),
        })
    }

    /// Waits until the sender that filled this block's last slot links the
    /// next block.
    fn wait_next(&self) -> *mut Block<T> {
        let mut backoff = Backoff::new();
        loop {
            // Acquire: pairs with the Release store that links the block, so
            // its initialization is visible.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.snooze();
        }
    }

    /// Frees the block once the slots from `start` on are all read; a slot
    /// still being read is marked DESTROY and its reader finishes the job.
    ///
    /// # Safety
    /// Every slot before `start` has been read, and the caller is the thread
    /// responsible for freeing (the reader of the last slot, or of a marked one).
    unsafe fn destroy(this: *mut Self, start: u64) {
        // The last slot's reader started the destruction; it needs no mark.
        for i in start..BLOCK_CAP - 1 {
            // SAFETY: the block is alive until this function frees it.
            let slot = unsafe { &(*this).slots[i as usize] };
            // Acquire/AcqRel: see the reader's Release/AcqRel on `state`, so
            // its read of the value is complete before we free the memory.
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(DESTROY, Ordering::AcqRel) & READ == 0
            {
                // That slot's reader will continue from `i + 1`.
                return;
            }
        }
        // SAFETY: every slot is read and nobody else holds the block.
        drop(unsafe { Box::from_raw(this) });
    }
}

struct Position<T> {
    index: AtomicU64,
    block: AtomicPtr<Block<T>>,
}

pub(crate) struct List<T> {
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
}

// SAFETY: values move between threads (`T: Send`); slots are handed out by
// the claims on `head`/`tail`, blocks are freed by exactly one thread.
unsafe impl<T: Send> Send for List<T> {}
// SAFETY: see above.
unsafe impl<T: Send> Sync for List<T> {}

#[inline]
fn pos(index: u64) -> u64 {
    index >> SHIFT
}

#[inline]
fn offset(index: u64) -> u64 {
    pos(index) % LAP
}

impl<T> List<T> {
    pub(crate) fn new() -> Self {
        List {
            head: CachePadded::new(Position { index: AtomicU64::new(0), block: AtomicPtr::new(ptr::null_mut()) }),
            tail: CachePadded::new(Position { index: AtomicU64::new(0), block: AtomicPtr::new(ptr::null_mut()) }),
        }
    }

    /// Sends from any thread; fails only when closed.
    #[inline(never)]
    pub(crate) fn try_push(&self, value: T) -> Result<(), Rejected<T>> {
        let mut backoff = Backoff::new();
        // Acquire: pairs with the Release stores that advance `tail` over a
        // sentinel and install a block, so the block we read is initialized.
        let mut tail = self.tail.index.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        let mut spare: Option<Box<Block<T>>> = None;
        loop {
            if tail & MARK != 0 {
                return Err(Rejected::new(Fail::Closed, value));
            }
            let off = offset(tail);
            if off == BLOCK_CAP {
                // On the sentinel: the next block is being installed.
                backoff.snooze();
                tail = self.tail.index.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            // Claiming the last slot obliges us to install the next block:
            // allocate it before claiming, to keep others' wait short.
            if off + 1 == BLOCK_CAP && spare.is_none() {
                spare = Some(Block::new());
            }
            if block.is_null() {
                // The very first send allocates the first block.
                let first = Box::into_raw(spare.take().unwrap_or_else(Block::new));
                // Release: publishes the block's initialization.
                match self.tail.block.compare_exchange(block, first, Ordering::Release, Ordering::Relaxed) {
                    Ok(_) => {
                        // Release: receivers' Acquire load sees an initialized block.
                        self.head.block.store(first, Ordering::Release);
                        block = first;
                    }
                    Err(_) => {
                        // SAFETY: we allocated `first` and never shared it.
                        spare = Some(unsafe { Box::from_raw(first) });
                        tail = self.tail.index.load(Ordering::Acquire);
                        block = self.tail.block.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            // SeqCst: the claim is ordered with receivers' SeqCst fence and
            // head CAS (see `try_pop`), so a receiver that sees an empty list
            // cannot miss a claim that precedes its own.
            match self.tail.index.compare_exchange_weak(tail, tail + (1 << SHIFT), Ordering::SeqCst, Ordering::Acquire)
            {
                Ok(_) => {
                    if off + 1 == BLOCK_CAP {
                        let next = Box::into_raw(spare.take().expect("allocated above"));
                        // Release (all three): the new block is initialized before
                        // anyone can reach it through `tail.block`, `tail.index`
                        // (stepping over the sentinel) or `next`.
                        self.tail.block.store(next, Ordering::Release);
                        self.tail.index.fetch_add(1 << SHIFT, Ordering::Release);
                        // SAFETY: `block` is alive: its last slot is ours and unread.
                        unsafe { (*block).next.store(next, Ordering::Release) };
                    }
                    // SAFETY: the claim gives us the slot; the block stays
                    // alive until its slots are read, ours included.
                    unsafe {
                        let slot = &(*block).slots[off as usize];
                        slot.value.with_mut(|p| (*p).write(value));
                        // Release: publishes the value to the reader's Acquire.
                        slot.state.fetch_or(WRITE, Ordering::Release);
                    }
                    return Ok(());
                }
                Err(current) => {
                    tail = current;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Receives from any thread; after `close`, the remaining items, then
    /// `Closed`.
    #[inline(never)]
    pub(crate) fn try_pop(&self) -> Result<T, Fail> {
        let mut backoff = Backoff::new();
        // Acquire: pairs with the Release stores that move the head to the
        // next block.
        let mut head = self.head.index.load(Ordering::Acquire);
        let mut block = self.head.block.load(Ordering::Acquire);
        loop {
            let off = offset(head);
            if off == BLOCK_CAP {
                // On the sentinel: another receiver is moving to the next block.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            let mut new_head = head + (1 << SHIFT);
            if new_head & MARK == 0 {
                // We do not know yet whether the head's block has a successor:
                // compare with the tail. SeqCst fence: pairs with the senders'
                // SeqCst claim so that the tail we read is not older than any
                // claim that happened before our own CAS below.
                fence(Ordering::SeqCst);
                let tail = self.tail.index.load(Ordering::Relaxed);
                if pos(head) == pos(tail) {
                    return Err(if tail & MARK != 0 { Fail::Closed } else { Fail::Empty });
                }
                if pos(head) / LAP != pos(tail) / LAP {
                    new_head |= MARK;
                }
            }
            if block.is_null() {
                // The first block is being installed by the first sender.
                backoff.snooze();
                head = self.head.index.load(Ordering::Acquire);
                block = self.head.block.load(Ordering::Acquire);
                continue;
            }
            // SeqCst: see the fence above.
            match self.head.index.compare_exchange_weak(head, new_head, Ordering::SeqCst, Ordering::Acquire) {
                Ok(_) => {
                    // SAFETY: our claim keeps the block alive until we mark our
                    // slot READ (or free the block as its last reader).
                    unsafe {
                        if off + 1 == BLOCK_CAP {
                            // Move the head to the next block for everybody.
                            let next = (*block).wait_next();
                            let mut next_index = (new_head & !MARK) + (1 << SHIFT);
                            // Relaxed: a hint only; a stale null costs one tail read.
                            if !(*next).next.load(Ordering::Relaxed).is_null() {
                                next_index |= MARK;
                            }
                            // Release: later receivers see the next block initialized.
                            self.head.block.store(next, Ordering::Release);
                            self.head.index.store(next_index, Ordering::Release);
                        }
                        let slot = &(*block).slots[off as usize];
                        slot.wait_write();
                        let value = slot.value.with(|p| (*p).assume_init_read());
                        if off + 1 == BLOCK_CAP {
                            Block::destroy(block, 0);
                        } else if slot.state.fetch_or(READ, Ordering::AcqRel) & DESTROY != 0 {
                            // The last reader tried to free the block while we
                            // were reading: we finish it.
                            Block::destroy(block, off + 1);
                        }
                        return Ok(value);
                    }
                }
                Err(current) => {
                    head = current;
                    block = self.head.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
    }

    /// Sets the CLOSED bit; returns false if it was already set.
    pub(crate) fn close(&self) -> bool {
        // SeqCst: ordered with claims (SeqCst CAS) and receivers' fence.
        self.tail.index.fetch_or(MARK, Ordering::SeqCst) & MARK == 0
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.tail.index.load(Ordering::SeqCst) & MARK != 0
    }

    /// Items in the list (a snapshot).
    pub(crate) fn len(&self) -> usize {
        loop {
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            // A consistent pair: the tail did not move while we read the head.
            if self.tail.index.load(Ordering::SeqCst) == tail {
                let (h, t) = (pos(head), pos(tail));
                // Positions in [h, t) minus the sentinels among them.
                return (t - h - (t / LAP - h / LAP)) as usize;
            }
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        usize::MAX
    }

    pub(crate) fn send_ready(&self) -> bool {
        true
    }

    pub(crate) fn recv_ready(&self) -> bool {
        let head = self.head.index.load(Ordering::SeqCst);
        let tail = self.tail.index.load(Ordering::SeqCst);
        pos(head) != pos(tail) || tail & MARK != 0
    }
}

impl<T> Drop for List<T> {
    fn drop(&mut self) {
        // Exclusive access: every claimed slot was written (claims and writes
        // are back to back and cannot fail in between).
        let mut head = pos(self.head.index.load(Ordering::Relaxed));
        let tail = pos(self.tail.index.load(Ordering::Relaxed));
        let mut block = self.head.block.load(Ordering::Relaxed);
        // SAFETY: we own every block from the head's on, and the values in
        // [head, tail) that are not sentinels.
        unsafe {
            while head != tail {
                let off = head % LAP;
                if off < BLOCK_CAP {
                    let slot = &(*block).slots[off as usize];
                    slot.value.with_mut(|p| (*p).assume_init_drop());
                } else {
                    let next = (*block).next.load(Ordering::Relaxed);
                    drop(Box::from_raw(block));
                    block = next;
                }
                head += 1;
            }
            if !block.is_null() {
                drop(Box::from_raw(block));
            }
        }
    }
}
