//! `Future`s for sending and receiving: the same channel, awaited.
//!
//! A future registers its task's waker in the channel's wait queue exactly
//! where a blocked thread would park, so async tasks, threads and other event
//! loops can share one channel in any mix. Nothing polls: the task is woken by
//! the operation that makes progress possible. Dropping a pending future (task
//! cancellation) leaves the channel consistent and loses no item: a receive
//! never holds an item before it completes, and a wake-up the dropped future
//! received is passed on to the next waiter.
//!
//! ```
//! use nimsync_core::{Channel, Mode};
//! use std::future::Future;
//! use std::pin::pin;
//! use std::task::{Context, Poll, Waker};
//!
//! let ch = Channel::new(4, Mode::Mpmc).unwrap();
//! let mut cx = Context::from_waker(Waker::noop());
//! let mut recv = pin!(ch.recv_async());
//! assert!(recv.as_mut().poll(&mut cx).is_pending());
//! ch.try_send(5).unwrap();
//! assert_eq!(recv.poll(&mut cx), Poll::Ready(Ok(5)));
//! ```

use super::zero::PendingOffer;
use super::{Channel, Flavor};
use crate::error::{Error, SendError};
use crate::waiter::AsyncWait;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Receives one item; see [`Channel::recv_async`].
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<T> {
    channel: Channel<T>,
    wait: AsyncWait,
}

/// Sends one item; see [`Channel::send_async`].
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<T> {
    channel: Channel<T>,
    value: Option<T>,
    wait: AsyncWait,
    /// A rendezvous send's standing offer between polls.
    offer: Option<PendingOffer<T>>,
}

// The futures hold no self-references.
impl<T> Unpin for RecvFuture<T> {}
impl<T> Unpin for SendFuture<T> {}

impl<T: Send> Channel<T> {
    /// Receives an item, waiting asynchronously while the channel is empty;
    /// `Err(Closed)` once it is closed and drained.
    pub fn recv_async(&self) -> RecvFuture<T> {
        RecvFuture { channel: self.clone(), wait: AsyncWait::default() }
    }

    /// Sends `value`, waiting asynchronously while the channel is full. On
    /// failure (`Closed`, `Busy`) the value comes back in the error; dropping
    /// the future before it completes drops the value with it.
    pub fn send_async(&self, value: T) -> SendFuture<T> {
        SendFuture { channel: self.clone(), value: Some(value), wait: AsyncWait::default(), offer: None }
    }

    /// One step of an async receive, for bindings that drive operations from
    /// their own event loop: `Ready` with the outcome, or `Pending` after
    /// registering `cx`'s waker. `wait` must be kept between calls.
    pub(crate) fn poll_recv(&self, wait: &mut AsyncWait, cx: &mut Context<'_>) -> Poll<Result<T, Error>> {
        let s = &*self.shared;
        loop {
            wait.settle(&s.receivers);
            match self.try_recv() {
                Err(Error::Empty) => {}
                done => return Poll::Ready(done),
            }
            if !wait.register(&s.receivers, cx.waker(), || s.queue.recv_ready()) {
                return Poll::Pending;
            }
        }
    }

    pub(crate) fn poll_send(
        &self,
        wait: &mut AsyncWait,
        value: &mut Option<T>,
        offer: &mut Option<PendingOffer<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), SendError<T>>> {
        let s = &*self.shared;
        if let Flavor::Zero(z) = &s.queue {
            // No buffer to wait for: leave an offer that a receiver takes.
            return z.poll_send(offer, value, cx.waker(), &s.receivers);
        }
        loop {
            wait.settle(&s.senders);
            let v = value.take().expect("SendFuture polled after completion");
            match self.try_send(v) {
                Err(SendError { error: Error::Full, value: v }) => *value = Some(v),
                done => return Poll::Ready(done),
            }
            if !wait.register(&s.senders, cx.waker(), || s.queue.send_ready()) {
                return Poll::Pending;
            }
        }
    }
}

impl<T: Send> Future for RecvFuture<T> {
    type Output = Result<T, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.channel.poll_recv(&mut this.wait, cx)
    }
}

impl<T: Send> Future for SendFuture<T> {
    type Output = Result<(), SendError<T>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.channel.poll_send(&mut this.wait, &mut this.value, &mut this.offer, cx)
    }
}

impl<T> Drop for RecvFuture<T> {
    fn drop(&mut self) {
        self.wait.cancel(&self.channel.shared.receivers);
    }
}

impl<T> SendFuture<T> {
    /// Abandons the send and returns the value if it was not sent, or `None`
    /// if it was (a completed future, or a rendezvous receiver that took the
    /// value just before the cancellation).
    pub fn cancel(mut self) -> Option<T> {
        self.withdraw()
    }

    fn withdraw(&mut self) -> Option<T> {
        let from_offer = match &self.channel.shared.queue {
            Flavor::Zero(z) => z.cancel_offer(&mut self.offer),
            _ => None,
        };
        self.wait.cancel(&self.channel.shared.senders);
        from_offer.or_else(|| self.value.take())
    }
}

impl<T> Drop for SendFuture<T> {
    fn drop(&mut self) {
        // The unsent value, if any, is dropped with the future.
        drop(self.withdraw());
    }
}

impl<T> std::fmt::Debug for RecvFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvFuture").finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for SendFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture").field("sent", &self.value.is_none()).finish_non_exhaustive()
    }
}
