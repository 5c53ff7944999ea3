//! Property tests of the suite parser (proptest): arbitrary bytes, arbitrary text, and
//! near-valid suites built from the real key set with random values, units, deletions and
//! line mutations. Whatever the input, `suite::load`/`suite::parse` returns either a suite
//! whose cells hold the invariants (workers in range, tasks ≥ workers, distinct ids, rates
//! finite and positive) or one error on one line that names a line of the file, a column and
//! a key. A panic fails the test. Unit values (sizes, durations, counts) parse or say what is
//! accepted, and sizes read back from the text they are shown as.
//!
//! Bounded and deterministic for CI: 256 cases per property (PROPTEST_CASES overrides) from a
//! fixed seed (PROPTEST_RNG_SEED overrides), so every run tries the same inputs.

use std::path::Path;

use concbench::suite::{self, MAX_TASKS, MAX_WORKERS, Suite, SuiteError};
use concbench::{mechanic, model, server, workload};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed};

fn config() -> Config {
    let base = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            base.cases
        } else {
            256
        },
        rng_seed: match base.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x5eed_c0de),
            fixed => fixed,
        },
        max_shrink_iters: 2048,
        // Failures are recorded next to this file (commit them: they are re-run first).
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/suite_props.proptest-regressions"
        )))),
        ..base
    }
}

/// Checks one parse result; `text` is what was parsed.
fn check(text: &str, r: &Result<Suite, SuiteError>) -> Result<(), TestCaseError> {
    match r {
        Err(e) => {
            let lines = text.split('\n').count();
            prop_assert!(
                (1..=lines).contains(&e.line),
                "line {} outside 1..={lines}: {e}",
                e.line
            );
            prop_assert!(e.column >= 1, "column 0: {e}");
            prop_assert!(!e.key.is_empty() && !e.message.is_empty(), "{e}");
            let shown = e.to_string();
            prop_assert!(
                shown.starts_with(&format!("{}:{}:{}: ", e.file, e.line, e.column)),
                "{shown}"
            );
            prop_assert!(!shown.contains('\n'), "more than one line: {shown}");
        }
        Ok(s) => {
            prop_assert!(!s.duration.is_zero());
            prop_assert!((1..=1000).contains(&s.repeats));
            prop_assert!(!s.cells.is_empty() || !s.mechanics.is_empty() || !s.servers.is_empty());
            let mut ids = std::collections::HashSet::new();
            for c in &s.cells {
                prop_assert!((1..=MAX_WORKERS).contains(&c.workers), "{}", c.id);
                prop_assert!(c.tasks >= c.workers && c.tasks <= MAX_TASKS, "{}", c.id);
                prop_assert!(!c.model.single_worker || c.workers == 1, "{}", c.id);
                if let model::Load::Open { rate } = c.load {
                    prop_assert!(rate.is_finite() && rate > 0.0, "{}", c.id);
                }
                prop_assert!(ids.insert(c.id.clone()), "cell {} twice", c.id);
            }
            for m in &s.mechanics {
                prop_assert!(ids.insert(m.id.clone()), "mechanic {} twice", m.id);
            }
            for v in &s.servers {
                prop_assert!(v.connections >= 1 && v.workers >= 1, "{}", v.id);
                prop_assert!(ids.insert(v.id.clone()), "server {} twice", v.id);
            }
        }
    }
    Ok(())
}

// ---- near-valid suites ------------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "warmup",
    "duration",
    "repeats",
    "noise_threshold",
    "noise_reruns",
    "durration",
];
const MATRIX_KEYS: &[&str] = &[
    "workload", "params", "models", "workers", "tasks", "pin", "load", "workerz",
];
const MECHANIC_KEYS: &[&str] = &["mechanic", "params", "iters"];
const SERVER_KEYS: &[&str] = &[
    "arch",
    "workers",
    "connections",
    "handler",
    "load",
    "reuseport",
    "helpers",
    "conections",
];

/// Values that are near the edge of what is accepted, written as TOML.
const EDGE: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "4096",
    "4097",
    "100000",
    "100001",
    "9223372036854775807",
    "99999999999999999999",
    "2.5",
    "nan",
    "inf",
    "-inf",
    "-0.0",
    "1e308",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\" \"",
    "\"cores\"",
    "\"0*cores\"",
    "\"-1*cores\"",
    "\"4*cores\"",
    "\"9223372036854775807*cores\"",
    "\"workers\"",
    "\"closed\"",
    "{ rate = 0 }",
    "{ rate = -5 }",
    "{ rate = nan }",
    "{ rate = 1e10 }",
    "{ rate = 500 }",
    "{ rat = 5 }",
    "\"10\"",
    "\"10us\"",
    "\"0s\"",
    "\"2h\"",
    "\"5 parsecs\"",
    "\"1TB\"",
    "\"10Mb\"",
    "\"10MiB\"",
    "\"64MiB\"",
    "\"-5KiB\"",
    "\"1.5B\"",
    "\"é\"",
    "\"\\u0000\"",
    "[1, 1]",
    "[1, \"cores\"]",
    "[\"threads\", \"threads\"]",
    "[[1]]",
    "{ a = { b = 1 } }",
    "1979-05-27",
];
const UNITS: &[&str] = &[
    "", "B", "KiB", "MiB", "GiB", "TiB", "KB", "MB", "Mb", "kb", "ns", "us", "µs", "ms", "s", "m",
    "h", "parsecs", "%",
];

/// The ids, and (when `noisy`) a near miss of each, for the "unknown … did you mean" path.
fn ids(v: impl IntoIterator<Item = &'static str>, noisy: bool) -> Vec<String> {
    let mut out: Vec<String> = v.into_iter().map(str::to_string).collect();
    if noisy {
        let typos: Vec<String> = out.iter().map(|s| s[..s.len() - 1].to_string()).collect();
        out.extend(typos);
    }
    out
}

fn quoted(pool: Vec<String>) -> BoxedStrategy<String> {
    select(pool).prop_map(|s| format!("\"{s}\"")).boxed()
}

/// Any TOML-ish value: edge cases, numbers, numbers with units, short strings, small arrays.
fn any_value() -> BoxedStrategy<String> {
    let scalar = prop_oneof![
        select(EDGE).prop_map(str::to_string),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..5000).prop_map(|n| n.to_string()),
        (0u32..100_000, select(UNITS)).prop_map(|(n, u)| format!("\"{n}{u}\"")),
        (-1e3f64..1e3).prop_map(|f| format!("{f:?}")),
        "[a-z0-9_*:=,. -]{0,12}".prop_map(|s| format!("\"{s}\"")),
    ];
    prop_oneof![
        4 => scalar.clone(),
        1 => prop::collection::vec(scalar, 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
    ]
    .boxed()
}

/// A lone value or a list of them (empty only when `noisy`).
fn list_of(item: BoxedStrategy<String>, noisy: bool) -> BoxedStrategy<String> {
    let len = if noisy { 0..4 } else { 1..3 };
    prop_oneof![
        item.clone(),
        prop::collection::vec(item, len).prop_map(|v| format!("[{}]", v.join(", "))),
    ]
    .boxed()
}

/// Every parameter name of every workload and mechanic, and a typo of each.
fn param_names() -> Vec<String> {
    let mut names: Vec<&'static str> = workload::REGISTRY
        .iter()
        .flat_map(|d| d.params.iter().map(|p| p.name))
        .chain(
            mechanic::REGISTRY
                .iter()
                .flat_map(|d| d.params.iter().map(|p| p.name)),
        )
        .collect();
    names.sort();
    names.dedup();
    ids(names, true)
}

/// A value that fits `key` (when `noisy`, more often than not), so parsing gets past the
/// types into the checks of ranges, ids, units and memory.
fn value_for(key: &'static str, noisy: bool) -> BoxedStrategy<String> {
    let small = || list_of((1u32..6).prop_map(|n| n.to_string()).boxed(), noisy);
    let units: &'static [&'static str] = if noisy {
        UNITS
    } else {
        &["ns", "us", "ms", "s"]
    };
    let specific: BoxedStrategy<String> = match key {
        "workload" => quoted(ids(workload::REGISTRY.iter().map(|d| d.id), noisy)),
        "models" => list_of(
            quoted(ids(model::REGISTRY.iter().map(|m| m.id), noisy)),
            noisy,
        ),
        "mechanic" => quoted(ids(mechanic::REGISTRY.iter().map(|d| d.id), noisy)),
        "arch" => list_of(
            quoted(ids(server::ARCHS.iter().map(|a| a.id), noisy)),
            noisy,
        ),
        "params" if !noisy => Just("{}".to_string()).boxed(),
        "params" => prop::collection::vec((select(param_names()), any_value()), 0..3)
            .prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!("{{ {} }}", body.join(", "))
            })
            .boxed(),
        "workers" | "tasks" | "connections" | "helpers" | "repeats" | "noise_reruns" => small(),
        "pin" => list_of(quoted(ids(["none", "spread", "same-core"], noisy)), noisy),
        "load" => list_of(
            prop_oneof![
                Just("\"closed\"".to_string()),
                (1u32..10_000).prop_map(|r| format!("{{ rate = {r} }}")),
            ]
            .boxed(),
            noisy,
        ),
        "handler" => quoted(ids(["none", "spin:op_time=10us", "sleep:delay=1ms"], noisy)),
        "warmup" | "duration" => (1u32..3000, select(units))
            .prop_map(|(n, u)| format!("\"{n}{u}\""))
            .boxed(),
        "noise_threshold" => (0u32..if noisy { 200 } else { 100 })
            .prop_map(|n| format!("\"{n}%\""))
            .boxed(),
        "reuseport" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        _ => any_value(),
    };
    if noisy {
        prop_oneof![3 => specific, 1 => any_value()].boxed()
    } else {
        specific
    }
}

/// Each key of `keys` with its value, or absent. Clean (not `noisy`): only real keys (the
/// last of each list is a misspelling), the required ones always, fitting values only.
fn keys(keys: &'static [&'static str], p: f64, noisy: bool) -> BoxedStrategy<Vec<String>> {
    let required = ["workload", "models", "mechanic", "arch", "connections"];
    let real = if noisy { keys } else { &keys[..keys.len() - 1] };
    let per_key: Vec<BoxedStrategy<Option<String>>> = real
        .iter()
        .map(|k| {
            let line = value_for(k, noisy).prop_map(move |v| format!("{k} = {v}"));
            if !noisy && required.contains(k) {
                line.prop_map(Some).boxed()
            } else {
                prop::option::weighted(p, line).boxed()
            }
        })
        .collect();
    per_key
        .prop_map(|v| v.into_iter().flatten().collect())
        .boxed()
}

/// One `[[table]]` with its lines.
fn table(noisy: bool) -> BoxedStrategy<Vec<String>> {
    let with = |name: &'static str, ks: BoxedStrategy<Vec<String>>| {
        ks.prop_map(move |mut lines| {
            lines.insert(0, format!("[[{name}]]"));
            lines
        })
    };
    prop_oneof![
        3 => with("matrix", keys(MATRIX_KEYS, 0.5, noisy)),
        1 => with("mechanic", keys(MECHANIC_KEYS, 0.5, noisy)),
        1 => with("server", keys(SERVER_KEYS, 0.5, noisy)),
    ]
    .boxed()
}

/// A line-level change to a rendered suite: (kind, where).
type Mutation = (u8, usize);

fn mutate(text: &str, muts: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for &(kind, at) in muts {
        if lines.is_empty() {
            break;
        }
        let i = at % lines.len();
        match kind % 5 {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                // Truncate the line at a char boundary.
                let l = &lines[i];
                let mut cut = at % (l.len() + 1);
                while !l.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines[i] = l[..cut].to_string();
            }
            3 => {
                let j = (at / 7) % lines.len();
                lines.swap(i, j);
            }
            _ => lines.insert(i, String::new()),
        }
    }
    lines.join("\n")
}

/// A suite from the real key set: half of them clean (real keys, fitting values: most load),
/// half noisy (misspelt keys and ids, edge values); a third of all get line mutations.
fn near_valid_suite() -> impl Strategy<Value = String> {
    any::<bool>()
        .prop_flat_map(|noisy| {
            (
                keys(TOP_KEYS, 0.3, noisy),
                prop::collection::vec(table(noisy), 0..4),
                prop::collection::vec((any::<u8>(), any::<usize>()), 1..3),
                prop::bool::weighted(0.33),
            )
        })
        .prop_map(|(top, tables, muts, do_mutate)| {
            let mut lines = top;
            for t in tables {
                lines.push(String::new());
                lines.extend(t);
            }
            let text = lines.join("\n") + "\n";
            if do_mutate {
                mutate(&text, &muts)
            } else {
                text
            }
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_load_or_name_a_line(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.toml");
        std::fs::write(&path, &bytes).unwrap();
        let r = suite::load(&path);
        // Non-UTF-8 input is reported on the line of its first bad byte.
        let text = String::from_utf8_lossy(&bytes);
        check(&text, &r)?;
    }

    #[test]
    fn arbitrary_text_parses_or_names_a_line(text in "(?s).{0,400}") {
        check(&text, &suite::parse(&text, Path::new("fuzz.toml")))?;
    }

    #[test]
    fn near_valid_suites_parse_or_name_a_line(text in near_valid_suite()) {
        check(&text, &suite::parse(&text, Path::new("near.toml")))?;
    }

    #[test]
    fn unit_values_parse_or_say_what_is_accepted(
        s in prop_oneof!["(?s).{0,24}", "-?[0-9_.]{0,8} ?[a-zA-Zµ%]{0,4}"],
    ) {
        use workload::param::{Unit, parse};
        for unit in [Unit::Size, Unit::Duration, Unit::Count, Unit::Bool, Unit::Choice(&["pipe"])] {
            if let Err(e) = parse(unit, &s) {
                prop_assert!(e.contains(&format!("\"{s}\"")) && e.contains("is not"), "{e}");
            }
        }
    }

    #[test]
    fn sizes_round_trip_through_their_text(b in any::<u64>()) {
        use workload::param::{format_size, parse_size};
        prop_assert_eq!(parse_size(&format_size(b)), Some(b));
    }
}

/// The generator is not vacuous: with the fixed seed, a good share of the near-valid suites
/// get past TOML and serde into the value checks, and some load.
#[test]
fn near_valid_generator_reaches_every_stage() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(Config {
        rng_seed: RngSeed::Fixed(7),
        ..Config::default()
    });
    let (mut ok, mut toml_err, mut value_err) = (0, 0, 0);
    let strategy = near_valid_suite();
    for _ in 0..400 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        match suite::parse(&text, Path::new("near.toml")) {
            Ok(_) => ok += 1,
            Err(e)
                if e.message.contains("unknown field")
                    || e.message.contains("invalid type")
                    || e.message.contains("missing field")
                    || e.message.contains("expected") =>
            {
                toml_err += 1
            }
            Err(_) => value_err += 1,
        }
    }
    eprintln!(
        "400 near-valid suites: {ok} loaded, {toml_err} refused by TOML/serde, {value_err} by the value checks"
    );
    assert!(ok >= 4, "only {ok} of 400 suites loaded");
    assert!(
        value_err >= 40,
        "only {value_err} of 400 reached the value checks"
    );
    assert!(
        toml_err >= 10,
        "only {toml_err} of 400 were refused by the TOML parser"
    );
}
