//! How idle worker threads sleep and are woken when work arrives, without a
//! lost wake-up and without polling.
//!
//! The protocol is a Dekker handshake between a worker going to sleep and a
//! thread publishing work:
//!
//! ```text
//! worker:    announce (list += me; sleepers += 1); fence(SeqCst); if work visible { retract } else { park }
//! publisher: publish work;                         fence(SeqCst); if sleepers > 0 { wake one }
//! ```
//!
//! Either the worker's re-check sees the work, or the publisher's load sees
//! the announcement (the two SeqCst fences forbid both missing). A publisher
//! that finds nobody asleep pays one fence and one load. Waking is targeted:
//! one sleeper per published task.

use crate::park::Parker;
use crate::sync::{fence, lock, AtomicUsize, Mutex, Ordering};

/// The sleeping workers of one pool.
pub(crate) struct Idle {
    /// Number of workers in `list`; read without the lock by publishers.
    sleepers: AtomicUsize,
    /// Indices of the sleeping workers, most recent last.
    list: Mutex<Vec<usize>>,
}

impl Idle {
    pub(crate) fn new() -> Self {
        Idle { sleepers: AtomicUsize::new(0), list: Mutex::new(Vec::new()) }
    }

    /// Call after publishing work: wakes one sleeping worker, if any.
    #[inline]
    pub(crate) fn notify_one(&self, parkers: &[Parker]) {
        // SeqCst fence: the publisher's half of the handshake (see the module
        // docs); orders the work's publication before the load below.
        fence(Ordering::SeqCst);
        // Relaxed: the fence pair decides visibility; a stale non-zero only
        // costs a look under the lock.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_one(parkers);
        }
    }

    #[cold]
    fn wake_one(&self, parkers: &[Parker]) {
        let woken = {
            let mut list = lock(&self.list);
            let w = list.pop();
            // Relaxed: written under the lock; readers only use it as a hint
            // ordered by the fences.
            self.sleepers.store(list.len(), Ordering::Relaxed);
            w
        };
        if let Some(w) = woken {
            parkers[w].unpark();
        }
    }

    /// Wakes every sleeping worker (shutdown).
    pub(crate) fn notify_all(&self, parkers: &[Parker]) {
        let all = {
            let mut list = lock(&self.list);
            self.sleepers.store(0, Ordering::Relaxed);
            std::mem::take(&mut *list)
        };
        for w in all {
            parkers[w].unpark();
        }
    }

    /// Puts worker `me` to sleep unless `has_work` says there is something to
    /// do once it is announced; `parking` runs just before it sleeps.
    pub(crate) fn sleep(&self, me: usize, parkers: &[Parker], has_work: impl Fn() -> bool, parking: impl FnOnce()) {
        {
            let mut list = lock(&self.list);
            list.push(me);
            self.sleepers.store(list.len(), Ordering::Relaxed);
        }
        // SeqCst fence: the sleeper's half of the handshake.
        fence(Ordering::SeqCst);
        if has_work() {
            self.retract(me);
            return;
        }
        parking();
        parkers[me].park(None);
        // Whoever woke us removed us from the list; a spurious wake-up did not.
        self.retract(me);
    }

    /// Removes `me` from the list if it is still there.
    fn retract(&self, me: usize) {
        let mut list = lock(&self.list);
        if let Some(i) = list.iter().position(|&w| w == me) {
            list.swap_remove(i);
            self.sleepers.store(list.len(), Ordering::Relaxed);
        }
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use crate::sync::Arc;
    use loom::sync::atomic::AtomicUsize as Work;

    /// A worker goes to sleep while a publisher adds one task: the worker
    /// always ends up taking it (no lost wake-up), whatever the interleaving.
    #[test]
    fn no_lost_wakeup() {
        loom::model(|| {
            let idle = Arc::new(Idle::new());
            let work = Arc::new(Work::new(0));
            let parkers: Arc<std::sync::OnceLock<Vec<Parker>>> = Arc::new(std::sync::OnceLock::new());
            let ready = Arc::new(loom::sync::atomic::AtomicBool::new(false));
            let worker = {
                let (idle, work, parkers, ready) = (idle.clone(), work.clone(), parkers.clone(), ready.clone());
                loom::thread::spawn(move || {
                    // The parker belongs to this thread under loom.
                    parkers.get_or_init(|| vec![Parker::new()]);
                    ready.store(true, Ordering::Release);
                    loop {
                        if work.load(Ordering::Acquire) == 1 {
                            return;
                        }
                        idle.sleep(0, parkers.get().unwrap(), || work.load(Ordering::Acquire) != 0, || {});
                    }
                })
            };
            while !ready.load(Ordering::Acquire) {
                loom::thread::yield_now();
            }
            work.store(1, Ordering::Release);
            idle.notify_one(parkers.get().unwrap());
            worker.join().unwrap();
        });
    }
}
