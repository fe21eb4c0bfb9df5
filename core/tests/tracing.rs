//! Tracing: W3C Trace Context (every traceparent and tracestate case of the
//! specification's test suite), Baggage, samplers, parent-child links,
//! context propagation across threads and tasks, and export (HTTP receiver,
//! file, drop counting).

use nimsync_core::tracing::{
    encode_otlp_json, Baggage, BatchConfig, Context, ExportError, FileExporter, KeyValue, OtlpHttpExporter, Resource,
    Sampler, SpanContext, SpanData, SpanExporter, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceParent,
    TraceState, Tracer, Value, BAGGAGE_MAX_BYTES, MAX_ATTRIBUTES,
};
use nimsync_core::{Channel, Mode, Scheduler, TaskGroup};
use serde_json::Value as Json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

const TID: &str = "12345678901234567890123456789012";
const PID: &str = "1234567890123456";

fn always_on() -> Tracer {
    Tracer::builder().sampler(Sampler::AlwaysOn).build().unwrap()
}

// ---------------------------------------------------------------- traceparent

#[test]
fn traceparent_valid_examples() {
    let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    assert_eq!(tp.version, 0);
    assert_eq!(tp.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(tp.parent_id.to_hex(), "00f067aa0ba902b7");
    assert!(tp.flags.is_sampled());
    let tp = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
    assert!(!tp.flags.is_sampled());
    // Flags other than `sampled` are parsed, and left out when formatting.
    let tp = TraceParent::parse(&format!("00-{TID}-{PID}-09")).unwrap();
    assert_eq!(tp.flags, TraceFlags(0x09));
    assert!(tp.flags.is_sampled());
    assert_eq!(tp.to_string(), format!("00-{TID}-{PID}-01"));
    // Every flags byte is accepted; ids of all f are valid.
    for flags in ["00", "01", "02", "03", "ff"] {
        let tp = TraceParent::parse(&format!("00-{TID}-{PID}-{flags}")).unwrap();
        assert_eq!(format!("{:02x}", tp.flags.0), flags);
    }
    assert!(TraceParent::parse(&format!("00-{}-{}-00", "f".repeat(32), "f".repeat(16))).is_ok());
    for v in ["01", "02", "cc", "fe"] {
        assert_eq!(
            TraceParent::parse(&format!("{v}-{TID}-{PID}-00")).unwrap().version,
            u8::from_str_radix(v, 16).unwrap()
        );
    }
    // Header name casing is the HTTP layer's business; the value is what
    // is parsed. Leading and trailing OWS (space, tab) is allowed.
    for v in [
        format!(" 00-{TID}-{PID}-01"),
        format!("\t00-{TID}-{PID}-01"),
        format!("00-{TID}-{PID}-01 "),
        format!("00-{TID}-{PID}-01\t"),
        format!("\t 00-{TID}-{PID}-01 \t"),
    ] {
        let tp = TraceParent::parse(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(tp.trace_id.to_hex(), TID);
    }
}

#[test]
fn traceparent_future_versions() {
    // Version 0xcc: parsed by the forward-compatible rules.
    for v in [format!("cc-{TID}-{PID}-01"), format!("cc-{TID}-{PID}-01-what-the-future-will-be-like")] {
        let tp = TraceParent::parse(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        assert_eq!(tp.version, 0xcc);
        assert_eq!(tp.trace_id.to_hex(), TID);
        assert_eq!(tp.parent_id.to_hex(), PID);
        // Propagated downgraded to version 00.
        assert_eq!(tp.to_string(), format!("00-{TID}-{PID}-01"));
    }
    // Extra data must start with '-'.
    assert!(TraceParent::parse(&format!("cc-{TID}-{PID}-01.what-the-future-will-be-like")).is_err());
    // Version ff is invalid whatever follows.
    assert!(TraceParent::parse(&format!("ff-{TID}-{PID}-01")).is_err());
    // A future version still needs valid fields.
    assert!(TraceParent::parse(&format!("01-{TID}-{PID}-0")).is_err());
    assert!(TraceParent::parse("01-00000000000000000000000000000000-1234567890123456-01").is_err());
}

#[test]
fn traceparent_invalid_examples() {
    let cases = [
        // version 00 with trailing data
        format!("00-{TID}-{PID}-01."),
        format!("00-{TID}-{PID}-01-what-the-future-will-be-like"),
        // version ff
        format!("ff-{TID}-{PID}-01"),
        // illegal characters in version
        format!(".0-{TID}-{PID}-01"),
        format!("0.-{TID}-{PID}-01"),
        // version too long / too short
        format!("000-{TID}-{PID}-01"),
        format!("0000-{TID}-{PID}-01"),
        format!("0-{TID}-{PID}-01"),
        // trace id all zero, illegal characters, too long, too short
        format!("00-00000000000000000000000000000000-{PID}-01"),
        format!("00-.2345678901234567890123456789012-{PID}-01"),
        format!("00-1234567890123456789012345678901.-{PID}-01"),
        format!("00-123456789012345678901234567890123-{PID}-01"),
        format!("00-1234567890123456789012345678901-{PID}-01"),
        // parent id all zero, illegal characters, too long, too short
        format!("00-{TID}-0000000000000000-01"),
        format!("00-{TID}-.234567890123456-01"),
        format!("00-{TID}-123456789012345.-01"),
        format!("00-{TID}-12345678901234567-01"),
        format!("00-{TID}-123456789012345-01"),
        // flags illegal characters, too long, too short
        format!("00-{TID}-{PID}-.0"),
        format!("00-{TID}-{PID}-0."),
        format!("00-{TID}-{PID}-001"),
        format!("00-{TID}-{PID}-1"),
        // uppercase hex anywhere
        format!("00-{}-{PID}-01", "4BF92F3577B34DA6A3CE929D0E0E4736"),
        format!("00-{TID}-{}-01", "00F067AA0BA902B7"),
        format!("00-{TID}-{PID}-0A"),
        format!("0A-{TID}-{PID}-01"),
        // wrong separators, empty, whitespace inside
        format!("00_{TID}_{PID}_01"),
        String::new(),
        format!("00-{TID} -{PID}-01"),
    ];
    for c in &cases {
        let err = TraceParent::parse(c).expect_err(c);
        assert!(err.to_string().contains("traceparent"), "{c:?}: {err}");
    }
}

#[test]
fn traceparent_roundtrip_of_new_spans() {
    let tracer = always_on();
    for _ in 0..100 {
        let span = tracer.start("x");
        let header = span.traceparent();
        assert_eq!(header.len(), 55);
        let tp = TraceParent::parse(&header).unwrap();
        assert_eq!(tp.trace_id, span.context().trace_id);
        assert_eq!(tp.parent_id, span.context().span_id);
        assert!(tp.flags.is_sampled());
    }
    assert!(TraceId::from_hex("00000000000000000000000000000000").is_err());
    assert!(SpanId::from_hex("00f067aa0ba902b").is_err());
    assert_eq!(SpanId::from_hex("00f067aa0ba902b7").unwrap().to_string(), "00f067aa0ba902b7");
}

// ----------------------------------------------------------------- tracestate

#[test]
fn tracestate_valid_examples() {
    let ts = TraceState::parse_headers(["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]).unwrap();
    assert_eq!(ts.to_string(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
    // Empty headers and empty members are ignored.
    assert!(TraceState::parse("").unwrap().is_empty());
    assert_eq!(TraceState::parse_headers(["foo=1", ""]).unwrap().get("foo"), Some("1"));
    assert_eq!(TraceState::parse_headers(["", "foo=1"]).unwrap().get("foo"), Some("1"));
    assert_eq!(TraceState::parse("foo=1,,  ,bar=2").unwrap().len(), 2);
    // OWS around members.
    for h in ["foo=1 \t , \t bar=2, \t baz=3", "foo=1\t \t,\t \tbar=2,\t \tbaz=3"] {
        let ts = TraceState::parse(h).unwrap();
        assert_eq!((ts.get("foo"), ts.get("bar"), ts.get("baz")), (Some("1"), Some("2"), Some("3")));
    }
    for h in [" foo=1", "\tfoo=1", "foo=1 ", "foo=1\t", "\t foo=1 \t"] {
        assert_eq!(TraceState::parse(h).unwrap().get("foo"), Some("1"), "{h:?}");
    }
    // Every allowed character.
    let key: String = ('a'..='z').chain('0'..='9').chain("_-*/".chars()).collect();
    let value: String = (0x20u8..=0x2b).chain(0x2d..=0x3c).chain(0x3e..=0x7e).map(char::from).collect();
    let ts = TraceState::parse(&format!("{key}={value}")).unwrap();
    assert_eq!(ts.get(&key), Some(value.as_str()));
    let vkey = format!("{key}@a-z0-9_-*/");
    let ts = TraceState::parse(&format!("{vkey}={value}")).unwrap();
    assert_eq!(ts.get(&vkey), Some(value.as_str()));
    // 32 members across headers.
    let members: Vec<String> = (1..=32).map(|i| format!("bar{i:02}={i:02}")).collect();
    let ts = TraceState::parse_headers(
        members.chunks(10).map(|c| c.join(",")).collect::<Vec<_>>().iter().map(String::as_str),
    )
    .unwrap();
    assert_eq!(ts.len(), 32);
    assert_eq!(ts.get("bar01"), Some("01"));
    // Key length limits.
    assert!(TraceState::parse_headers(["foo=1", &format!("{}=1", "z".repeat(256))]).is_ok());
    assert!(TraceState::parse_headers(["foo=1", &format!("{}@{}=1", "t".repeat(241), "v".repeat(14))]).is_ok());
    // A tenant may start with a digit.
    assert!(TraceState::parse("0tenant@vendor=1").is_ok());
}

#[test]
fn tracestate_invalid_examples() {
    let over: Vec<String> = (1..=33).map(|i| format!("bar{i:02}={i:02}")).collect();
    let cases: Vec<Vec<String>> = vec![
        // duplicated keys, in one header or across headers
        vec!["foo=1,foo=1".into()],
        vec!["foo=1,foo=2".into()],
        vec!["foo=1".into(), "foo=1".into()],
        vec!["foo=1".into(), "foo=2".into()],
        // illegal key characters
        vec!["foo =1".into()],
        vec!["FOO=1".into()],
        vec!["foo.bar=1".into()],
        // illegal vendor format
        vec!["foo@=1,bar=2".into()],
        vec!["@foo=1,bar=2".into()],
        vec!["foo@@bar=1,bar=2".into()],
        vec!["foo@bar@baz=1,bar=2".into()],
        // 33 members
        vec![over.join(",")],
        // key length limits
        vec!["foo=1".into(), format!("{}=1", "z".repeat(257))],
        vec!["foo=1".into(), format!("{}@v=1", "t".repeat(242))],
        vec!["foo=1".into(), format!("t@{}=1", "v".repeat(15))],
        // illegal values
        vec!["foo=bar=baz".into()],
        vec!["foo=,bar=3".into()],
        vec![format!("foo={}", "v".repeat(257))],
        vec!["foo=a\u{7f}".into()],
        vec!["foo".into()],
    ];
    for c in &cases {
        let r = TraceState::parse_headers(c.iter().map(String::as_str));
        assert!(r.is_err(), "{c:?} should be rejected");
    }
    // A traceparent with an invalid tracestate keeps the traceparent and
    // drops the whole tracestate.
    let cx = SpanContext::from_headers(&format!("00-{TID}-{PID}-00"), ["foo=1,foo=2"]).unwrap();
    assert_eq!(cx.trace_id.to_hex(), TID);
    assert!(cx.trace_state.is_empty());
}

#[test]
fn tracestate_update_rules() {
    let ts = TraceState::parse("a=1,b=2,c=3").unwrap();
    // Updating moves the key to the front.
    let ts2 = ts.insert("c", "9").unwrap();
    assert_eq!(ts2.to_string(), "c=9,a=1,b=2");
    // Adding puts it at the front.
    assert_eq!(ts.insert("z", "0").unwrap().to_string(), "z=0,a=1,b=2,c=3");
    assert_eq!(ts.remove("b").to_string(), "a=1,c=3");
    assert!(ts.insert("Bad", "1").is_err());
    assert!(ts.insert("ok", "trailing ").is_err());
    // Past 32 members, the rightmost is dropped.
    let full = TraceState::parse(&(1..=32).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",")).unwrap();
    let more = full.insert("new", "x").unwrap();
    assert_eq!(more.len(), 32);
    assert_eq!(more.members()[0].0, "new");
    assert!(more.get("k32").is_none());
    assert!(more.get("k31").is_some());
    // Truncation for propagation: long members first, then from the right.
    let big = format!("big={}", "x".repeat(129));
    let ts3 = TraceState::parse(&format!("a=1,{big},b=2,c=3")).unwrap();
    assert_eq!(ts3.truncated(512), ts3);
    assert_eq!(ts3.truncated(140).to_string(), "a=1,b=2,c=3");
    assert_eq!(ts3.truncated(7).to_string(), "a=1,b=2");
    assert!(ts3.truncated(2).is_empty());
    // The original is untouched.
    assert_eq!(ts.to_string(), "a=1,b=2,c=3");
}

// -------------------------------------------------------------------- baggage

#[test]
fn baggage_parse_and_format() {
    let b = Baggage::parse("key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue")
        .unwrap();
    assert_eq!(b.len(), 3);
    assert_eq!(b.get("key1"), Some("value1"));
    assert_eq!(b.entries()[0].properties, [("property1".to_string(), None), ("property2".to_string(), None)]);
    assert_eq!(b.get("key2"), Some("value2"));
    assert_eq!(b.entries()[2].properties, [("propertyKey".to_string(), Some("propertyValue".to_string()))]);
    assert_eq!(b.to_string(), "key1=value1;property1;property2,key2=value2,key3=value3;propertyKey=propertyValue");
    // Percent-encoding both ways, including UTF-8 and the '%' itself.
    let b = Baggage::parse("userId=Am%C3%A9lie,serverNode=DF%2028,pct=100%25").unwrap();
    assert_eq!(b.get("userId"), Some("Amélie"));
    assert_eq!(b.get("serverNode"), Some("DF 28"));
    assert_eq!(b.get("pct"), Some("100%"));
    let mut b = Baggage::new();
    b.set("note", "a,b;c=d \"q\" é%").unwrap();
    let header = b.to_string();
    assert_eq!(header, "note=a%2Cb%3Bc=d%20%22q%22%20%C3%A9%25");
    assert_eq!(Baggage::parse(&header).unwrap().get("note"), Some("a,b;c=d \"q\" é%"));
    // Invalid UTF-8 after decoding becomes U+FFFD.
    assert_eq!(Baggage::parse("k=%FF").unwrap().get("k"), Some("\u{fffd}"));
    // Later duplicates win; empty members are skipped; empty values allowed.
    let b = Baggage::parse("a=1,,b=,a=2").unwrap();
    assert_eq!((b.get("a"), b.get("b"), b.len()), (Some("2"), Some(""), 2));
    // Repeated headers combine.
    let b = Baggage::parse_headers(["a=1", "b=2;p", ""]).unwrap();
    assert_eq!(b.to_string(), "a=1,b=2;p");
    // set / remove
    let mut b = Baggage::new();
    assert!(b.set("bad key", "x").is_err());
    b.set("k", "v").unwrap();
    assert!(b.remove("k"));
    assert!(b.is_empty());
}

#[test]
fn baggage_invalid_and_limits() {
    for bad in ["novalue", "=v", "k y=v", "k=a\"b", "k=a\\b", "k=%zz", "k=%4", "k=v;bad prop", "k=v;p=a\"b", "k(=v"] {
        let e = Baggage::parse(bad).expect_err(bad);
        assert!(e.to_string().contains("baggage"), "{bad}: {e}");
    }
    let many: Vec<String> = (0..181).map(|i| format!("k{i}=v")).collect();
    assert!(Baggage::parse(&many.join(",")).is_err());
    assert_eq!(Baggage::parse(&many[..180].join(",")).unwrap().len(), 180);
    // Formatting stops at 8192 bytes, leaving out whole members only.
    let mut b = Baggage::new();
    for i in 0..10 {
        b.set(&format!("k{i}"), &"x".repeat(1000)).unwrap();
    }
    let header = b.to_string();
    assert!(header.len() <= BAGGAGE_MAX_BYTES);
    let back = Baggage::parse(&header).unwrap();
    assert_eq!(back.len(), 8);
    assert!(back.entries().iter().all(|e| e.value.len() == 1000));
}

#[test]
fn baggage_travels_in_context() {
    let mut b = Baggage::new();
    b.set("tenant", "acme").unwrap();
    let _g = Context::current().with_baggage(b).attach();
    assert_eq!(Context::current().baggage_value("tenant").as_deref(), Some("acme"));
    let tracer = always_on();
    let span = tracer.start("op");
    let _in_span = span.enter();
    // Entering a span keeps the baggage.
    assert_eq!(Context::current().baggage_value("tenant").as_deref(), Some("acme"));
    let seen = std::thread::scope(|s| {
        let cx = Context::current();
        s.spawn(move || {
            let _g = cx.attach();
            Context::current().baggage_value("tenant")
        })
        .join()
        .unwrap()
    });
    assert_eq!(seen.as_deref(), Some("acme"));
}

// ------------------------------------------------------------------- samplers

fn trace_id_with_low(low: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xab;
    b[8..].copy_from_slice(&low.to_be_bytes());
    TraceId(b)
}

#[test]
fn sampler_decisions() {
    let id = TraceId::random();
    assert!(Sampler::AlwaysOn.should_sample(None, id));
    assert!(!Sampler::AlwaysOff.should_sample(None, id));
    // Ratio: the lower 8 bytes, shifted right by one, against ratio·2^63.
    let quarter = Sampler::ratio(0.25).unwrap();
    assert!(quarter.should_sample(None, trace_id_with_low((1 << 62) - 1)));
    assert!(!quarter.should_sample(None, trace_id_with_low(1 << 62)));
    // The upper 8 bytes play no part.
    let mut other = trace_id_with_low((1 << 62) - 1);
    other.0[..8].copy_from_slice(&[0xff; 8]);
    assert!(quarter.should_sample(None, other));
    assert!(!Sampler::ratio(0.0).unwrap().should_sample(None, trace_id_with_low(0)));
    assert!(Sampler::ratio(1.0).unwrap().should_sample(None, trace_id_with_low(u64::MAX)));
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(Sampler::ratio(bad).is_err());
    }
    // Over many random ids, the sampled fraction is close to the ratio.
    let tenth = Sampler::ratio(0.1).unwrap();
    let n = 200_000;
    let hits = (0..n).filter(|_| tenth.should_sample(None, TraceId::random())).count();
    let frac = hits as f64 / n as f64;
    assert!((0.09..0.11).contains(&frac), "sampled fraction {frac}");
}

#[test]
fn parent_based_sampler() {
    let sampled_parent = SpanContext::from_headers(&format!("00-{TID}-{PID}-01"), []).unwrap();
    let unsampled_parent = SpanContext::from_headers(&format!("00-{TID}-{PID}-00"), []).unwrap();
    let off = Sampler::parent_based(Sampler::AlwaysOff);
    let on = Sampler::parent_based(Sampler::AlwaysOn);
    assert!(off.should_sample(Some(&sampled_parent), sampled_parent.trace_id));
    assert!(!on.should_sample(Some(&unsampled_parent), unsampled_parent.trace_id));
    assert!(on.should_sample(None, TraceId::random()));
    assert!(!off.should_sample(None, TraceId::random()));
    // Through a tracer: local parents are followed too.
    let tracer = Tracer::builder().sampler(on).build().unwrap();
    let remote_child = tracer.span_builder("s").parent(&unsampled_parent).start();
    assert!(!remote_child.is_recording());
    assert!(!remote_child.context().flags.is_sampled());
    assert_eq!(remote_child.context().trace_id.to_hex(), TID);
    let root = tracer.start("root");
    assert!(root.is_recording());
    let child = tracer.span_builder("c").parent(root.context()).start();
    assert!(child.is_recording());
    // A ratio tracer makes children of an unsampled root unsampled, and
    // they still carry the trace (non-recording but propagating).
    let never = Tracer::builder().sampler(Sampler::parent_based(Sampler::ratio(0.0).unwrap())).build().unwrap();
    let r = never.start("r");
    let _g = r.enter();
    let c = never.start("c");
    assert!(!c.is_recording());
    assert_eq!(c.context().trace_id, r.context().trace_id);
    assert_eq!(c.parent_span_id(), Some(r.context().span_id));
}

// ------------------------------------------------------------- spans, context

#[test]
fn parent_child_through_current_context() {
    let tracer = always_on();
    assert!(Context::current().span().is_none());
    let root = tracer.span_builder("root").kind(SpanKind::Server).start();
    assert_eq!(root.parent_span_id(), None);
    let g1 = root.enter();
    let mid = tracer.start("mid");
    assert_eq!(mid.parent_span_id(), Some(root.context().span_id));
    let g2 = mid.enter();
    let leaf = tracer.start("leaf");
    assert_eq!(leaf.parent_span_id(), Some(mid.context().span_id));
    assert_eq!(leaf.context().trace_id, root.context().trace_id);
    let other_root = tracer.span_builder("fresh").root().start();
    assert_ne!(other_root.context().trace_id, root.context().trace_id);
    drop(g2);
    assert_eq!(Context::current().span().unwrap().span_id, root.context().span_id);
    // Dropping an outer guard first also detaches the inner ones.
    let g3 = mid.enter();
    drop(g1);
    assert!(Context::current().span().is_none());
    drop(g3);
    assert!(Context::current().span().is_none());
    // in_span
    let (outer_id, inner_parent) = tracer.in_span("outer", |outer| {
        let inner = tracer.start("inner");
        (outer.context().span_id, inner.parent_span_id())
    });
    assert_eq!(inner_parent, Some(outer_id));
    // Trace state is inherited from a remote parent.
    let remote = SpanContext::from_headers(&format!("00-{TID}-{PID}-01"), ["vendor=abc"]).unwrap();
    let _g = Context::current().with_span(remote).attach();
    let s = tracer.start("server");
    assert_eq!(s.context().trace_state.get("vendor"), Some("abc"));
    assert_eq!(s.parent_span_id().unwrap().to_hex(), PID);
    assert!(!s.context().remote);
}

#[test]
fn span_recording_rules() {
    let tracer = always_on();
    let mut s = tracer.span_builder("op").attribute("initial", true).start();
    s.set_attribute("s", "text");
    s.set_attribute("i", 7);
    s.set_attribute("f", 1.5);
    s.set_attribute("i", 8); // replaces
    s.add_event("step", vec![KeyValue::new("n", 1)]);
    s.add_event_at("at", 42, vec![]);
    s.set_status(Status::Unset); // ignored
    s.record_error(&std::io::Error::other("disk full"));
    let d = s.snapshot().unwrap();
    assert_eq!(d.attributes.len(), 4);
    assert_eq!(d.attributes.iter().find(|a| a.key == "i").unwrap().value, Value::Int(8));
    assert_eq!(d.events.len(), 3);
    assert_eq!(d.events[1].time_unix_nano, 42);
    assert_eq!(d.events[2].name, "exception");
    assert!(d.events[2].attributes.contains(&KeyValue::new("exception.message", "disk full")));
    assert_eq!(d.status, Status::Error("disk full".into()));
    s.set_status(Status::Ok);
    s.set_status(Status::Error("later".into())); // Ok is final
    assert_eq!(s.snapshot().unwrap().status, Status::Ok);
    for i in 0..MAX_ATTRIBUTES + 3 {
        s.set_attribute(format!("k{i}"), i as i64);
    }
    let d = s.snapshot().unwrap();
    assert_eq!(d.attributes.len(), MAX_ATTRIBUTES);
    assert_eq!(d.dropped_attributes, 7);
    s.end();
    assert!(!s.is_recording());
    s.set_attribute("after", 1); // ignored, no panic
    assert!(s.snapshot().is_none());
    // Unsampled spans record nothing but have valid ids.
    let off = Tracer::builder().sampler(Sampler::AlwaysOff).build().unwrap();
    let mut n = off.start("n");
    n.set_attribute("x", 1);
    assert!(n.snapshot().is_none());
    assert!(n.context().trace_id.is_valid() && n.context().span_id.is_valid());
}

#[test]
fn context_propagates_to_threads_and_tasks() {
    let tracer = always_on();
    let span = tracer.start("request");
    let want = span.context().span_id;
    let _g = span.enter();
    // std::thread: explicit capture.
    let cx = Context::current();
    let got = std::thread::spawn(move || {
        let _g = cx.attach();
        Context::current().span().map(|s| s.span_id)
    })
    .join()
    .unwrap();
    assert_eq!(got, Some(want));
    // Scheduler::spawn carries it.
    let pool = Scheduler::new(2).unwrap();
    let out: Channel<Option<SpanId>> = Channel::new(4, Mode::Mpsc).unwrap();
    let tx = out.clone();
    pool.spawn(move || tx.send(Context::current().span().map(|s| s.span_id)).unwrap());
    assert_eq!(out.recv_timeout(Duration::from_secs(30)).unwrap(), Some(want));
    // TaskGroup::spawn carries it, and a child span in the task links up.
    let group = TaskGroup::builder().scheduler(&pool).build().unwrap();
    let t2 = tracer.clone();
    let h = group.spawn(move |_| {
        let child = t2.start("task");
        Ok((child.parent_span_id(), child.context().trace_id))
    });
    group.join().unwrap();
    assert_eq!(h.take().unwrap(), (Some(want), span.context().trace_id));
    // Without a context, tasks see none (and the worker's stack is clean).
    drop(_g);
    let tx = out.clone();
    pool.spawn(move || tx.send(Context::current().span().map(|s| s.span_id)).unwrap());
    assert_eq!(out.recv_timeout(Duration::from_secs(30)).unwrap(), None);
    pool.shutdown();
}

#[test]
fn global_tracer() {
    let previous = nimsync_core::tracing::set_global_tracer(always_on());
    let s = nimsync_core::tracing::start_span("global");
    assert!(s.is_recording());
    let t = std::thread::spawn(|| nimsync_core::tracing::start_span("other thread").is_recording());
    assert!(t.join().unwrap());
    nimsync_core::tracing::set_global_tracer(previous);
    assert!(!nimsync_core::tracing::start_span("after").is_recording());
}

// ---------------------------------------------------------------------- export

/// A one-thread HTTP/1.1 receiver: answers every POST with `status` and
/// hands the bodies (with their request line and content type) over.
fn receiver(status: u16) -> (String, Channel<(String, String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    let bodies = Channel::unbounded();
    let tx = bodies.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let (mut len, mut ctype) = (0usize, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                let (k, v) = line.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "content-type" => ctype = v.trim().to_owned(),
                    _ => {}
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
            conn.write_all(reply.as_bytes()).unwrap();
            if tx.send((request_line.trim_end().to_owned(), ctype, String::from_utf8(body).unwrap())).is_err() {
                return;
            }
        }
    });
    (url, bodies)
}

fn spans_of(request: &Json) -> Vec<Json> {
    request["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap().clone()
}

#[test]
fn http_exporter_delivers_batches() {
    let (url, bodies) = receiver(200);
    let tracer = Tracer::builder()
        .sampler(Sampler::AlwaysOn)
        .service_name("checkout")
        .exporter(OtlpHttpExporter::new(&url).unwrap())
        .batch_config(BatchConfig { max_queue_size: 64, max_batch_size: 4, scheduled_delay: Duration::from_secs(60) })
        .build()
        .unwrap();
    let mut want = Vec::new();
    let root = tracer.span_builder("root \"quoted\"\n").kind(SpanKind::Server).start();
    {
        let _g = root.enter();
        for i in 0..9 {
            let mut s = tracer.span_builder("child").kind(SpanKind::Client).start();
            s.set_attribute("i", i);
            s.set_attribute("ratio", 0.5);
            s.set_attribute("ok", true);
            s.set_attribute("who", "ünï");
            s.add_event("evt", vec![KeyValue::new("k", "v")]);
            if i == 3 {
                s.record_error_message("ValueError", "bad input");
            }
            want.push(s.snapshot().unwrap());
        }
    }
    let mut root = root;
    root.set_status(Status::Ok);
    root.end();
    tracer.flush(Duration::from_secs(30)).unwrap();
    // 10 spans, batches of at most 4: 4 + 4 + 2.
    let mut got = Vec::new();
    let mut batches = 0;
    while got.len() < 10 {
        let (line, ctype, body) = bodies.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(line, "POST /v1/traces HTTP/1.1");
        assert_eq!(ctype, "application/json");
        let req: Json = serde_json::from_str(&body).unwrap();
        let attrs = req["resourceSpans"][0]["resource"]["attributes"].as_array().unwrap();
        assert!(attrs.contains(&serde_json::json!({"key": "service.name", "value": {"stringValue": "checkout"}})));
        assert_eq!(req["resourceSpans"][0]["scopeSpans"][0]["scope"]["name"], "nimsync");
        let spans = spans_of(&req);
        assert!(spans.len() <= 4);
        got.extend(spans);
        batches += 1;
    }
    assert_eq!(batches, 3);
    let stats = tracer.stats();
    assert_eq!((stats.exported, stats.dropped, stats.failed), (10, 0, 0));
    for w in &want {
        let j = got.iter().find(|j| j["spanId"] == w.context.span_id.to_hex()).expect("span exported");
        assert_eq!(j["traceId"], w.context.trace_id.to_hex());
        assert_eq!(j["parentSpanId"], w.parent_span_id.unwrap().to_hex());
        assert_eq!(j["kind"], 3);
        let start: u64 = j["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = j["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert_eq!(start, w.start_time_unix_nano);
        assert!(end >= start);
        let a = j["attributes"].as_array().unwrap();
        assert!(a.contains(&serde_json::json!({"key": "ratio", "value": {"doubleValue": 0.5}})));
        assert!(a.contains(&serde_json::json!({"key": "ok", "value": {"boolValue": true}})));
        assert!(a.contains(&serde_json::json!({"key": "who", "value": {"stringValue": "ünï"}})));
        let i = w.attributes.iter().find(|k| k.key == "i").unwrap().value.to_string();
        assert!(a.contains(&serde_json::json!({"key": "i", "value": {"intValue": i}})));
        assert_eq!(j["events"][0]["name"], "evt");
        assert_eq!(j["events"][0]["timeUnixNano"], w.events[0].time_unix_nano.to_string());
    }
    let err = got.iter().find(|j| j["status"]["code"] == 2).unwrap();
    assert_eq!(err["status"]["message"], "bad input");
    assert_eq!(err["events"][1]["name"], "exception");
    let root_json = got.iter().find(|j| j.get("parentSpanId").is_none()).unwrap();
    assert_eq!(root_json["name"], "root \"quoted\"\n");
    assert_eq!(root_json["kind"], 2);
    assert_eq!(root_json["status"], serde_json::json!({"code": 1}));
    tracer.shutdown();
}

#[test]
fn http_exporter_failures_are_counted() {
    let (url, bodies) = receiver(400);
    let tracer =
        Tracer::builder().sampler(Sampler::AlwaysOn).exporter(OtlpHttpExporter::new(&url).unwrap()).build().unwrap();
    tracer.start("x").end();
    tracer.flush(Duration::from_secs(30)).unwrap();
    assert!(bodies.recv_timeout(Duration::from_secs(30)).is_ok());
    let stats = tracer.stats();
    assert_eq!((stats.exported, stats.failed), (0, 1));
    assert!(stats.last_error.unwrap().contains("HTTP 400"));
    for bad in ["localhost:4318", "https://x/v1/traces", "http://:80/", "http://h:port/", "http://[::1/"] {
        assert!(OtlpHttpExporter::new(bad).is_err(), "{bad}");
    }
}

#[test]
fn file_exporter_writes_json_lines() {
    let dir = std::env::temp_dir().join(format!("nimsync-trace-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spans.jsonl");
    let _ = std::fs::remove_file(&path);
    let tracer = Tracer::builder()
        .sampler(Sampler::AlwaysOn)
        .exporter(FileExporter::create(&path).unwrap())
        .batch_config(BatchConfig { max_batch_size: 3, ..BatchConfig::default() })
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut s = tracer.start("f");
        s.set_attribute("n", i);
        s.set_attribute("nan", f64::NAN);
        ids.push(s.context().span_id.to_hex());
    }
    tracer.shutdown();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3); // 3 + 3 + 1
    let mut seen = Vec::new();
    for l in lines {
        let req: Json = serde_json::from_str(l).unwrap();
        for s in spans_of(&req) {
            assert!(s["attributes"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!({"key": "nan", "value": {"doubleValue": "NaN"}})));
            seen.push(s["spanId"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(seen, ids);
    // After shutdown, spans are dropped and counted.
    tracer.start("late").end();
    assert_eq!(tracer.stats().dropped, 1);
    assert!(FileExporter::create(dir.join("missing-dir/x.jsonl")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Blocks in its first export until released, after telling the test.
struct GatedExporter {
    entered: Channel<()>,
    release: Channel<()>,
    spans: Channel<usize>,
}

impl SpanExporter for GatedExporter {
    fn export(&mut self, _: &Resource, batch: &[SpanData]) -> Result<(), ExportError> {
        let _ = self.entered.try_send(());
        self.release.recv().map_err(|e| ExportError(e.to_string()))?;
        self.release.try_send(()).ok(); // stays open for later batches
        self.spans.send(batch.len()).unwrap();
        Ok(())
    }
}

#[test]
fn full_buffer_drops_and_counts_without_blocking() {
    let entered = Channel::new(1, Mode::Spsc).unwrap();
    let release = Channel::new(1, Mode::Mpmc).unwrap();
    let spans = Channel::unbounded();
    let tracer = Tracer::builder()
        .sampler(Sampler::AlwaysOn)
        .exporter(GatedExporter { entered: entered.clone(), release: release.clone(), spans: spans.clone() })
        .batch_config(BatchConfig { max_queue_size: 8, max_batch_size: 1, scheduled_delay: Duration::from_secs(60) })
        .build()
        .unwrap();
    assert_eq!(tracer.stats().queue_capacity, 8);
    // The first span takes the thread into the blocked export.
    tracer.start("first").end();
    entered.recv_timeout(Duration::from_secs(30)).unwrap();
    // 8 fit in the buffer, the other 92 are dropped; none of this blocks.
    for _ in 0..100 {
        tracer.start("more").end();
    }
    let s = tracer.stats();
    assert_eq!((s.queued, s.dropped), (9, 92));
    release.send(()).unwrap();
    tracer.flush(Duration::from_secs(30)).unwrap();
    let exported: usize = spans.drain().sum();
    assert_eq!(exported, 9);
    assert_eq!(tracer.stats().exported, 9);
    tracer.shutdown();
}

#[test]
fn encoding_is_strict_otlp_json() {
    let tracer = always_on();
    let mut s = tracer.span_builder("enc").start_time(5).start();
    s.set_attribute("big", i64::MIN);
    s.set_attribute("inf", f64::NEG_INFINITY);
    s.set_attribute("ctl", "a\u{1}b\\");
    let d = s.snapshot();
    s.end();
    assert!(s.snapshot().is_none());
    let json = encode_otlp_json(&Resource::default(), &[d.unwrap()]);
    assert!(!json.contains('\n'));
    let v: Json = serde_json::from_str(&json).unwrap();
    let span = &spans_of(&v)[0];
    assert_eq!(span["startTimeUnixNano"], "5");
    let a = span["attributes"].as_array().unwrap();
    assert!(a.contains(&serde_json::json!({"key": "big", "value": {"intValue": i64::MIN.to_string()}})));
    assert!(a.contains(&serde_json::json!({"key": "inf", "value": {"doubleValue": "-Infinity"}})));
    assert!(a.contains(&serde_json::json!({"key": "ctl", "value": {"stringValue": "a\u{1}b\\"}})));
}

struct PanickingExporter;

impl SpanExporter for PanickingExporter {
    fn export(&mut self, _: &Resource, _: &[SpanData]) -> Result<(), ExportError> {
        panic!("exporter bug");
    }
}

#[test]
fn panicking_exporter_fails_batches_and_keeps_running() {
    let tracer = Tracer::builder().sampler(Sampler::AlwaysOn).exporter(PanickingExporter).build().unwrap();
    for _ in 0..2 {
        tracer.start("x").end();
        tracer.flush(Duration::from_secs(30)).unwrap();
    }
    let s = tracer.stats();
    assert_eq!((s.exported, s.failed), (0, 2));
    assert!(s.last_error.unwrap().contains("panicked"));
    tracer.shutdown();
    tracer.shutdown(); // idempotent
    tracer.flush(Duration::from_secs(1)).unwrap(); // nothing left
}

#[test]
fn spans_wait_at_most_the_scheduled_delay() {
    // No flush: the delay alone gets the spans out (the test waits on the
    // receiver, with a generous upper bound).
    let (url, bodies) = receiver(200);
    let tracer = Tracer::builder()
        .sampler(Sampler::AlwaysOn)
        .exporter(OtlpHttpExporter::new(&url).unwrap())
        .batch_config(BatchConfig {
            max_queue_size: 64,
            max_batch_size: 100,
            scheduled_delay: Duration::from_millis(20),
        })
        .build()
        .unwrap();
    for round in 0..3 {
        let mut want: Vec<String> = (0..3).map(|_| tracer.start("d").context().span_id.to_hex()).collect();
        let mut got = Vec::new();
        while got.len() < 3 {
            let (_, _, body) = bodies.recv_timeout(Duration::from_secs(30)).expect("exported after the delay");
            let req: Json = serde_json::from_str(&body).unwrap();
            got.extend(spans_of(&req).iter().map(|s| s["spanId"].as_str().unwrap().to_owned()));
        }
        want.sort();
        got.sort();
        assert_eq!(got, want, "round {round}");
    }
    tracer.shutdown();
}
