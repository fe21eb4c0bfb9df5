//! The rendezvous channel (capacity 0): a send completes only when a receiver
//! takes the value from the sender's hand.
//!
//! There is no buffer. A sender that finds no waiting receiver leaves an
//! *offer* (its value plus its waiting context) and waits; a receiver takes
//! the oldest offer it can claim, selecting the sender's context so that it
//! knows its value is gone. A thread blocked in `recv` leaves a *want* (an
//! empty hand); a sender fills the oldest want it can claim. Offers and wants
//! live under one mutex — the handover is inherently a meeting of two threads,
//! and nothing else contends for it.
//!
//! Claiming goes through the context's selection word, exactly as in
//! `waiter.rs`: a sender that times out claims its own offer with `Aborted`
//! and takes its value back, so a value is either received or returned, never
//! both and never lost. Async receivers and `select` receive cases wait for
//! offers through the channel's receiver readiness queue; async senders leave
//! offers like threads do.

use crate::error::{Error, Fail, Rejected, SendError};
use crate::sync::{lock, Arc, Mutex};
use crate::waiter::{Context, Selected, WaitOptions, WaitQueue, FIRST_OPERATION};
use std::collections::VecDeque;

/// A value on its way from one hand to the other.
pub(crate) struct Packet<T>(Mutex<Option<T>>);

impl<T> Packet<T> {
    fn new(value: Option<T>) -> Arc<Self> {
        Arc::new(Packet(Mutex::new(value)))
    }

    fn take(&self) -> Option<T> {
        lock(&self.0).take()
    }

    fn put(&self, value: T) {
        *lock(&self.0) = Some(value);
    }
}

struct Hand<T> {
    cx: Context,
    packet: Arc<Packet<T>>,
}

struct Inner<T> {
    /// Senders waiting with a value, oldest first.
    offers: VecDeque<Hand<T>>,
    /// Threads blocked in `recv`, oldest first.
    wants: VecDeque<Hand<T>>,
    closed: bool,
}

pub(crate) struct Zero<T> {
    inner: Mutex<Inner<T>>,
}

/// A pending async send's offer, kept by its future between polls.
pub(crate) struct PendingOffer<T> {
    cx: Context,
    packet: Arc<Packet<T>>,
}

impl<T> Zero<T> {
    pub(crate) fn new() -> Self {
        Zero { inner: Mutex::new(Inner { offers: VecDeque::new(), wants: VecDeque::new(), closed: false }) }
    }

    /// Hands `value` to a blocked receiver, if one can be claimed.
    fn give_to_want(inner: &mut Inner<T>, value: T) -> Result<(), T> {
        let mut value = value;
        while let Some(want) = inner.wants.pop_front() {
            // Fill the hand before claiming it: a claimed receiver may read its
            // packet as soon as it sees the selection.
            want.packet.put(value);
            if want.cx.try_select(Selected::Operation(FIRST_OPERATION)).is_ok() {
                want.cx.unpark();
                return Ok(());
            }
            // That receiver gave up (timeout, close); take the value back.
            value = want.packet.take().expect("value just put");
        }
        Err(value)
    }

    /// Takes the value of the oldest sender that can be claimed.
    fn take_from_offer(inner: &mut Inner<T>) -> Option<T> {
        while let Some(offer) = inner.offers.pop_front() {
            if offer.cx.try_select(Selected::Operation(FIRST_OPERATION)).is_ok() {
                let value = offer.packet.take().expect("an offer holds its value until claimed");
                offer.cx.unpark();
                return Some(value);
            }
            // That sender gave up and takes its value back itself.
        }
        None
    }

    #[inline(never)]
    pub(crate) fn try_push(&self, value: T) -> Result<(), Rejected<T>> {
        let mut inner = lock(&self.inner);
        if inner.closed {
            return Err(Rejected::new(Fail::Closed, value));
        }
        Self::give_to_want(&mut inner, value).map_err(|v| Rejected::new(Fail::Full, v))
    }

    #[inline(never)]
    pub(crate) fn try_pop(&self) -> Result<T, Fail> {
        let mut inner = lock(&self.inner);
        match Self::take_from_offer(&mut inner) {
            Some(v) => Ok(v),
            None if inner.closed => Err(Fail::Closed),
            None => Err(Fail::Empty),
        }
    }

    /// Blocking send: waits until a receiver takes the value.
    /// `receivers` is the channel's readiness queue for async and select
    /// receivers, told about the new offer.
    pub(crate) fn send(&self, value: T, opts: &WaitOptions<'_>, receivers: &WaitQueue) -> Result<(), SendError<T>> {
        Context::with(|cx| {
            let packet = {
                // Check for a receiver and leave the offer under one lock, so a
                // receiver cannot slip in between and wait as a want too.
                let mut inner = lock(&self.inner);
                if inner.closed {
                    return Err(SendError::new(Error::Closed, value));
                }
                let packet = match Self::give_to_want(&mut inner, value) {
                    Ok(()) => return Ok(()),
                    Err(v) => Packet::new(Some(v)),
                };
                inner.offers.push_back(Hand { cx: cx.clone(), packet: packet.clone() });
                packet
            };
            receivers.notify_one();
            let (sel, _interrupted) = cx.wait_until(opts);
            if let Selected::Operation(_) = sel {
                // Taken by a receiver: the send happened, even if an interrupt
                // arrived at the same moment (its exception follows a
                // completed send).
                return Ok(());
            }
            // We claimed our own offer: nobody took the value. Remove the offer
            // (a close may have removed it already) and take the value back.
            let mut inner = lock(&self.inner);
            inner.offers.retain(|h| !h.cx.same(cx));
            let value = packet.take().expect("an unclaimed offer keeps its value");
            let error = if inner.closed {
                Error::Closed
            } else if sel == Selected::Interrupted {
                opts.stop_error()
            } else {
                Error::Timeout
            };
            Err(SendError::new(error, value))
        })
    }

    /// Blocking receive: takes an offer, or waits as a want until a sender
    /// fills it. `senders` is the readiness queue of select senders,
    /// `receivers` that of async and select receivers.
    pub(crate) fn recv(&self, opts: &WaitOptions<'_>, senders: &WaitQueue, receivers: &WaitQueue) -> Result<T, Error> {
        let packet = Packet::new(None);
        Context::with(|cx| {
            {
                // Take an offer or leave a want under one lock (see `send`).
                let mut inner = lock(&self.inner);
                if let Some(v) = Self::take_from_offer(&mut inner) {
                    return Ok(v);
                }
                if inner.closed {
                    return Err(Error::Closed);
                }
                inner.wants.push_back(Hand { cx: cx.clone(), packet: packet.clone() });
            }
            senders.notify_one();
            let (sel, interrupted) = cx.wait_until(opts);
            if let Selected::Operation(_) = sel {
                let value = packet.take().expect("a claimed want holds the value");
                if !interrupted {
                    return Ok(value);
                }
                // The interrupt wins, but the value was already handed to us:
                // put it back in front, as an offer whose sender has left, so
                // the next receiver gets it and nothing is lost.
                let mut inner = lock(&self.inner);
                if let Err(value) = Self::give_to_want(&mut inner, value) {
                    inner.offers.push_front(Hand { cx: Context::orphan(), packet: Packet::new(Some(value)) });
                    drop(inner);
                    receivers.notify_one();
                }
                return Err(opts.stop_error());
            }
            let mut inner = lock(&self.inner);
            inner.wants.retain(|h| !h.cx.same(cx));
            Err(if inner.closed {
                Error::Closed
            } else if sel == Selected::Interrupted {
                opts.stop_error()
            } else {
                Error::Timeout
            })
        })
    }

    /// One poll of an async send. `pending` keeps the offer between polls.
    pub(crate) fn poll_send(
        &self,
        pending: &mut Option<PendingOffer<T>>,
        value: &mut Option<T>,
        waker: &std::task::Waker,
        receivers: &WaitQueue,
    ) -> std::task::Poll<Result<(), SendError<T>>> {
        use std::task::Poll;
        if let Some(offer) = pending.take() {
            match offer.cx.try_select(Selected::Aborted) {
                // Taken by a receiver: the send is done.
                Err(Selected::Operation(_)) => return Poll::Ready(Ok(())),
                // Still waiting (now withdrawn, to re-offer with the current
                // waker), or withdrawn by a close: take the value back.
                _ => {
                    lock(&self.inner).offers.retain(|h| !h.cx.same(&offer.cx));
                    *value = offer.packet.take();
                }
            }
        }
        let v = value.take().expect("SendFuture polled after completion");
        let mut inner = lock(&self.inner);
        if inner.closed {
            return Poll::Ready(Err(SendError::new(Error::Closed, v)));
        }
        match Self::give_to_want(&mut inner, v) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(v) => {
                let cx = Context::for_task(waker);
                let packet = Packet::new(Some(v));
                inner.offers.push_back(Hand { cx: cx.clone(), packet: packet.clone() });
                drop(inner);
                receivers.notify_one();
                *pending = Some(PendingOffer { cx, packet });
                Poll::Pending
            }
        }
    }

    /// Withdraws a pending async offer (its future was cancelled) and returns
    /// the value, or `None` if a receiver already took it — then the send
    /// simply happened.
    pub(crate) fn cancel_offer(&self, pending: &mut Option<PendingOffer<T>>) -> Option<T> {
        let offer = pending.take()?;
        match offer.cx.try_select(Selected::Aborted) {
            Ok(()) => {
                lock(&self.inner).offers.retain(|h| !h.cx.same(&offer.cx));
                offer.packet.take()
            }
            Err(Selected::Operation(_)) => None,
            // Withdrawn by a close: the value is still in the packet.
            Err(_) => offer.packet.take(),
        }
    }

    pub(crate) fn close(&self) -> bool {
        let (offers, wants) = {
            let mut inner = lock(&self.inner);
            if inner.closed {
                return false;
            }
            inner.closed = true;
            (std::mem::take(&mut inner.offers), std::mem::take(&mut inner.wants))
        };
        for hand in offers.into_iter().chain(wants) {
            if hand.cx.try_select(Selected::Aborted).is_ok() {
                hand.cx.unpark();
            }
        }
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.inner).closed
    }

    /// A rendezvous channel holds nothing.
    pub(crate) fn len(&self) -> usize {
        0
    }

    pub(crate) fn capacity(&self) -> usize {
        0
    }

    /// A select or async send could complete now: a receiver is blocked, or
    /// the channel is closed.
    pub(crate) fn send_ready(&self) -> bool {
        let inner = lock(&self.inner);
        inner.closed || !inner.wants.is_empty()
    }

    /// A receive could complete now: a sender is offering, or closed.
    pub(crate) fn recv_ready(&self) -> bool {
        let inner = lock(&self.inner);
        inner.closed || !inner.offers.is_empty()
    }
}
