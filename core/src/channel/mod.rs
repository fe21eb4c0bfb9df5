//! Bounded channels: one handle type, several algorithms.
//!
//! [`Channel`] is a cloneable handle that can both send and receive, like the
//! original Nim `Channel[T]`; the [`Mode`] chosen at creation picks the
//! algorithm and states how many threads may send and receive at once:
//!
//! | mode | algorithm | file |
//! |------|-----------|------|
//! | [`Mode::Spsc`] | cached-index ring, guarded sides | `ring.rs` |
//! | [`Mode::Mpsc`] | stamped array queue: CAS to send, plain stores to receive | `array.rs` |
//! | [`Mode::Spmc`] | stamped array queue: plain stores to send, CAS to receive | `array.rs` |
//! | [`Mode::Mpmc`] | stamped array queue: CAS on both sides | `array.rs` |
//! | [`Mode::Mpmc`], capacity 0 | rendezvous: offers and wants under a lock | `zero.rs` |
//! | [`Channel::unbounded`] (MPMC) | linked list of blocks | `list.rs` |
//!
//! A side that allows one thread (both sides of SPSC, the receiving side of
//! MPSC, the sending side of SPMC) checks that at run time: a second thread
//! using it at the same moment gets [`Error::Busy`], never a data race.
//!
//! Blocking operations spin briefly, then park in a wait queue and are woken
//! by the operation that makes them possible: one receiver per item sent, one
//! sender per slot freed, everybody on [`Channel::close`]. Nothing polls.
//!
//! ```
//! use nimsync_core::{Channel, Mode};
//! use std::thread;
//!
//! let ch = Channel::new(1024, Mode::Spsc).unwrap();
//! let tx = ch.clone();
//! let producer = thread::spawn(move || {
//!     for i in 0..10_000u64 {
//!         tx.send(i).unwrap();
//!     }
//!     tx.close();
//! });
//! let mut sum = 0;
//! while let Ok(v) = ch.recv() {
//!     sum += v;
//! }
//! producer.join().unwrap();
//! assert_eq!(sum, (0..10_000u64).sum());
//! ```

pub(crate) mod array;
mod future;
pub(crate) mod list;
pub(crate) mod ring;
mod side;
pub(crate) mod zero;

use crate::error::{Error, Fail, Rejected, SendError};
use crate::sync::{Arc, UnsafeCell};
pub use future::{RecvFuture, SendFuture};

use crate::waiter::{block_on, WaitOptions, WaitQueue};
use crossbeam_utils::CachePadded;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// The largest capacity a channel accepts (2^30 slots).
pub const MAX_CAPACITY: usize = 1 << 30;

/// How many threads may use each side of a channel, which picks its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// One sender and one receiver at a time.
    Spsc,
    /// Any number of senders, one receiver at a time.
    Mpsc,
    /// One sender at a time, any number of receivers.
    Spmc,
    /// Any number of senders and receivers.
    Mpmc,
}

impl Mode {
    /// Every mode, in the order of their C constants.
    pub const ALL: [Mode; 4] = [Mode::Spsc, Mode::Mpsc, Mode::Spmc, Mode::Mpmc];

    /// The mode's lowercase name (`"spsc"`, `"mpsc"`, `"spmc"`, `"mpmc"`).
    pub fn name(self) -> &'static str {
        match self {
            Mode::Spsc => "spsc",
            Mode::Mpsc => "mpsc",
            Mode::Spmc => "spmc",
            Mode::Mpmc => "mpmc",
        }
    }

    /// Parses a mode name, case-insensitively.
    ///
    /// ```
    /// use nimsync_core::Mode;
    /// assert_eq!("MPSC".parse::<Mode>().unwrap(), Mode::Mpsc);
    /// for mode in Mode::ALL {
    ///     assert_eq!(Mode::from_name(mode.name()), Ok(mode));
    /// }
    /// assert!("fifo".parse::<Mode>().is_err());
    /// ```
    pub fn from_name(name: &str) -> Result<Self, Error> {
        let lower = name.to_ascii_lowercase();
        Mode::ALL.into_iter().find(|m| m.name() == lower).ok_or_else(|| {
            Error::invalid(
                "mode",
                format!("unknown channel mode {name:?}; expected \"spsc\", \"mpsc\", \"spmc\" or \"mpmc\""),
            )
        })
    }
}

impl std::str::FromStr for Mode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Mode::from_name(s)
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// One `Flavor` lives inside each channel's `Arc`; boxing the larger variant
// would add a pointer chase to every operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Flavor<T> {
    Spsc(ring::Ring<T>),
    Mpsc(array::ArrayQueue<T, true, false>),
    Spmc(array::ArrayQueue<T, false, true>),
    Mpmc(array::ArrayQueue<T, true, true>),
    Zero(zero::Zero<T>),
    List(list::List<T>),
}

/// A queue plus the threads blocked on either side of it.
pub(crate) struct Shared<Q> {
    pub(crate) queue: Q,
    /// Senders waiting for a free slot.
    pub(crate) senders: CachePadded<WaitQueue>,
    /// Receivers waiting for an item.
    pub(crate) receivers: CachePadded<WaitQueue>,
}

impl<Q> Shared<Q> {
    pub(crate) fn new(queue: Q) -> Self {
        crate::barrier::init();
        Shared { queue, senders: CachePadded::new(WaitQueue::new()), receivers: CachePadded::new(WaitQueue::new()) }
    }
}

/// Checks a requested capacity and rounds it up to a power of two.
pub(crate) fn checked_capacity(capacity: usize) -> Result<usize, Error> {
    if capacity == 0 {
        return Err(Error::invalid("capacity", "must be at least 1"));
    }
    if capacity > isize::MAX as usize {
        return Err(Error::invalid(
            "capacity",
            format!("{capacity} is not a valid size (a negative number converted to an unsigned size?)"),
        ));
    }
    if capacity > MAX_CAPACITY {
        return Err(Error::invalid("capacity", format!("{capacity} exceeds the maximum of {MAX_CAPACITY}")));
    }
    Ok(capacity.next_power_of_two())
}

/// Allocates `n` elements made by `make`, reporting failure instead of aborting.
pub(crate) fn try_alloc<E>(n: usize, make: impl Fn(usize) -> E) -> Result<Box<[E]>, Error> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfMemory(format!("{n} slots of {} bytes each", std::mem::size_of::<E>())))?;
    v.extend((0..n).map(make));
    Ok(v.into_boxed_slice())
}

/// Runs `$body` with `$q` bound to whichever queue the flavor holds.
macro_rules! each_flavor {
    ($flavor:expr, $q:ident => $body:expr) => {
        match $flavor {
            Flavor::Spsc($q) => $body,
            Flavor::Mpsc($q) => $body,
            Flavor::Spmc($q) => $body,
            Flavor::Mpmc($q) => $body,
            Flavor::Zero($q) => $body,
            Flavor::List($q) => $body,
        }
    };
}

impl<T> Flavor<T> {
    fn new(capacity: usize, mode: Mode) -> Result<Self, Error> {
        if capacity == 0 {
            return match mode {
                Mode::Mpmc => Ok(Flavor::Zero(zero::Zero::new())),
                _ => Err(Error::invalid(
                    "capacity",
                    format!("must be at least 1 for mode {mode}; capacity 0 (a rendezvous channel) needs mode MPMC"),
                )),
            };
        }
        let cap = checked_capacity(capacity)?;
        let slots = || try_alloc(cap, |i| array::Slot::new(i as u64));
        Ok(match mode {
            Mode::Spsc => {
                Flavor::Spsc(ring::Ring::new(cap, try_alloc(cap, |_| UnsafeCell::new(MaybeUninit::uninit()))?))
            }
            Mode::Mpsc => Flavor::Mpsc(array::ArrayQueue::new(slots()?)),
            Mode::Spmc => Flavor::Spmc(array::ArrayQueue::new(slots()?)),
            Mode::Mpmc => Flavor::Mpmc(array::ArrayQueue::new(slots()?)),
        })
    }

    #[inline]
    fn try_push(&self, value: T) -> Result<(), Rejected<T>> {
        each_flavor!(self, q => q.try_push(value))
    }

    #[inline]
    fn try_pop(&self) -> Result<T, Fail> {
        each_flavor!(self, q => q.try_pop())
    }

    fn close(&self) -> bool {
        each_flavor!(self, q => q.close())
    }

    fn is_closed(&self) -> bool {
        each_flavor!(self, q => q.is_closed())
    }

    fn len(&self) -> usize {
        each_flavor!(self, q => q.len())
    }

    fn capacity(&self) -> usize {
        each_flavor!(self, q => q.capacity())
    }

    fn send_ready(&self) -> bool {
        each_flavor!(self, q => q.send_ready())
    }

    fn recv_ready(&self) -> bool {
        each_flavor!(self, q => q.recv_ready())
    }
}

/// A bounded channel handle; clones share the same channel.
///
/// Every method takes `&self` and is safe from any thread; how many threads
/// may *send* or *receive* at the same moment depends on the [`Mode`] (see the
/// [module docs](self)). Dropping the last handle drops the items still inside.
pub struct Channel<T> {
    shared: Arc<Shared<Flavor<T>>>,
    mode: Mode,
}

impl<T> Clone for Channel<T> {
    fn clone(&self) -> Self {
        Channel { shared: self.shared.clone(), mode: self.mode }
    }
}

impl<T> std::fmt::Debug for Channel<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("mode", &self.mode)
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl<T: Send> Channel<T> {
    /// Creates a channel holding at least `capacity` items (rounded up to a
    /// power of two, as the original nimsync did).
    ///
    /// Fails with [`Error::InvalidArgument`] for a capacity of 0 or above
    /// [`MAX_CAPACITY`], and with [`Error::OutOfMemory`] if the slots cannot be
    /// allocated.
    ///
    /// ```
    /// use nimsync_core::{Channel, Mode};
    /// let ch = Channel::<i32>::new(100, Mode::Mpsc).unwrap();
    /// assert_eq!(ch.capacity(), 128);
    /// assert!(Channel::<i32>::new(0, Mode::Spsc).is_err());
    /// ```
    pub fn new(capacity: usize, mode: Mode) -> Result<Self, Error> {
        Ok(Channel { shared: Arc::new(Shared::new(Flavor::new(capacity, mode)?)), mode })
    }

    /// Creates an unbounded MPMC channel: sends never wait and never fail
    /// except after `close`. [`capacity`](Self::capacity) reports `usize::MAX`.
    ///
    /// ```
    /// use nimsync_core::Channel;
    /// let ch = Channel::unbounded();
    /// for i in 0..10_000 {
    ///     ch.try_send(i).unwrap();
    /// }
    /// assert_eq!(ch.len(), 10_000);
    /// ```
    pub fn unbounded() -> Self {
        Channel { shared: Arc::new(Shared::new(Flavor::List(list::List::new()))), mode: Mode::Mpmc }
    }

    /// Whether this channel is unbounded (see [`unbounded`](Self::unbounded)).
    pub fn is_unbounded(&self) -> bool {
        matches!(self.shared.queue, Flavor::List(_))
    }

    /// Sends without blocking: [`Error::Full`], [`Error::Closed`] or
    /// [`Error::Busy`] hand the value back.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), SendError<T>> {
        self.push(value).map_err(SendError::from)
    }

    /// `try_send` with the register-sized internal error.
    #[inline]
    fn push(&self, value: T) -> Result<(), Rejected<T>> {
        let s = &*self.shared;
        s.queue.try_push(value)?;
        s.receivers.notify_one();
        Ok(())
    }

    /// `try_recv` with the register-sized internal error.
    #[inline]
    fn pop(&self) -> Result<T, Fail> {
        let s = &*self.shared;
        let v = s.queue.try_pop()?;
        s.senders.notify_one();
        Ok(v)
    }

    /// Sends if a slot is free right now, otherwise hands the value back
    /// without saying why (full, closed or busy: [`try_send`](Self::try_send)
    /// tells). No error is built, so this is the cheapest non-blocking send,
    /// for callers that keep their own slow path (the C ABI does).
    ///
    /// ```
    /// use nimsync_core::{Channel, Mode};
    /// let ch = Channel::new(1, Mode::Spsc).unwrap();
    /// assert_eq!(ch.offer(1), Ok(()));
    /// assert_eq!(ch.offer(2), Err(2));
    /// ```
    #[inline]
    pub fn offer(&self, value: T) -> Result<(), T> {
        self.push(value).map_err(|r| r.value)
    }

    /// Receives an item if one is there right now; `None` otherwise (empty,
    /// closed or busy: [`try_recv`](Self::try_recv) tells which). The
    /// receiving counterpart of [`offer`](Self::offer).
    ///
    /// ```
    /// use nimsync_core::{Channel, Mode};
    /// let ch = Channel::new(1, Mode::Spsc).unwrap();
    /// assert_eq!(ch.take(), None);
    /// ch.send(7).unwrap();
    /// assert_eq!(ch.take(), Some(7));
    /// ```
    #[inline]
    pub fn take(&self) -> Option<T> {
        self.pop().ok()
    }

    /// Receives without blocking: [`Error::Empty`] when nothing is there,
    /// [`Error::Closed`] when closed and drained.
    #[inline]
    pub fn try_recv(&self) -> Result<T, Error> {
        self.pop().map_err(Error::from)
    }

    /// Sends, waiting for a free slot as long as it takes.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.push(value) {
            Ok(()) => Ok(()),
            Err(Rejected { fail: Fail::Full, value }) => self.send_waiting(value),
            Err(r) => Err(r.into()),
        }
    }

    // The waiting path stays out of line so that the fast path above inlines
    // into the caller's loop with a small frame.
    #[cold]
    #[inline(never)]
    fn send_waiting(&self, value: T) -> Result<(), SendError<T>> {
        self.send_with(value, &WaitOptions::new())
    }

    /// Sends, waiting at most `timeout` ([`Error::Timeout`] hands the value back).
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_with(value, &WaitOptions::new().deadline_opt(Instant::now().checked_add(timeout)))
    }

    /// Sends, waiting until `deadline` at the latest.
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendError<T>> {
        self.send_with(value, &WaitOptions::new().deadline(deadline))
    }

    /// Sends, waiting as `opts` allows. On failure the value comes back.
    pub fn send_with(&self, value: T, opts: &WaitOptions<'_>) -> Result<(), SendError<T>> {
        let s = &*self.shared;
        if let Flavor::Zero(z) = &s.queue {
            return z.send(value, opts, &s.receivers);
        }
        let mut pending = Some(value);
        let outcome = block_on(
            &s.senders,
            opts,
            || {
                let v = pending.take().expect("value present until sent");
                match self.push(v) {
                    Ok(()) => Some(Ok(())),
                    Err(Rejected { fail: Fail::Full, value }) => {
                        pending = Some(value);
                        None
                    }
                    Err(r) => Some(Err(r.into())),
                }
            },
            || s.queue.send_ready(),
        );
        match outcome {
            Ok(r) => r,
            Err(error) => Err(SendError::new(error, pending.take().expect("value kept on failure"))),
        }
    }

    /// Receives, waiting for an item as long as it takes; [`Error::Closed`]
    /// once the channel is closed and drained.
    #[inline]
    pub fn recv(&self) -> Result<T, Error> {
        match self.pop() {
            Ok(v) => Ok(v),
            Err(Fail::Empty) => self.recv_waiting(),
            Err(f) => Err(f.into()),
        }
    }

    #[cold]
    #[inline(never)]
    fn recv_waiting(&self) -> Result<T, Error> {
        self.recv_with(&WaitOptions::new())
    }

    /// Receives, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.recv_with(&WaitOptions::new().deadline_opt(Instant::now().checked_add(timeout)))
    }

    /// Receives, waiting until `deadline` at the latest.
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, Error> {
        self.recv_with(&WaitOptions::new().deadline(deadline))
    }

    /// Receives, waiting as `opts` allows.
    pub fn recv_with(&self, opts: &WaitOptions<'_>) -> Result<T, Error> {
        let s = &*self.shared;
        if let Flavor::Zero(z) = &s.queue {
            return z.recv(opts, &s.senders, &s.receivers);
        }
        block_on(
            &s.receivers,
            opts,
            || match self.pop() {
                Ok(v) => Some(Ok(v)),
                Err(Fail::Empty) => None,
                Err(f) => Some(Err(f.into())),
            },
            || s.queue.recv_ready(),
        )?
    }

    /// Receives everything left without blocking (stops at the first `Empty`,
    /// `Closed` or `Busy`). Used to hand leftovers to a drop callback.
    pub fn drain(&self) -> impl Iterator<Item = T> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }
}

impl<T> Channel<T> {
    pub(crate) fn receivers_queue(&self) -> &WaitQueue {
        &self.shared.receivers
    }

    pub(crate) fn senders_queue(&self) -> &WaitQueue {
        &self.shared.senders
    }

    pub(crate) fn recv_ready(&self) -> bool {
        self.shared.queue.recv_ready()
    }

    pub(crate) fn send_ready(&self) -> bool {
        self.shared.queue.send_ready()
    }

    /// Closes the channel: later sends fail with [`Error::Closed`], blocked
    /// senders and receivers wake, receivers drain what is left and then get
    /// `Closed`. Returns false if it was already closed.
    ///
    /// ```
    /// use nimsync_core::{Channel, Error, Mode};
    /// let ch = Channel::new(2, Mode::Spsc).unwrap();
    /// ch.send(1).unwrap();
    /// assert!(ch.close());
    /// assert_eq!(ch.try_send(2).unwrap_err().error, Error::Closed);
    /// assert_eq!(ch.recv(), Ok(1));
    /// assert_eq!(ch.recv(), Err(Error::Closed));
    /// ```
    pub fn close(&self) -> bool {
        let s = &*self.shared;
        let closed_now = s.queue.close();
        if closed_now {
            s.senders.notify_all();
            s.receivers.notify_all();
        }
        closed_now
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }

    /// Items inside right now (a snapshot while others are active).
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// True when no item is inside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when every slot is taken.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Slots in the channel (the requested capacity rounded up to a power of two).
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// The mode the channel was created with.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Threads blocked in `send` and in `recv` right now (for diagnostics).
    pub fn waiting(&self) -> (usize, usize) {
        (self.shared.senders.waiting(), self.shared.receivers.waiting())
    }

    /// Number of handles sharing this channel.
    pub fn handle_count(&self) -> usize {
        Arc::strong_count(&self.shared)
    }
}

/// What a metrics source reads from a channel ([`Channel::stats_probe`]).
pub(crate) struct ChannelStats {
    pub(crate) len: usize,
    pub(crate) capacity: usize,
    pub(crate) closed: bool,
    pub(crate) waiting_senders: usize,
    pub(crate) waiting_receivers: usize,
}

impl<T: Send + 'static> Channel<T> {
    /// Reads the channel's gauges without keeping it alive (`None` once the
    /// last handle is gone): what a metrics collector holds.
    #[cfg(not(loom))]
    pub(crate) fn stats_probe(&self) -> Box<dyn Fn() -> Option<ChannelStats> + Send + Sync> {
        let weak = Arc::downgrade(&self.shared);
        Box::new(move || {
            let s = weak.upgrade()?;
            Some(ChannelStats {
                len: s.queue.len(),
                capacity: s.queue.capacity(),
                closed: s.queue.is_closed(),
                waiting_senders: s.senders.waiting(),
                waiting_receivers: s.receivers.waiting(),
            })
        })
    }
}

impl<T: Send> IntoIterator for Channel<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    /// Receives until the channel is closed and drained.
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { channel: self }
    }
}

/// Blocking iterator over received items; ends when the channel is closed and
/// drained.
#[derive(Debug)]
pub struct IntoIter<T> {
    channel: Channel<T>,
}

impl<T: Send> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.channel.recv().ok()
    }
}
