//! Cancellation: tokens in a tree, callbacks, deadlines and shields.
//!
//! A [`CancelToken`] is a cheap, cloneable handle on one node of a tree.
//! Cancelling a node cancels every descendant, exactly once each, with the
//! same [`CancelReason`]; nodes created under a cancelled parent start
//! cancelled. Callbacks registered with [`CancelToken::on_cancel`] run once,
//! on the thread that cancels (or at once, on the registering thread, if the
//! token is already cancelled); dropping the returned [`CallbackGuard`]
//! withdraws a callback that has not run.
//!
//! Deadlines are tokens too: [`CancelToken::with_deadline`] makes a child that
//! one timer thread cancels with [`CancelReason::DeadlineExceeded`] when its
//! time comes. The timer sleeps until the earliest deadline (a condition
//! variable with a timeout), never on a polling tick.
//!
//! Blocking operations take a token through
//! [`WaitOptions::cancel`](crate::WaitOptions::cancel) and end with
//! [`Error::Cancelled`] (or [`Error::Timeout`] for a deadline) as soon as it
//! fires: the token's callback wakes the parked thread.
//!
//! ```
//! use nimsync_core::{CancelToken, Channel, Error, Mode, WaitOptions};
//! use std::time::Duration;
//!
//! let root = CancelToken::new();
//! let job = root.child();
//! let ch = Channel::<u32>::new(4, Mode::Mpmc).unwrap();
//! let stopper = std::thread::spawn({
//!     let root = root.clone();
//!     move || {
//!         std::thread::sleep(Duration::from_millis(10));
//!         root.cancel("shutting down");
//!     }
//! });
//! // Blocks until the root is cancelled, then returns Cancelled.
//! assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&job)), Err(Error::Cancelled));
//! assert_eq!(job.reason().unwrap().to_string(), "cancelled: shutting down");
//! stopper.join().unwrap();
//!
//! let quick = CancelToken::new().with_timeout(Duration::from_millis(5));
//! assert_eq!(ch.recv_with(&WaitOptions::new().cancel(&quick)), Err(Error::Timeout));
//! ```

use crate::error::Error;
use crate::sync::{lock, AtomicBool, Mutex, Ordering};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Why a token was cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// [`CancelToken::cancel`] was called (on this token or an ancestor),
    /// with this message.
    Requested(Arc<str>),
    /// The token's deadline (or an ancestor's) passed.
    DeadlineExceeded,
}

impl CancelReason {
    /// The error a blocking operation ends with when its token fires for this
    /// reason: [`Error::Timeout`] for a deadline, [`Error::Cancelled`] otherwise.
    pub fn to_error(&self) -> Error {
        match self {
            CancelReason::DeadlineExceeded => Error::Timeout,
            CancelReason::Requested(_) => Error::Cancelled,
        }
    }
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Requested(m) if m.is_empty() => f.write_str("cancelled"),
            CancelReason::Requested(m) => write!(f, "cancelled: {m}"),
            CancelReason::DeadlineExceeded => f.write_str("deadline exceeded"),
        }
    }
}

type Callback = Box<dyn FnOnce(&CancelReason) + Send>;

/// What the node's lock protects.
#[derive(Default)]
struct State {
    reason: Option<CancelReason>,
    children: HashMap<u64, Weak<Node>>,
    callbacks: HashMap<u64, Callback>,
    next_key: u64,
}

struct Node {
    /// Set (under the lock, after `reason`) when cancelled; read without it.
    cancelled: AtomicBool,
    state: Mutex<State>,
    /// The parent and our key in its `children`, to unlink on drop. Strong:
    /// a token keeps its ancestors alive, so `root.child().child()` is still
    /// cancelled with `root` after the middle handle is gone (parents hold
    /// their children weakly, so there is no cycle).
    parent: Option<(Arc<Node>, u64)>,
    /// Our entry in the timer, to withdraw on drop.
    timer_key: Option<u64>,
}

/// A handle on one node of a cancellation tree. Clones share the node.
///
/// ```
/// use nimsync_core::{CancelReason, CancelToken};
/// let parent = CancelToken::new();
/// let child = parent.child();
/// let grandchild = child.child();
/// assert!(parent.cancel("stop"));
/// assert!(!parent.cancel("again"), "cancels once");
/// assert!(grandchild.is_cancelled());
/// assert_eq!(grandchild.reason(), Some(CancelReason::Requested("stop".into())));
/// ```
#[derive(Clone)]
pub struct CancelToken {
    node: Arc<Node>,
}

impl Default for CancelToken {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken").field("reason", &self.reason()).finish()
    }
}

impl CancelToken {
    /// A root token: cancelled only by [`cancel`](Self::cancel) on it or by
    /// its own deadline.
    pub fn new() -> Self {
        CancelToken { node: Arc::new(Node::new(None, None)) }
    }

    /// A child: cancelled when this token is, or on its own.
    pub fn child(&self) -> CancelToken {
        self.child_with(None)
    }

    fn child_with(&self, timer_key: Option<u64>) -> CancelToken {
        let mut st = lock(&self.node.state);
        let key = st.next_key;
        st.next_key += 1;
        let child = Arc::new(Node::new(Some((self.node.clone(), key)), timer_key));
        match st.reason.clone() {
            Some(reason) => {
                drop(st);
                child.cancel(reason);
            }
            None => {
                st.children.insert(key, Arc::downgrade(&child));
            }
        }
        CancelToken { node: child }
    }

    /// A token that is *not* cancelled by this one: a shielded scope, for
    /// work that must finish (cleanup, a final write) even while its
    /// surroundings are being cancelled. It can still be cancelled directly
    /// or given a deadline; when the shielded work is done, go back to
    /// checking this (outer) token.
    pub fn shielded(&self) -> CancelToken {
        CancelToken::new()
    }

    /// A child that is cancelled with [`CancelReason::DeadlineExceeded`] at
    /// `deadline` (at once if it has passed), or earlier with this token.
    pub fn with_deadline(&self, deadline: Instant) -> CancelToken {
        if deadline <= Instant::now() {
            let child = self.child();
            child.node.cancel(CancelReason::DeadlineExceeded);
            return child;
        }
        let timer = timer::Timer::get();
        let key = timer.reserve();
        let child = self.child_with(Some(key));
        timer.schedule(key, deadline, Arc::downgrade(&child.node));
        child
    }

    /// [`with_deadline`](Self::with_deadline) `timeout` from now.
    pub fn with_timeout(&self, timeout: Duration) -> CancelToken {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.with_deadline(deadline),
            None => self.child(),
        }
    }

    /// Cancels this token and every descendant with
    /// [`CancelReason::Requested`]`(message)`. Returns false if it was
    /// already cancelled (the first reason stands).
    pub fn cancel(&self, message: &str) -> bool {
        self.node.cancel(CancelReason::Requested(message.into()))
    }

    /// Whether the token is cancelled. One atomic load.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        // Acquire: pairs with the Release in `Node::cancel`, so a caller that
        // sees `true` also sees the reason.
        self.node.cancelled.load(Ordering::Acquire)
    }

    /// Why the token was cancelled, or `None` while it is not.
    pub fn reason(&self) -> Option<CancelReason> {
        if !self.is_cancelled() {
            return None;
        }
        lock(&self.node.state).reason.clone()
    }

    /// `Err` with the error a blocking operation should end with
    /// ([`CancelReason::to_error`]) if the token is cancelled, else `Ok`.
    pub fn check(&self) -> Result<(), Error> {
        match self.reason() {
            Some(r) => Err(r.to_error()),
            None => Ok(()),
        }
    }

    /// Runs `callback` once when the token is cancelled, on the cancelling
    /// thread; at once, on this thread, if it already is. Dropping the guard
    /// withdraws a callback that has not started.
    ///
    /// A callback must not block; it may cancel other tokens.
    ///
    /// ```
    /// use nimsync_core::CancelToken;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let token = CancelToken::new();
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let r = runs.clone();
    /// let _guard = token.on_cancel(move |_| {
    ///     r.fetch_add(1, Ordering::Relaxed);
    /// });
    /// token.cancel("");
    /// token.cancel("");
    /// assert_eq!(runs.load(Ordering::Relaxed), 1);
    /// ```
    #[must_use = "dropping the guard withdraws the callback"]
    pub fn on_cancel(&self, callback: impl FnOnce(&CancelReason) + Send + 'static) -> CallbackGuard {
        let mut st = lock(&self.node.state);
        if let Some(reason) = st.reason.clone() {
            drop(st);
            callback(&reason);
            return CallbackGuard { node: Weak::new(), key: 0 };
        }
        let key = st.next_key;
        st.next_key += 1;
        st.callbacks.insert(key, Box::new(callback));
        CallbackGuard { node: Arc::downgrade(&self.node), key }
    }

    /// Whether two handles share one node.
    pub fn same(&self, other: &CancelToken) -> bool {
        Arc::ptr_eq(&self.node, &other.node)
    }
}

/// Withdraws its callback when dropped (see [`CancelToken::on_cancel`]).
#[must_use = "dropping the guard withdraws the callback"]
pub struct CallbackGuard {
    node: Weak<Node>,
    key: u64,
}

impl CallbackGuard {
    /// Keeps the callback registered for the token's whole life.
    pub fn forget(mut self) {
        self.node = Weak::new();
    }
}

impl Drop for CallbackGuard {
    fn drop(&mut self) {
        if let Some(node) = self.node.upgrade() {
            lock(&node.state).callbacks.remove(&self.key);
        }
    }
}

impl fmt::Debug for CallbackGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackGuard").field("key", &self.key).finish()
    }
}

impl Node {
    fn new(parent: Option<(Arc<Node>, u64)>, timer_key: Option<u64>) -> Self {
        Node { cancelled: AtomicBool::new(false), state: Mutex::new(State::default()), parent, timer_key }
    }

    /// Cancels this node and its subtree; false if it was already cancelled.
    /// Iterative, so a deep chain of tokens cannot overflow the stack.
    fn cancel(self: &Arc<Self>, reason: CancelReason) -> bool {
        let mut pending = vec![self.clone()];
        let mut first = true;
        let mut did = false;
        while let Some(node) = pending.pop() {
            let (callbacks, children) = {
                let mut st = lock(&node.state);
                if st.reason.is_some() {
                    if first {
                        return false;
                    }
                    continue;
                }
                st.reason = Some(reason.clone());
                // Release: publishes the reason (and everything the canceller
                // did before) to `is_cancelled`'s Acquire. The lock already
                // orders it for `reason()`; the flag is for lock-free checks.
                node.cancelled.store(true, Ordering::Release);
                (std::mem::take(&mut st.callbacks), std::mem::take(&mut st.children))
            };
            first = false;
            did = true;
            // Outside the lock: callbacks may register, cancel or drop tokens.
            // Registration order is kept so that earlier callbacks run first.
            let mut callbacks: Vec<(u64, Callback)> = callbacks.into_iter().collect();
            callbacks.sort_by_key(|(k, _)| *k);
            for (_, cb) in callbacks {
                cb(&reason);
            }
            pending.extend(children.into_values().filter_map(|w| w.upgrade()));
        }
        did
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(key) = self.timer_key {
            timer::Timer::get().withdraw(key);
        }
        // Unlink from the parent, and release ancestors that only this chain
        // kept alive one by one rather than recursively, so dropping the
        // last handle of a deep chain cannot overflow the stack.
        let mut link = self.parent.take();
        while let Some((parent, key)) = link {
            lock(&parent.state).children.remove(&key);
            link = match Arc::try_unwrap(parent) {
                // The last handle: take its own link before it drops (its
                // `drop` then only withdraws its timer entry).
                Ok(mut node) => node.parent.take(),
                Err(_) => None,
            };
        }
    }
}

/// The one timer thread behind every deadline token.
mod timer {
    use super::{CancelReason, Node};
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    use std::sync::{Condvar, Mutex, OnceLock, PoisonError, Weak};
    use std::time::Instant;

    #[derive(Default)]
    struct Pending {
        /// Deadlines in order; an entry whose key left `nodes` is skipped.
        heap: BinaryHeap<Reverse<(Instant, u64)>>,
        nodes: HashMap<u64, Weak<Node>>,
        next_key: u64,
        started: bool,
    }

    pub(super) struct Timer {
        pending: Mutex<Pending>,
        changed: Condvar,
    }

    impl Timer {
        pub(super) fn get() -> &'static Timer {
            static TIMER: OnceLock<Timer> = OnceLock::new();
            TIMER.get_or_init(|| Timer { pending: Mutex::new(Pending::default()), changed: Condvar::new() })
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
            self.pending.lock().unwrap_or_else(PoisonError::into_inner)
        }

        pub(super) fn reserve(&self) -> u64 {
            let mut p = self.lock();
            p.next_key += 1;
            p.next_key
        }

        pub(super) fn schedule(&'static self, key: u64, deadline: Instant, node: Weak<Node>) {
            let mut p = self.lock();
            let earliest = p.heap.peek().is_none_or(|Reverse((d, _))| deadline < *d);
            p.heap.push(Reverse((deadline, key)));
            p.nodes.insert(key, node);
            if !p.started {
                p.started = true;
                std::thread::Builder::new()
                    .name("nimsync-timer".into())
                    .spawn(move || self.run())
                    .expect("nimsync: cannot start the timer thread");
            } else if earliest {
                self.changed.notify_one();
            }
        }

        pub(super) fn withdraw(&self, key: u64) {
            let mut p = self.lock();
            p.nodes.remove(&key);
            // Keep the heap from filling with dead entries when many timeouts
            // are dropped long before they expire.
            if p.heap.len() > 64 && p.heap.len() > 2 * p.nodes.len() {
                let pending = &mut *p;
                let nodes = &pending.nodes;
                pending.heap = std::mem::take(&mut pending.heap)
                    .into_iter()
                    .filter(|Reverse((_, k))| nodes.contains_key(k))
                    .collect();
            }
        }

        /// Sleeps until the earliest deadline, cancels what expired, repeats.
        fn run(&self) {
            let mut p = self.lock();
            loop {
                let now = Instant::now();
                let mut expired = Vec::new();
                while let Some(Reverse((deadline, key))) = p.heap.peek().copied() {
                    if deadline > now {
                        break;
                    }
                    p.heap.pop();
                    if let Some(node) = p.nodes.remove(&key).and_then(|w| w.upgrade()) {
                        expired.push(node);
                    }
                }
                if !expired.is_empty() {
                    drop(p);
                    for node in expired {
                        node.cancel(CancelReason::DeadlineExceeded);
                    }
                    p = self.lock();
                    continue;
                }
                p = match p.heap.peek() {
                    Some(Reverse((deadline, _))) => {
                        let wait = deadline.saturating_duration_since(now);
                        self.changed.wait_timeout(p, wait).unwrap_or_else(PoisonError::into_inner).0
                    }
                    None => self.changed.wait(p).unwrap_or_else(PoisonError::into_inner),
                };
            }
        }
    }
}
