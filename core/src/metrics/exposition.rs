//! The Prometheus text exposition format, version 0.0.4.
//!
//! One `# HELP` and one `# TYPE` line per family, then its samples; label
//! values escape backslash, double quote and newline (`\\`, `\"`, `\n`), help
//! text escapes backslash and newline. Floats are written the way Go's
//! `strconv` reads them (`+Inf`, `-Inf`, `NaN`, integers without a fraction).

use super::runtime::RuntimeFamily;
use super::{Exposition, Family, Kind, Series};
use std::fmt::{self, Write};
use std::sync::Arc;

/// The `Content-Type` of this format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes a label value with the format's escapes.
pub(crate) fn escape_label_value(out: &mut impl Write, v: &str) -> fmt::Result {
    for c in v.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '"' => out.write_str("\\\"")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// Writes help text with the format's escapes.
fn escape_help(out: &mut impl Write, v: &str) -> fmt::Result {
    for c in v.chars() {
        match c {
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            c => out.write_char(c)?,
        }
    }
    Ok(())
}

/// A float as Prometheus writes it.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        // `{:?}` is the shortest text that reads back to the same f64, in
        // exponent form for very small or large magnitudes (`1e-7`, `1e20`).
        format!("{v:?}")
    }
}

/// `{a="x",b="y"}` (or nothing without labels), with an extra label last.
fn write_labels<'a>(
    out: &mut impl Write,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    extra: Option<(&str, &str)>,
) -> fmt::Result {
    let mut first = true;
    for (k, v) in labels {
        write_label(out, &mut first, k, v)?;
    }
    if let Some((k, v)) = extra {
        write_label(out, &mut first, k, v)?;
    }
    if !first {
        out.write_char('}')?;
    }
    Ok(())
}

/// One `name="value"`, after `{` (the first) or `,`.
fn write_label(out: &mut impl Write, first: &mut bool, k: &str, v: &str) -> fmt::Result {
    out.write_char(if *first { '{' } else { ',' })?;
    *first = false;
    write!(out, "{k}=\"")?;
    escape_label_value(out, v)?;
    out.write_char('"')
}

/// The `# HELP` line (left out when there is no help text, as Prometheus'
/// own clients do) and the `# TYPE` line.
fn header(out: &mut impl Write, name: &str, help: &str, kind: &str) -> fmt::Result {
    if !help.is_empty() {
        write!(out, "# HELP {name} ")?;
        escape_help(out, help)?;
        out.write_char('\n')?;
    }
    writeln!(out, "# TYPE {name} {kind}")
}

/// `v` in exposed units. A scale like 1e-9 is applied as a division by
/// 1e9, which rounds once (755500000 ns is 0.7555 s, not 0.7555000000000001).
fn scaled(v: f64, scale: f64) -> f64 {
    let inverse = (1.0 / scale).round();
    if inverse >= 1.0 && 1.0 / inverse == scale {
        v / inverse
    } else {
        v * scale
    }
}

/// An exposed-unit bound in recorded units (the inverse of [`scaled`]:
/// 0.001 s is 1000000 ns, not 999999.9999999999).
fn unscaled(v: f64, scale: f64) -> f64 {
    let inverse = (1.0 / scale).round();
    if inverse >= 1.0 && 1.0 / inverse == scale {
        v * inverse
    } else {
        v / scale
    }
}

/// A `u128` sum in exposed units, exact when the scale is 1.
fn scaled_sum(sum: u128, scale: f64) -> String {
    if scale == 1.0 {
        sum.to_string()
    } else {
        format_float(scaled(sum as f64, scale))
    }
}

fn write_family(out: &mut impl Write, f: &Family) -> fmt::Result {
    let mut series: Vec<(Vec<String>, Series)> =
        super::read(&f.series).iter().map(|(k, s)| (k.clone(), s.clone())).collect();
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let type_name = match (f.kind, &f.opts.exposition) {
        (Kind::Histogram, Exposition::Quantiles(_)) => "summary",
        (k, _) => k.name(),
    };
    header(out, &f.name, &f.help, type_name)?;
    let name = &f.name;
    let scale = f.opts.scale;
    for (values, s) in &series {
        let labels = || f.label_names.iter().map(String::as_str).zip(values.iter().map(String::as_str));
        match s {
            Series::Counter(c) => {
                out.write_str(name)?;
                write_labels(out, labels(), None)?;
                writeln!(out, " {}", c.get())?;
            }
            Series::Gauge(g) => {
                out.write_str(name)?;
                write_labels(out, labels(), None)?;
                writeln!(out, " {}", format_float(g.get()))?;
            }
            Series::Histogram(h) => {
                let snap = h.snapshot();
                match &f.opts.exposition {
                    Exposition::Buckets(bounds) => {
                        for &le in bounds {
                            write!(out, "{name}_bucket")?;
                            write_labels(out, labels(), Some(("le", &format_float(le))))?;
                            writeln!(out, " {}", snap.count_at_most(unscaled(le, scale)))?;
                        }
                        write!(out, "{name}_bucket")?;
                        write_labels(out, labels(), Some(("le", "+Inf")))?;
                        writeln!(out, " {}", snap.count())?;
                    }
                    Exposition::Quantiles(qs) => {
                        for &q in qs {
                            out.write_str(name)?;
                            write_labels(out, labels(), Some(("quantile", &format_float(q))))?;
                            let v = if snap.count() == 0 {
                                f64::NAN
                            } else {
                                scaled(snap.percentile(q * 100.0) as f64, scale)
                            };
                            writeln!(out, " {}", format_float(v))?;
                        }
                    }
                }
                write!(out, "{name}_sum")?;
                write_labels(out, labels(), None)?;
                writeln!(out, " {}", scaled_sum(snap.sum(), scale))?;
                write!(out, "{name}_count")?;
                write_labels(out, labels(), None)?;
                writeln!(out, " {}", snap.count())?;
            }
        }
    }
    Ok(())
}

fn write_runtime(out: &mut impl Write, f: &RuntimeFamily) -> fmt::Result {
    header(out, f.name, f.help, f.kind.name())?;
    for (labels, v) in &f.samples {
        out.write_str(f.name)?;
        write_labels(out, labels.iter().map(|(k, v)| (*k, v.as_str())), None)?;
        writeln!(out, " {}", format_float(*v))?;
    }
    Ok(())
}

/// Writes every family, registered and runtime, sorted by name.
pub(crate) fn write(out: &mut impl Write, families: &[Arc<Family>], runtime: &[RuntimeFamily]) -> fmt::Result {
    enum Entry<'a> {
        User(&'a Family),
        Runtime(&'a RuntimeFamily),
    }
    let mut all: Vec<(&str, Entry)> = families
        .iter()
        .map(|f| (f.name.as_str(), Entry::User(f)))
        .chain(runtime.iter().map(|f| (f.name, Entry::Runtime(f))))
        .collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    for (_, e) in all {
        match e {
            Entry::User(f) => write_family(out, f)?,
            Entry::Runtime(f) => write_runtime(out, f)?,
        }
    }
    Ok(())
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn floats_read_back() {
        assert_eq!(format_float(5.0), "5");
        assert_eq!(format_float(-3.0), "-3");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(1e-7), "1e-7");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1e20).parse::<f64>().unwrap(), 1e20);
    }

    #[test]
    fn escapes() {
        let mut s = String::new();
        escape_label_value(&mut s, "a\\b\"c\nd").unwrap();
        assert_eq!(s, r#"a\\b\"c\nd"#);
        let mut s = String::new();
        escape_help(&mut s, "a\\b\"c\nd").unwrap();
        assert_eq!(s, r#"a\\b"c\nd"#);
    }
}
