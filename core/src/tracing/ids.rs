//! Trace and span ids, trace flags, and the per-thread generator that makes
//! new ids.
//!
//! Ids come from a wyrand generator kept in a thread-local (no lock, no
//! atomic: a few nanoseconds per id), seeded once per thread from the
//! operating system's random source (`getrandom(2)`, else `/dev/urandom`).
//! W3C Trace Context asks for ids that are random enough that two systems
//! will not collide; 64 bits of OS entropy per thread give that.

use crate::error::Error;
use std::cell::Cell;
use std::fmt;

/// A 16-byte trace id. Never all zeros when it comes from nimsync (all zeros
/// is the W3C "invalid" value).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id (the W3C `parent-id`). Never all zeros when it comes
/// from nimsync.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(pub [u8; 8]);

/// The W3C `trace-flags` byte. Level 1 defines one bit, [`SAMPLED`](Self::SAMPLED).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct TraceFlags(pub u8);

impl TraceFlags {
    /// The `sampled` bit: the caller may have recorded this trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// No flag set.
    pub const NONE: TraceFlags = TraceFlags(0);

    /// Whether the sampled bit is set.
    pub fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// These flags with the sampled bit set or cleared.
    pub fn with_sampled(self, sampled: bool) -> TraceFlags {
        TraceFlags(if sampled { self.0 | 0x01 } else { self.0 & !0x01 })
    }
}

macro_rules! hex_id {
    ($ty:ident, $len:expr, $what:expr) => {
        impl $ty {
            /// The all-zero id, which W3C Trace Context calls invalid.
            pub const INVALID: $ty = $ty([0; $len]);

            /// Whether this id is not all zeros.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $len]
            }

            /// Parses exactly
            #[doc = concat!(stringify!($len), " bytes as ", stringify!($len), "×2 lowercase hex digits.")]
            /// Uppercase digits, other lengths and the all-zero id are errors.
            pub fn from_hex(s: &str) -> Result<$ty, Error> {
                let mut out = [0u8; $len];
                if !decode_hex(s.as_bytes(), &mut out) {
                    return Err(Error::invalid(
                        $what,
                        format!("expected {} lowercase hex digits, got {:?}", 2 * $len, s),
                    ));
                }
                let id = $ty(out);
                if !id.is_valid() {
                    return Err(Error::invalid($what, "all zeros is not a valid id"));
                }
                Ok(id)
            }

            /// The id as lowercase hex.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(2 * $len);
                push_hex(&mut s, &self.0);
                s
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($ty), "({})"), self.to_hex())
            }
        }
    };
}

hex_id!(TraceId, 16, "trace_id");
hex_id!(SpanId, 8, "span_id");

impl TraceId {
    /// A fresh random, valid trace id.
    pub fn random() -> TraceId {
        loop {
            let hi = next_u64();
            let lo = next_u64();
            if hi | lo != 0 {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&hi.to_be_bytes());
                b[8..].copy_from_slice(&lo.to_be_bytes());
                return TraceId(b);
            }
        }
    }

    /// The lower 8 bytes as a big-endian integer: the part trace-id ratio
    /// sampling looks at.
    pub fn low_u64(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[8..]);
        u64::from_be_bytes(b)
    }
}

impl SpanId {
    /// A fresh random, valid span id.
    pub fn random() -> SpanId {
        loop {
            let v = next_u64();
            if v != 0 {
                return SpanId(v.to_be_bytes());
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `bytes` as lowercase hex.
pub(crate) fn push_hex(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
}

/// The value of one lowercase hex digit.
fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes lowercase hex into `out`; false unless `s` is exactly
/// `2 * out.len()` lowercase hex digits.
pub(crate) fn decode_hex(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != 2 * out.len() {
        return false;
    }
    for (i, pair) in s.chunks_exact(2).enumerate() {
        match (lower_hex_digit(pair[0]), lower_hex_digit(pair[1])) {
            (Some(h), Some(l)) => out[i] = h << 4 | l,
            _ => return false,
        }
    }
    true
}

thread_local! {
    /// wyrand state of this thread; 0 until seeded.
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// The next value of this thread's generator (wyrand).
pub(crate) fn next_u64() -> u64 {
    let mut out = [0u64; 1];
    fill_u64(&mut out);
    out[0]
}

/// Fills `out` from this thread's generator (wyrand), with one
/// thread-local access for all of them.
pub(crate) fn fill_u64(out: &mut [u64]) {
    RNG.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = os_seed();
        }
        for o in out.iter_mut() {
            s = s.wrapping_add(0xa076_1d64_78bd_642f);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            *o = (t as u64) ^ ((t >> 64) as u64);
        }
        state.set(s);
    })
}

/// A fresh random, valid trace id and span id together (one generator
/// access): the ids of a new root span.
pub(crate) fn random_root_ids() -> (TraceId, SpanId) {
    let mut v = [0u64; 3];
    fill_u64(&mut v);
    if v[0] | v[1] == 0 || v[2] == 0 {
        return (TraceId::random(), SpanId::random());
    }
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&v[0].to_be_bytes());
    b[8..].copy_from_slice(&v[1].to_be_bytes());
    (TraceId(b), SpanId(v[2].to_be_bytes()))
}

/// 64 bits from the OS random source; never 0.
fn os_seed() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a valid writable buffer of the length passed.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        use std::io::Read;
        let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
        if ok.is_err() {
            // No OS entropy at all: mix the clock and this thread's stack
            // address, which still differ across threads and processes.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0);
            let local = 0u8;
            let addr = &local as *const u8 as u64;
            buf = (t ^ addr.rotate_left(32) ^ u64::from(std::process::id())).to_le_bytes();
        }
    }
    u64::from_le_bytes(buf) | 1
}
