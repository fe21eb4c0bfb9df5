//! The W3C Baggage header: application key/value pairs that travel with a
//! trace (`baggage: userId=alice,isProduction=false;ttl=30`).
//!
//! Values are percent-encoded on the wire and held decoded; properties
//! (`;name` or `;name=value` after a value) are kept as written.

use crate::error::Error;
use std::fmt;

/// Most list members a header may carry (the grammar's 180).
pub const BAGGAGE_MAX_MEMBERS: usize = 180;
/// Most bytes [`Baggage`]'s `Display` writes: members that would go past it
/// are left out whole, never cut (the specification's 8192-byte limit).
pub const BAGGAGE_MAX_BYTES: usize = 8192;

/// One baggage entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaggageEntry {
    /// The key (an HTTP token).
    pub key: String,
    /// The decoded value.
    pub value: String,
    /// Properties in order: `(name, value)`; value `None` for a bare name.
    pub properties: Vec<(String, Option<String>)>,
}

/// A set of baggage entries, in insertion order.
///
/// ```
/// use nimsync_core::tracing::Baggage;
/// let b = Baggage::parse("userId=alice, serverNode=DF%2028;ttl=30 , isProduction=false").unwrap();
/// assert_eq!(b.get("serverNode"), Some("DF 28"));
/// assert_eq!(b.entries()[1].properties, [("ttl".to_string(), Some("30".to_string()))]);
/// assert_eq!(b.to_string(), "userId=alice,serverNode=DF%2028;ttl=30,isProduction=false");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    entries: Vec<BaggageEntry>,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::invalid("baggage", reason)
}

/// Whether `c` is an RFC 7230 `tchar`.
fn tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Whether `s` is a non-empty RFC 7230 token (the grammar of baggage keys).
pub fn valid_baggage_key(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(tchar)
}

fn baggage_octet(c: u8) -> bool {
    matches!(c, 0x21 | 0x23..=0x2b | 0x2d..=0x3a | 0x3c..=0x5b | 0x5d..=0x7e)
}

fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn percent_decode(raw: &str) -> Result<String, Error> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !baggage_octet(c) {
            return Err(bad(format!("value {raw:?} has a character outside the baggage grammar")));
        }
        if c == b'%' {
            let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(v) => out.push(v),
                None => return Err(bad(format!("value {raw:?} has a malformed percent escape"))),
            }
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    // The specification: invalid UTF-8 becomes U+FFFD.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn percent_encode(value: &str, out: &mut String) {
    for &c in value.as_bytes() {
        if baggage_octet(c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
}

impl Baggage {
    /// Empty baggage.
    pub fn new() -> Baggage {
        Baggage::default()
    }

    /// Parses a `baggage` header value. Optional whitespace around members,
    /// `=` and `;` is allowed; empty members are skipped. A key that is not
    /// a token, a value with characters outside the grammar or a bad
    /// percent escape, or more than 180 members is an error. A key given
    /// twice keeps the last value.
    pub fn parse(header: &str) -> Result<Baggage, Error> {
        let mut b = Baggage::new();
        let mut count = 0;
        for member in header.split(',') {
            let member = ows(member);
            if member.is_empty() {
                continue;
            }
            count += 1;
            if count > BAGGAGE_MAX_MEMBERS {
                return Err(bad(format!("more than {BAGGAGE_MAX_MEMBERS} list members")));
            }
            let mut parts = member.split(';');
            let kv = parts.next().unwrap_or_default();
            let Some((key, value)) = kv.split_once('=') else {
                return Err(bad(format!("list member {member:?} has no '='")));
            };
            let key = ows(key);
            if !valid_baggage_key(key) {
                return Err(bad(format!("invalid key {key:?}")));
            }
            let value = percent_decode(ows(value))?;
            let mut properties = Vec::new();
            for prop in parts {
                let prop = ows(prop);
                let (name, pv) = match prop.split_once('=') {
                    Some((n, v)) => (ows(n), Some(ows(v))),
                    None => (prop, None),
                };
                if !valid_baggage_key(name) {
                    return Err(bad(format!("invalid property {prop:?}")));
                }
                if let Some(v) = pv {
                    if !v.bytes().all(baggage_octet) {
                        return Err(bad(format!("invalid property value {v:?}")));
                    }
                }
                properties.push((name.to_owned(), pv.map(str::to_owned)));
            }
            b.entries.retain(|e| e.key != key);
            b.entries.push(BaggageEntry { key: key.to_owned(), value, properties });
        }
        Ok(b)
    }

    /// Parses several `baggage` header lines as one list (HTTP joins
    /// repeated headers with commas); the limits apply to the whole.
    pub fn parse_headers<'a>(headers: impl IntoIterator<Item = &'a str>) -> Result<Baggage, Error> {
        let joined: Vec<&str> = headers.into_iter().collect();
        Baggage::parse(&joined.join(","))
    }

    /// Sets `key` to `value` (replacing an earlier entry and its
    /// properties). The key must be an HTTP token; the value may be any
    /// text (it is percent-encoded on output).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        if !valid_baggage_key(key) {
            return Err(bad(format!("invalid key {key:?}: must be an HTTP token")));
        }
        self.entries.retain(|e| e.key != key);
        self.entries.push(BaggageEntry { key: key.to_owned(), value: value.to_owned(), properties: Vec::new() });
        Ok(())
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|e| e.key == key).map(|e| e.value.as_str())
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&mut self, key: &str) -> bool {
        let n = self.entries.len();
        self.entries.retain(|e| e.key != key);
        n != self.entries.len()
    }

    /// The entries in order.
    pub fn entries(&self) -> &[BaggageEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Display for Baggage {
    /// The header value. Members that would take it past
    /// [`BAGGAGE_MAX_BYTES`] or [`BAGGAGE_MAX_MEMBERS`] are left out whole.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let mut n = 0;
        for e in &self.entries {
            if n == BAGGAGE_MAX_MEMBERS {
                break;
            }
            let mut m = String::with_capacity(e.key.len() + e.value.len() + 1);
            m.push_str(&e.key);
            m.push('=');
            percent_encode(&e.value, &mut m);
            for (name, v) in &e.properties {
                m.push(';');
                m.push_str(name);
                if let Some(v) = v {
                    m.push('=');
                    m.push_str(v);
                }
            }
            let sep = usize::from(!out.is_empty());
            if out.len() + sep + m.len() > BAGGAGE_MAX_BYTES {
                continue;
            }
            if sep == 1 {
                out.push(',');
            }
            out.push_str(&m);
            n += 1;
        }
        f.write_str(&out)
    }
}
