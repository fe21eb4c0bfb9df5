//! The C ABI of nimsync: `libnimsync.so` / `libnimsync.a` and the header
//! `include/nimsync.h` generated from this crate by cbindgen.
//!
//! Conventions (see `docs/ARCHITECTURE.md`):
//! - every function that can fail returns a `nimsync_status`, writes results
//!   through out-parameters, and records a message for
//!   `nimsync_last_error_message()`;
//! - every body runs inside `status::guard`, so no panic crosses into C;
//! - NULL handles and out-pointers are rejected with
//!   `NIMSYNC_STATUS_NULL_ARGUMENT`; `_free(NULL)` does nothing;
//! - only `nimsync_*` symbols are exported.

// Exported functions take raw pointers from C and cannot be `unsafe fn` in a
// way C callers would notice; each dereference goes through `status::arg` or
// `status::out`, which reject NULL, and documents its contract.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

pub mod async_op;
pub mod cancel;
pub mod channel;
pub mod group;
pub mod metrics;
pub mod scheduler;
pub mod select;
pub mod status;
pub mod tracing;

use std::ffi::{c_char, CStr};

/// The ABI version this library implements. A binding compares it with
/// `nimsync_abi_version()` at load time and refuses a mismatch.
pub const NIMSYNC_ABI_VERSION: u32 = 1;

const VERSION_CSTR: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(v) => v,
    Err(_) => panic!("version string"),
};

/// Returns the library version, e.g. "0.3.0". The string is static.
#[no_mangle]
pub extern "C" fn nimsync_version() -> *const c_char {
    VERSION_CSTR.as_ptr()
}

/// Returns the ABI version of the loaded library (`NIMSYNC_ABI_VERSION` of
/// the header it was built with).
#[no_mangle]
pub extern "C" fn nimsync_abi_version() -> u32 {
    NIMSYNC_ABI_VERSION
}
