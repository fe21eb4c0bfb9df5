//! # nimsync-core
//!
//! The one implementation behind nimsync's three front doors: the C ABI
//! (`libnimsync.so`, crate `nimsync-ffi`), the Python package (`nimsync`), and
//! the Nim package that wraps the C ABI. Every algorithm lives here once; the
//! bindings only translate types, errors and ownership.
//!
//! This release provides bounded channels ([`Channel`], and the owned-ends
//! [`spsc`] variant), the blocking machinery they share, and the error type.
//!
//! ```
//! use nimsync_core::{Channel, Mode};
//! let ch = Channel::new(8, Mode::Mpsc).unwrap();
//! let handles: Vec<_> = (0..4)
//!     .map(|id| {
//!         let tx = ch.clone();
//!         std::thread::spawn(move || tx.send(id).unwrap())
//!     })
//!     .collect();
//! for h in handles {
//!     h.join().unwrap();
//! }
//! let mut got: Vec<i32> = (0..4).map(|_| ch.recv().unwrap()).collect();
//! got.sort();
//! assert_eq!(got, [0, 1, 2, 3]);
//! ```

#![warn(unsafe_op_in_unsafe_fn)]

mod barrier;
pub mod cancel;
pub mod channel;
mod error;
pub mod group;
mod idle;
mod loop_waker;
pub mod metrics;
mod park;
pub mod scheduler;
mod select;
pub mod spsc;
mod sync;
pub mod tracing;
mod wait_group;
mod waiter;

pub use barrier::uses_membarrier;
pub use cancel::{CallbackGuard, CancelReason, CancelToken};
pub use channel::{Channel, Mode, RecvFuture, SendFuture, MAX_CAPACITY};
pub use error::{Error, SendError};
pub use group::{GroupError, TaskError, TaskFailure, TaskGroup, TaskGroupBuilder, TaskHandle};
pub use loop_waker::LoopWaker;
pub use scheduler::{Scheduler, SchedulerMetrics, WorkerMetrics};
pub use select::Select;
pub use wait_group::{WaitGroup, WaitGroupFuture};
pub use waiter::WaitOptions;

/// The crate version, also reported by `nimsync_version()` and Python's
/// `nimsync.__version__`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
