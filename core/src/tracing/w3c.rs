//! W3C Trace Context level 1: the `traceparent` and `tracestate` headers.
//!
//! Parsing is strict, as the specification's test suite expects: a header
//! that breaks the grammar is rejected whole (the caller then starts a new
//! trace), never half-used.

use super::ids::{push_hex, SpanId, TraceFlags, TraceId};
use crate::error::Error;
use std::fmt;
use std::sync::Arc;

/// A parsed `traceparent` header:
/// `version "-" trace-id "-" parent-id "-" trace-flags`.
///
/// ```
/// use nimsync_core::tracing::TraceParent;
/// let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert!(tp.flags.is_sampled());
/// assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(tp.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// assert!(TraceParent::parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The header's version (0 for this specification; a higher one was
    /// parsed by the forward-compatible rules).
    pub version: u8,
    /// The trace id.
    pub trace_id: TraceId,
    /// The id of the caller's span.
    pub parent_id: SpanId,
    /// The trace flags as received.
    pub flags: TraceFlags,
}

/// The length of a version-00 `traceparent`.
pub const TRACEPARENT_LEN: usize = 55;

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("traceparent", reason)
}

impl TraceParent {
    /// Parses a `traceparent` header value.
    ///
    /// Leading and trailing spaces and tabs (HTTP optional whitespace) are
    /// ignored. Version `00` must be exactly 55 characters. A higher version
    /// (`01`–`fe`) is parsed by the forward-compatible rule: at least 55
    /// characters, and anything after the first 55 must start with `-`.
    /// Version `ff`, uppercase hex, wrong field lengths and all-zero ids are
    /// errors naming what was wrong.
    pub fn parse(header: &str) -> Result<TraceParent, Error> {
        let s = header.trim_matches([' ', '\t']).as_bytes();
        if s.len() < TRACEPARENT_LEN {
            return Err(bad(format!("expected at least {TRACEPARENT_LEN} characters, got {}", s.len())));
        }
        let mut v = [0u8; 1];
        if !super::ids::decode_hex(&s[..2], &mut v) {
            return Err(bad("version must be two lowercase hex digits"));
        }
        let version = v[0];
        if version == 0xff {
            return Err(bad("version ff is invalid"));
        }
        if version == 0 && s.len() != TRACEPARENT_LEN {
            return Err(bad(format!("version 00 must be exactly {TRACEPARENT_LEN} characters, got {}", s.len())));
        }
        if s.len() > TRACEPARENT_LEN && s[TRACEPARENT_LEN] != b'-' {
            return Err(bad("data after the flags of a future version must start with '-'"));
        }
        if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
            return Err(bad("fields must be separated by '-' at positions 2, 35 and 52"));
        }
        let mut trace = [0u8; 16];
        if !super::ids::decode_hex(&s[3..35], &mut trace) {
            return Err(bad("trace-id must be 32 lowercase hex digits"));
        }
        let mut parent = [0u8; 8];
        if !super::ids::decode_hex(&s[36..52], &mut parent) {
            return Err(bad("parent-id must be 16 lowercase hex digits"));
        }
        let mut flags = [0u8; 1];
        if !super::ids::decode_hex(&s[53..55], &mut flags) {
            return Err(bad("trace-flags must be two lowercase hex digits"));
        }
        let (trace_id, parent_id) = (TraceId(trace), SpanId(parent));
        if !trace_id.is_valid() {
            return Err(bad("trace-id is all zeros"));
        }
        if !parent_id.is_valid() {
            return Err(bad("parent-id is all zeros"));
        }
        Ok(TraceParent { version, trace_id, parent_id, flags: TraceFlags(flags[0]) })
    }
}

impl fmt::Display for TraceParent {
    /// Formats as version `00` (the only version this implementation
    /// speaks; a future-version header is passed on downgraded). Of the
    /// flags only `sampled`, the one bit level 1 defines, is kept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(TRACEPARENT_LEN);
        s.push_str("00-");
        push_hex(&mut s, &self.trace_id.0);
        s.push('-');
        push_hex(&mut s, &self.parent_id.0);
        s.push('-');
        push_hex(&mut s, &[self.flags.0 & TraceFlags::SAMPLED.0]);
        f.write_str(&s)
    }
}

/// Most list members a `tracestate` may hold.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// A `tracestate` header: vendor key/value pairs, most recently updated
/// first. Cheap to clone (shared); empty costs nothing.
///
/// ```
/// use nimsync_core::tracing::TraceState;
/// let ts = TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE").unwrap();
/// assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
/// let ts = ts.insert("congo", "ucfJifl5GOE").unwrap();
/// assert_eq!(ts.to_string(), "congo=ucfJifl5GOE,rojo=00f067aa0ba902b7");
/// assert!(TraceState::parse("foo=1,foo=2").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TraceState(Option<Arc<Vec<(String, String)>>>);

fn bad_state(reason: impl Into<String>) -> Error {
    Error::invalid("tracestate", reason)
}

fn key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
}

/// Whether `key` follows the level-1 key grammar: a simple key (lowercase
/// letter, then up to 255 of `a-z0-9_-*/`), or `tenant@system` (tenant: a
/// lowercase letter or digit then up to 240 more; system: a lowercase letter
/// then up to 13 more).
pub fn valid_tracestate_key(key: &str) -> bool {
    let k = key.as_bytes();
    match k.iter().position(|&c| c == b'@') {
        None => (1..=256).contains(&k.len()) && k[0].is_ascii_lowercase() && k[1..].iter().all(|&c| key_char(c)),
        Some(at) => {
            let (tenant, system) = (&k[..at], &k[at + 1..]);
            (1..=241).contains(&tenant.len())
                && (tenant[0].is_ascii_lowercase() || tenant[0].is_ascii_digit())
                && tenant[1..].iter().all(|&c| key_char(c))
                && (1..=14).contains(&system.len())
                && system[0].is_ascii_lowercase()
                && system[1..].iter().all(|&c| key_char(c))
        }
    }
}

/// Whether `value` follows the level-1 value grammar: 1 to 256 printable
/// ASCII characters other than `,` and `=`, the last one not a space.
pub fn valid_tracestate_value(value: &str) -> bool {
    let v = value.as_bytes();
    (1..=256).contains(&v.len())
        && v.iter().all(|&c| matches!(c, 0x20..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e))
        && v[v.len() - 1] != b' '
}

impl TraceState {
    /// The empty tracestate.
    pub const fn new() -> TraceState {
        TraceState(None)
    }

    /// Parses one `tracestate` header value. See [`parse_headers`](Self::parse_headers).
    pub fn parse(header: &str) -> Result<TraceState, Error> {
        Self::parse_headers([header])
    }

    /// Parses several `tracestate` header lines as one list (HTTP joins
    /// repeated headers with commas). Empty members and optional whitespace
    /// around members are allowed. A key or value outside the grammar, a
    /// key that appears twice, or more than 32 members rejects the whole
    /// header: the specification says a vendor that cannot parse it must
    /// not propagate it.
    pub fn parse_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<TraceState, Error> {
        let mut members: Vec<(String, String)> = Vec::new();
        for header in headers {
            for member in header.split(',') {
                let member = member.trim_matches([' ', '\t']);
                if member.is_empty() {
                    continue;
                }
                let Some((key, value)) = member.split_once('=') else {
                    return Err(bad_state(format!("list member {member:?} has no '='")));
                };
                if !valid_tracestate_key(key) {
                    return Err(bad_state(format!("invalid key {key:?}")));
                }
                if !valid_tracestate_value(value) {
                    return Err(bad_state(format!("invalid value {value:?} for key {key:?}")));
                }
                if members.iter().any(|(k, _)| k == key) {
                    return Err(bad_state(format!("key {key:?} appears twice")));
                }
                if members.len() == TRACESTATE_MAX_MEMBERS {
                    return Err(bad_state(format!("more than {TRACESTATE_MAX_MEMBERS} list members")));
                }
                members.push((key.to_owned(), value.to_owned()));
            }
        }
        Ok(Self::from_vec(members))
    }

    fn from_vec(members: Vec<(String, String)>) -> TraceState {
        if members.is_empty() {
            TraceState(None)
        } else {
            TraceState(Some(Arc::new(members)))
        }
    }

    /// The members, leftmost (most recently updated) first.
    pub fn members(&self) -> &[(String, String)] {
        self.0.as_deref().map_or(&[], |v| v.as_slice())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members().len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.members().iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A copy with `key` set to `value` and moved to the front (the
    /// specification's update rule: a vendor's modified entry goes left).
    /// When that makes 33 members the rightmost is dropped. Invalid keys or
    /// values are errors.
    pub fn insert(&self, key: &str, value: &str) -> Result<TraceState, Error> {
        if !valid_tracestate_key(key) {
            return Err(bad_state(format!("invalid key {key:?}")));
        }
        if !valid_tracestate_value(value) {
            return Err(bad_state(format!("invalid value {value:?} for key {key:?}")));
        }
        let mut v = Vec::with_capacity(self.len() + 1);
        v.push((key.to_owned(), value.to_owned()));
        v.extend(self.members().iter().filter(|(k, _)| k != key).cloned());
        v.truncate(TRACESTATE_MAX_MEMBERS);
        Ok(Self::from_vec(v))
    }

    /// A copy that fits in `max_len` characters when formatted, made by the
    /// specification's truncation rule: members longer than 128 characters
    /// go first (rightmost first), then members from the right, until it
    /// fits. Level 1 asks vendors to propagate at least 512 characters.
    ///
    /// ```
    /// use nimsync_core::tracing::TraceState;
    /// let long = format!("big={}", "x".repeat(200));
    /// let ts = TraceState::parse(&format!("a=1,{long},b=2")).unwrap();
    /// assert_eq!(ts.truncated(512).to_string(), format!("a=1,{long},b=2"));
    /// assert_eq!(ts.truncated(100).to_string(), "a=1,b=2");
    /// assert_eq!(ts.truncated(5).to_string(), "a=1");
    /// ```
    pub fn truncated(&self, max_len: usize) -> TraceState {
        let mut v: Vec<(String, String)> = self.members().to_vec();
        let len = |v: &[(String, String)]| {
            v.iter().map(|(k, val)| k.len() + 1 + val.len()).sum::<usize>() + v.len().saturating_sub(1)
        };
        while len(&v) > max_len {
            match v.iter().rposition(|(k, val)| k.len() + 1 + val.len() > 128) {
                Some(i) => {
                    v.remove(i);
                }
                None => {
                    v.pop();
                }
            }
        }
        Self::from_vec(v)
    }

    /// A copy without `key`.
    pub fn remove(&self, key: &str) -> TraceState {
        Self::from_vec(self.members().iter().filter(|(k, _)| k != key).cloned().collect())
    }
}

impl fmt::Display for TraceState {
    /// The header value: `key=value` pairs joined by `,`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.members().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({self})")
    }
}
