//! The SPSC ring with its two ends as separate owned values.
//!
//! [`channel`] returns a [`Producer`] and a [`Consumer`]. Each is `Send` but not
//! `Clone` or `Sync`, so the type system, not a run-time guard, guarantees one
//! sender and one receiver: this is the fastest channel in nimsync. It blocks
//! and wakes exactly like [`crate::Channel`].
//!
//! Dropping either end closes the channel: the consumer drains what is left
//! and then sees [`Error::Closed`]; the producer's sends fail with `Closed`.
//!
//! ```
//! let (tx, rx) = nimsync_core::spsc::channel::<u64>(1024).unwrap();
//! let t = std::thread::spawn(move || {
//!     for i in 0..1000 {
//!         tx.send(i).unwrap();
//!     }
//! });
//! let received: Vec<u64> = rx.into_iter().collect();
//! t.join().unwrap();
//! assert_eq!(received, (0..1000).collect::<Vec<_>>());
//! ```

use crate::channel::ring::Ring;
use crate::channel::{checked_capacity, try_alloc, Shared};
use crate::error::{Error, SendError};
use crate::sync::{Arc, UnsafeCell};
use crate::waiter::{block_on, WaitOptions};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// Creates an SPSC channel of at least `capacity` slots (rounded up to a power
/// of two).
pub fn channel<T: Send>(capacity: usize) -> Result<(Producer<T>, Consumer<T>), Error> {
    let cap = checked_capacity(capacity)?;
    let ring = Ring::new(cap, try_alloc(cap, |_| UnsafeCell::new(MaybeUninit::uninit()))?);
    let shared = Arc::new(Shared::new(ring));
    Ok((Producer { shared: shared.clone(), _not_sync: PhantomData }, Consumer { shared, _not_sync: PhantomData }))
}

/// `PhantomData<Cell<()>>` makes the ends `Send` but not `Sync`.
type NotSync = PhantomData<std::cell::Cell<()>>;

/// The sending end of an SPSC channel.
pub struct Producer<T> {
    shared: Arc<Shared<Ring<T>>>,
    _not_sync: NotSync,
}

/// The receiving end of an SPSC channel.
pub struct Consumer<T> {
    shared: Arc<Shared<Ring<T>>>,
    _not_sync: NotSync,
}

// SAFETY: the end may move to another thread (items are `Send`); it is not
// `Sync`, so only one thread uses it at a time.
unsafe impl<T: Send> Send for Producer<T> {}
// SAFETY: as for `Producer`.
unsafe impl<T: Send> Send for Consumer<T> {}

impl<T: Send> Producer<T> {
    /// Sends without blocking; `Full` or `Closed` hand the value back.
    #[inline]
    pub fn try_send(&self, value: T) -> Result<(), SendError<T>> {
        let s = &*self.shared;
        if s.queue.is_closed() {
            return Err(SendError::new(Error::Closed, value));
        }
        // SAFETY: `Producer` is neither `Clone` nor `Sync`: we are the only producer.
        unsafe { s.queue.push(value) }.map_err(|v| SendError::new(Error::Full, v))?;
        s.receivers.notify_one();
        Ok(())
    }

    /// Sends, waiting for a free slot.
    #[inline]
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        match self.try_send(value) {
            Err(SendError { error: Error::Full, value }) => self.send_with(value, &WaitOptions::new()),
            r => r,
        }
    }

    /// Sends, waiting at most `timeout`.
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendError<T>> {
        self.send_with(value, &WaitOptions::new().deadline_opt(Instant::now().checked_add(timeout)))
    }

    /// Sends, waiting as `opts` allows; the value comes back on failure.
    pub fn send_with(&self, value: T, opts: &WaitOptions<'_>) -> Result<(), SendError<T>> {
        let s = &*self.shared;
        let mut pending = Some(value);
        let outcome = block_on(
            &s.senders,
            opts,
            || match self.try_send(pending.take().expect("value present until sent")) {
                Ok(()) => Some(Ok(())),
                Err(SendError { error: Error::Full, value }) => {
                    pending = Some(value);
                    None
                }
                Err(e) => Some(Err(e)),
            },
            || s.queue.send_ready(),
        );
        match outcome {
            Ok(r) => r,
            Err(error) => Err(SendError::new(error, pending.take().expect("value kept on failure"))),
        }
    }

    /// Slots in the channel.
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }

    /// Items inside right now.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// True when no item is inside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True once either end closed the channel.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closed()
    }
}

impl<T> Drop for Producer<T> {
    fn drop(&mut self) {
        let s = &*self.shared;
        if s.queue.close_by_producer() {
            s.receivers.notify_all();
        }
    }
}

impl<T: Send> Consumer<T> {
    /// Receives without blocking.
    #[inline]
    pub fn try_recv(&self) -> Result<T, Error> {
        let s = &*self.shared;
        // SAFETY: `Consumer` is neither `Clone` nor `Sync`: we are the only consumer.
        let v = match unsafe { s.queue.pop() } {
            Some(v) => v,
            None => s.queue.empty_or_closed()?,
        };
        s.senders.notify_one();
        Ok(v)
    }

    /// Receives, waiting for an item; `Closed` once closed and drained.
    #[inline]
    pub fn recv(&self) -> Result<T, Error> {
        match self.try_recv() {
            Err(Error::Empty) => self.recv_with(&WaitOptions::new()),
            r => r,
        }
    }

    /// Receives, waiting at most `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, Error> {
        self.recv_with(&WaitOptions::new().deadline_opt(Instant::now().checked_add(timeout)))
    }

    /// Receives, waiting as `opts` allows.
    pub fn recv_with(&self, opts: &WaitOptions<'_>) -> Result<T, Error> {
        let s = &*self.shared;
        block_on(
            &s.receivers,
            opts,
            || match self.try_recv() {
                Ok(v) => Some(Ok(v)),
                Err(Error::Empty) => None,
                Err(e) => Some(Err(e)),
            },
            || s.queue.recv_ready(),
        )?
    }

    /// Items inside right now.
    pub fn len(&self) -> usize {
        self.shared.queue.len()
    }

    /// True when no item is inside.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots in the channel.
    pub fn capacity(&self) -> usize {
        self.shared.queue.capacity()
    }
}

impl<T> Drop for Consumer<T> {
    fn drop(&mut self) {
        let s = &*self.shared;
        if s.queue.close() {
            s.senders.notify_all();
        }
    }
}

impl<T: Send> IntoIterator for Consumer<T> {
    type Item = T;
    type IntoIter = ConsumerIter<T>;
    fn into_iter(self) -> ConsumerIter<T> {
        ConsumerIter { consumer: self }
    }
}

/// Blocking iterator over a [`Consumer`]; ends when the channel is closed and
/// drained.
pub struct ConsumerIter<T> {
    consumer: Consumer<T>,
}

impl<T: Send> Iterator for ConsumerIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.consumer.recv().ok()
    }
}
