//! Workload parameters with units: sizes ("4KiB"), durations ("10us"), counts ("1000"),
//! booleans. Each workload declares its parameters as [`ParamDef`]s; suite files and the CLI
//! give raw values, which are parsed here into typed [`Value`]s with errors that say what is
//! accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The unit a parameter is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes: `4096`, `4KiB`, `1MiB`, `2GiB` (powers of 1024; `K`/`M`/`G` alone too), and
    /// `KB`/`MB`/`GB`/`TB` as powers of 1000, as SI defines them: `10MB` is 10,000,000 bytes,
    /// `10MiB` is 10,485,760. A lowercase `b` (bits: `Mb`) or another case (`mib`) is refused
    /// with the right spelling suggested.
    Size,
    /// Time: `500ns`, `10us`, `1ms`, `1.5s`.
    Duration,
    /// A plain whole number: `1000`, `1_000_000`.
    Count,
    /// `true` or `false`.
    Bool,
    /// One of a fixed set of words, e.g. `pipe`, `eventfd`, `futex`.
    Choice(&'static [&'static str]),
}

impl Unit {
    /// What a value of this unit looks like, for error messages.
    pub fn example(self) -> String {
        match self {
            Unit::Choice(opts) => format!(
                "one of {}",
                opts.iter()
                    .map(|o| format!("\"{o}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.example_simple().to_string(),
        }
    }

    fn example_simple(self) -> &'static str {
        match self {
            Unit::Choice(_) => "one of a fixed set of words",
            Unit::Size => "a size such as \"4KiB\", \"1MiB\" or 4096",
            Unit::Duration => "a duration such as \"500ns\", \"10us\", \"1ms\" or \"2s\"",
            Unit::Count => "a whole number such as 1000",
            Unit::Bool => "true or false",
        }
    }
}

/// One declared parameter of a workload.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    /// Name as written in suite files (snake_case).
    pub name: &'static str,
    /// Unit of the value.
    pub unit: Unit,
    /// Default, written as a user would write it.
    pub default: &'static str,
    /// One line: what the parameter controls.
    pub help: &'static str,
}

/// A parsed parameter value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// Bytes.
    Size(u64),
    /// Time.
    Duration(Duration),
    /// Whole number.
    Count(u64),
    /// Flag.
    Bool(bool),
    /// One of the declared words.
    Choice(&'static str),
    /// An injected fault (`fault = "kill9@5000"`), accepted by every workload.
    Fault(crate::fault::FaultSpec),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Size(b) => f.write_str(&format_size(*b)),
            Value::Duration(d) => f.write_str(&format_duration(*d)),
            Value::Count(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Choice(c) => f.write_str(c),
            Value::Fault(spec) => write!(f, "{spec}"),
        }
    }
}

/// Parses `raw` as a value of `unit`; the error says what was expected.
pub fn parse(unit: Unit, raw: &str) -> Result<Value, String> {
    let s = raw.trim();
    let bad = || match why_not(unit, s) {
        Some(why) => format!("\"{raw}\" is not {}: {why}", unit.example()),
        None => format!("\"{raw}\" is not {}", unit.example()),
    };
    match unit {
        Unit::Size => parse_size(s).map(Value::Size).ok_or_else(bad),
        Unit::Duration => parse_duration(s).map(Value::Duration).ok_or_else(bad),
        Unit::Count => s
            .replace('_', "")
            .parse::<u64>()
            .map(Value::Count)
            .map_err(|_| bad()),
        Unit::Bool => match s {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad()),
        },
        Unit::Choice(opts) => opts
            .iter()
            .find(|o| **o == s)
            .map(|o| Value::Choice(o))
            .ok_or_else(bad),
    }
}

/// Why `s` is not a value of `unit`, when there is more to say than what is accepted: a
/// size or duration with no unit or an unknown one, a negative number, a near miss of a word.
fn why_not(unit: Unit, s: &str) -> Option<String> {
    if s.starts_with('-') && matches!(unit, Unit::Size | Unit::Duration | Unit::Count) {
        return Some("it is negative: give a value of 0 or more".into());
    }
    match unit {
        Unit::Size => {
            let (n, suffix) = split_number(s)?;
            if size_mult(suffix).is_some() {
                return Some("it is not a whole number of bytes, or too large".into());
            }
            let n = trim_float(n);
            let lower = suffix.to_ascii_lowercase();
            let prefix = lower.trim_end_matches("ib").trim_end_matches('b');
            let bits = suffix.len() > 1 && suffix.ends_with('b') && !suffix.ends_with("ib");
            let mut why = format!("\"{suffix}\" is not a size unit");
            if bits {
                why.push_str(" (a lowercase b means bits)");
            }
            if let Some(p) = ["k", "m", "g", "t"].iter().find(|p| **p == prefix) {
                let p = p.to_ascii_uppercase();
                why.push_str(&format!(
                    ": write \"{n}{p}iB\" (powers of 1024) or \"{n}{p}B\" (powers of 1000)"
                ));
            } else {
                why.push_str(
                    ": use B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000)",
                );
            }
            Some(why)
        }
        Unit::Duration => {
            let (n, suffix) = split_number(s)?;
            let n = trim_float(n);
            Some(
                if ["ns", "us", "µs", "ms", "s", "m", "min", "h"].contains(&suffix) {
                    "it is too large".into()
                } else if suffix.is_empty() {
                    format!("a duration needs a unit: write e.g. \"{n}ms\", \"{n}us\" or \"{n}s\"")
                } else {
                    format!("\"{suffix}\" is not a time unit: use ns, us, ms, s, m or h")
                },
            )
        }
        Unit::Choice(opts) => crate::registry::did_you_mean(s, opts.iter().copied())
            .map(|o| format!("did you mean \"{o}\"?")),
        Unit::Count if s.contains('.') || s.contains('e') => {
            Some("a count is a whole number".into())
        }
        _ => None,
    }
}

fn split_number(s: &str) -> Option<(f64, &str)> {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(end);
    let num: f64 = num.replace('_', "").parse().ok()?;
    if !num.is_finite() || num < 0.0 {
        return None;
    }
    Some((num, suffix.trim()))
}

/// Parses a byte size: `4096`, `4KiB`, `4K`, `1MiB`, `1MB`, `2GiB`. Whole numbers are
/// computed exactly (no rounding through f64, so every u64 reads back); fractions (`1.5KiB`)
/// must come to a whole number of bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let (n, suffix) = split_number(s)?;
    let mult = size_mult(suffix)?;
    let t = s.trim();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(t.len());
    if !t[..end].contains('.') {
        let whole: u64 = t[..end].replace('_', "").parse().ok()?;
        return whole.checked_mul(mult);
    }
    let v = n * mult as f64;
    if v >= u64::MAX as f64 || v.fract() != 0.0 {
        return None;
    }
    Some(v as u64)
}

/// Bytes per unit of a size suffix.
fn size_mult(suffix: &str) -> Option<u64> {
    Some(match suffix {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => return None,
    })
}

/// Parses a duration: `500ns`, `10us` (or `µs`), `1ms`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let (n, suffix) = split_number(s)?;
    let ns_per: f64 = match suffix {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    let ns = n * ns_per;
    if ns > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(ns.round() as u64))
}

/// Formats bytes the way they are written in suites: `4KiB`, `1MiB`, `100B`.
pub fn format_size(b: u64) -> String {
    const UNITS: [(&str, u64); 4] = [
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, m) in UNITS {
        if b >= m && b.is_multiple_of(m) {
            return format!("{}{name}", b / m);
        }
    }
    format!("{b}B")
}

/// Formats a duration the way it is written in suites: `10us`, `1ms`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    for (name, m) in [("s", 1_000_000_000u128), ("ms", 1_000_000), ("us", 1_000)] {
        if ns >= m {
            return if ns.is_multiple_of(m) {
                format!("{}{name}", ns / m)
            } else {
                let v = ns as f64 / m as f64;
                format!("{}{name}", trim_float(v))
            };
        }
    }
    format!("{ns}ns")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The parameter every workload accepts: an injected fault (see `crate::fault`).
pub const FAULT: &str = "fault";

/// A workload's parameters, complete (defaults filled in) and typed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
}

impl Params {
    /// Resolves `given` (name → raw string) against `defs`: fills defaults, rejects unknown
    /// names and badly written values. Errors name the parameter and what it accepts.
    pub fn resolve(defs: &[ParamDef], given: &BTreeMap<String, String>) -> Result<Params, String> {
        for name in given.keys() {
            if !defs.iter().any(|d| d.name == name) {
                let known: Vec<_> = defs.iter().map(|d| d.name).collect();
                return Err(if known.is_empty() {
                    format!("unknown parameter `{name}`: this workload takes no parameters")
                } else {
                    format!(
                        "unknown parameter `{name}`: {}this workload takes {}",
                        crate::registry::did_you_mean(name, known.iter().copied())
                            .map(|k| format!("did you mean `{k}`? "))
                            .unwrap_or_default(),
                        known.join(", ")
                    )
                });
            }
        }
        let mut values = BTreeMap::new();
        for d in defs {
            let raw = given.get(d.name).map(String::as_str).unwrap_or(d.default);
            let v = parse(d.unit, raw).map_err(|e| format!("parameter `{}`: {e}", d.name))?;
            values.insert(d.name, v);
        }
        Ok(Params { values })
    }

    /// Like [`Params::resolve`] for a workload: also accepts `fault` (every workload takes it,
    /// see `crate::fault`). `fault = "none"` is dropped, so cell ids without a fault stay
    /// the same.
    pub fn resolve_workload(
        defs: &[ParamDef],
        given: &BTreeMap<String, String>,
    ) -> Result<Params, String> {
        let mut rest = given.clone();
        let fault = match rest.remove(FAULT) {
            None => None,
            Some(raw) => crate::fault::FaultSpec::parse(&raw)
                .map_err(|e| format!("parameter `{FAULT}`: {e}"))?,
        };
        let mut p = Params::resolve(defs, &rest).map_err(|e| {
            if e.starts_with("unknown parameter") {
                format!("{e} (and `{FAULT}`, which every workload takes)")
            } else {
                e
            }
        })?;
        if let Some(f) = fault {
            p.values.insert(FAULT, Value::Fault(f));
        }
        Ok(p)
    }

    /// The injected fault, if any.
    pub fn fault(&self) -> Option<crate::fault::FaultSpec> {
        match self.values.get(FAULT) {
            Some(Value::Fault(f)) => Some(*f),
            _ => None,
        }
    }

    /// Builds params from typed values (for tests and the library API).
    pub fn from_values(values: impl IntoIterator<Item = (&'static str, Value)>) -> Params {
        Params {
            values: values.into_iter().collect(),
        }
    }

    /// Size parameter `name` in bytes. Panics if the workload did not declare it as a size:
    /// that is a bug in the workload, caught by its unit tests.
    pub fn size(&self, name: &str) -> u64 {
        match self.values.get(name) {
            Some(Value::Size(b)) => *b,
            other => panic!("param {name}: expected a size, have {other:?}"),
        }
    }

    /// Duration parameter `name`.
    pub fn duration(&self, name: &str) -> Duration {
        match self.values.get(name) {
            Some(Value::Duration(d)) => *d,
            other => panic!("param {name}: expected a duration, have {other:?}"),
        }
    }

    /// Count parameter `name`.
    pub fn count(&self, name: &str) -> u64 {
        match self.values.get(name) {
            Some(Value::Count(n)) => *n,
            other => panic!("param {name}: expected a count, have {other:?}"),
        }
    }

    /// Bool parameter `name`.
    pub fn flag(&self, name: &str) -> bool {
        match self.values.get(name) {
            Some(Value::Bool(b)) => *b,
            other => panic!("param {name}: expected a bool, have {other:?}"),
        }
    }

    /// Choice parameter `name`.
    pub fn choice(&self, name: &str) -> &'static str {
        match self.values.get(name) {
            Some(Value::Choice(c)) => c,
            other => panic!("param {name}: expected a choice, have {other:?}"),
        }
    }

    /// The canonical text form `k=v,k=v` (sorted by name), or `-` when there are none: the
    /// params part of a cell id.
    pub fn canonical(&self) -> String {
        if self.values.is_empty() {
            return "-".into();
        }
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Name → formatted value, for results.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("4KiB"), Some(4096));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("1MB"), Some(1_000_000));
        assert_eq!(parse_size("1.5KiB"), Some(1536));
        assert_eq!(parse_size("4 KiB"), Some(4096));
        assert_eq!(parse_size("4XB"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(
            parse_size("18446744073709551615"),
            Some(u64::MAX),
            "exact, not via f64"
        );
        assert_eq!(parse_size("16777216TiB"), None, "2^64 overflows");
        assert_eq!(parse_size("1_000KB"), Some(1_000_000));
        assert_eq!(parse_size(""), None);
        assert_eq!(format_size(4096), "4KiB");
        assert_eq!(format_size(1000), "1000B");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10us"), Some(Duration::from_micros(10)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ns"), Some(Duration::from_nanos(500)));
        assert_eq!(parse_duration("10"), None, "a bare number has no unit");
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(format_duration(Duration::from_micros(10)), "10us");
        assert_eq!(format_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(format_duration(Duration::from_nanos(250)), "250ns");
    }

    #[test]
    fn resolve_fills_defaults_and_rejects_unknown() {
        const DEFS: &[ParamDef] = &[
            ParamDef {
                name: "size",
                unit: Unit::Size,
                default: "4KiB",
                help: "",
            },
            ParamDef {
                name: "delay",
                unit: Unit::Duration,
                default: "1ms",
                help: "",
            },
        ];
        let mut g = BTreeMap::new();
        g.insert("delay".to_string(), "2ms".to_string());
        let p = Params::resolve(DEFS, &g).unwrap();
        assert_eq!(p.size("size"), 4096);
        assert_eq!(p.duration("delay"), Duration::from_millis(2));
        assert_eq!(p.canonical(), "delay=2ms,size=4KiB");
        g.insert("sise".into(), "1".into());
        let e = Params::resolve(DEFS, &g).unwrap_err();
        assert!(
            e.contains("unknown parameter `sise`") && e.contains("size, delay"),
            "{e}"
        );
        let mut g = BTreeMap::new();
        g.insert("delay".to_string(), "2 parsecs".to_string());
        let e = Params::resolve(DEFS, &g).unwrap_err();
        assert!(e.contains("`delay`") && e.contains("duration"), "{e}");
    }

    #[test]
    fn unit_errors_say_how_to_fix() {
        let e = parse(Unit::Size, "10Mb").unwrap_err();
        assert!(
            e.contains("bits") && e.contains("\"10MiB\"") && e.contains("\"10MB\""),
            "{e}"
        );
        let e = parse(Unit::Size, "5 parsecs").unwrap_err();
        assert!(e.contains("\"parsecs\" is not a size unit"), "{e}");
        let e = parse(Unit::Duration, "10").unwrap_err();
        assert!(e.contains("needs a unit") && e.contains("\"10ms\""), "{e}");
        let e = parse(Unit::Duration, "5 parsecs").unwrap_err();
        assert!(e.contains("not a time unit"), "{e}");
        let e = parse(Unit::Count, "-3").unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse(Unit::Choice(&["pipe", "eventfd"]), "eventf").unwrap_err();
        assert!(e.contains("did you mean \"eventfd\"?"), "{e}");
        assert_eq!(parse(Unit::Size, "10MB"), Ok(Value::Size(10_000_000)));
        assert_eq!(parse(Unit::Size, "10MiB"), Ok(Value::Size(10 << 20)));
    }

    #[test]
    fn choices() {
        let u = Unit::Choice(&["pipe", "eventfd"]);
        assert_eq!(parse(u, "pipe"), Ok(Value::Choice("pipe")));
        let e = parse(u, "pigeon").unwrap_err();
        assert!(e.contains("\"pipe\", \"eventfd\""), "{e}");
    }
}
