//! Bad input, end to end through the real binary: every malformed suite of
//! `tests/bad_suites/` and a set of bad flags give exit 2 and one message naming the file,
//! line and key, with no panic, nothing on stdout and no output directory; every shipped
//! suite still loads.
//!
//! Each corpus file starts with `# expect: line N; FRAGMENT; FRAGMENT…`: the error must
//! point at `FILE:N:` and contain every fragment.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs concbench with `args` in `cwd` (a temp dir, so a stray default `results/` shows).
fn run_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_concbench"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("concbench runs")
}

/// The line and fragments a corpus file expects, from its first line.
fn expectation(path: &Path) -> (usize, Vec<String>) {
    let bytes = std::fs::read(path).unwrap();
    let first = String::from_utf8_lossy(bytes.split(|b| *b == b'\n').next().unwrap()).to_string();
    let rest = first.strip_prefix("# expect: line ").unwrap_or_else(|| {
        panic!(
            "{}: first line must be `# expect: line N; …`",
            path.display()
        )
    });
    let mut parts = rest.split("; ");
    let line = parts.next().unwrap().trim().parse().unwrap();
    (line, parts.map(str::to_string).collect())
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(manifest().join("tests/bad_suites"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// What every rejected input must satisfy; returns the problems found.
fn check_rejected(what: &str, o: &Output, cwd: &Path, out: &Path, one_line: bool) -> Vec<String> {
    let err = String::from_utf8_lossy(&o.stderr);
    let mut bad = Vec::new();
    if o.status.code() != Some(2) {
        bad.push(format!("{what}: exit {:?}, want 2", o.status.code()));
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        bad.push(format!("{what}: panicked: {err}"));
    }
    if !o.stdout.is_empty() {
        bad.push(format!(
            "{what}: stdout not empty: {}",
            String::from_utf8_lossy(&o.stdout)
        ));
    }
    if err.trim().is_empty() {
        bad.push(format!("{what}: no message"));
    }
    if one_line && err.trim().lines().count() != 1 {
        bad.push(format!("{what}: want one message line, got: {err}"));
    }
    if out.exists() || cwd.join("results").exists() {
        bad.push(format!("{what}: an output directory was created"));
    }
    bad
}

#[test]
fn every_malformed_suite_exits_2_naming_file_line_and_key() {
    let files = corpus();
    assert!(
        files.len() >= 30,
        "the corpus has only {} files",
        files.len()
    );
    let mut problems = Vec::new();
    for f in &files {
        let cwd = tempfile::tempdir().unwrap();
        let out = cwd.path().join("out");
        let o = run_in(
            cwd.path(),
            &[
                "run",
                f.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--quiet",
            ],
        );
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        problems.extend(check_rejected(&name, &o, cwd.path(), &out, true));
        let err = String::from_utf8_lossy(&o.stderr);
        let (line, fragments) = expectation(f);
        let at = format!("{}:{line}:", f.display());
        if !err.contains(&at) {
            problems.push(format!("{name}: want `{at}` in: {err}"));
        }
        for frag in fragments {
            if !err.contains(&frag) {
                problems.push(format!("{name}: want `{frag}` in: {err}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_corpus_file_is_rejected_by_the_library_with_its_line() {
    for f in corpus() {
        let (line, _) = expectation(&f);
        let e = concbench::suite::load(&f).expect_err(&f.display().to_string());
        assert_eq!(e.line, line, "{e}");
        assert!(!e.key.is_empty() && !e.message.is_empty(), "{e}");
    }
}

#[test]
fn every_shipped_suite_loads() {
    let mut n = 0;
    for e in std::fs::read_dir(manifest().join("workloads")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            let s = concbench::suite::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !s.cells.is_empty() || !s.mechanics.is_empty() || !s.servers.is_empty(),
                "{}: empty",
                p.display()
            );
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} suites in workloads/");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let quick = manifest().join("workloads/quick.toml");
    let quick = quick.to_str().unwrap();
    let a_file = tempfile::NamedTempFile::new().unwrap();
    let a_file = a_file.path().to_str().unwrap().to_string();
    let under_file = format!("{a_file}/sub");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", quick, "--duration", "0s"], "--duration"),
        (vec!["run", quick, "--duration", "2h"], "--duration"),
        (
            vec!["run", quick, "--duration", "5 parsecs"],
            "not a duration",
        ),
        (vec!["run", quick, "--warmup", "10"], "not a duration"),
        (vec!["run", quick, "--repeats", "0"], "--repeats"),
        (vec!["run", quick, "--repeats=-1"], "--repeats"),
        (
            vec!["run", quick, "--model", "fibers"],
            "unknown model `fibers`",
        ),
        (
            vec!["run", quick, "--model", "thread"],
            "did you mean `threads`?",
        ),
        (
            vec!["run", quick, "--workload", "spinn"],
            "did you mean `spin`?",
        ),
        (vec!["run", quick, "--out", &a_file], "is a file"),
        (
            vec!["run", quick, "--out", &under_file],
            "cannot be created",
        ),
        (vec!["run", "no/such/suite.toml"], "cannot read the suite"),
        (
            vec!["serve", "--arch", "evnt-loop"],
            "did you mean `event-loop`?",
        ),
        (
            vec!["serve", "--arch", "prefork", "--workers", "0"],
            "--workers 0",
        ),
        (
            vec!["serve", "--arch", "prefork", "--workers", "5000"],
            "--workers 5000",
        ),
        (
            vec!["serve", "--arch", "loop-helpers", "--helpers", "0"],
            "--helpers 0",
        ),
        (
            vec![
                "serve",
                "--arch",
                "event-loop",
                "--handler",
                "spin:op_time=10",
            ],
            "needs a unit",
        ),
        (
            vec!["serve", "--arch", "event-loop", "--addr", "localhost"],
            "--addr",
        ),
    ];
    let load = |extra: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec![
            "load",
            "--target",
            "127.0.0.1:9",
            "--connections",
            "4",
            "--duration",
            "1s",
        ];
        v.extend_from_slice(extra);
        v
    };
    let load_cases: Vec<(Vec<&str>, &str)> = vec![
        (load(&["--connections", "0"]), "--connections"),
        (load(&["--connections", "1000000"]), "--connections"),
        (load(&["--threads", "8"]), "--threads 8"),
        (load(&["--threads", "0"]), "--threads 0"),
        (load(&["--rate", "0"]), "--rate"),
        (load(&["--rate=-5"]), "--rate"),
        (load(&["--rate", "NaN"]), "--rate"),
        (load(&["--rate", "inf"]), "--rate"),
        (load(&["--duration", "0s"]), "--duration"),
        (load(&["--duration", "100000h"]), "--duration"),
        (load(&["--timeout", "0s"]), "--timeout"),
        (load(&["--path", "no-slash"]), "--path"),
        (load(&["--target", "nonsense"]), "--target"),
    ];
    let mut problems = Vec::new();
    for (args, want) in cases.into_iter().chain(load_cases) {
        let cwd = tempfile::tempdir().unwrap();
        let out = cwd.path().join("out");
        let o = run_in(cwd.path(), &args);
        let what = args.join(" ");
        // clap's own errors (types, ranges) add a usage line: one message, several lines.
        problems.extend(check_rejected(&what, &o, cwd.path(), &out, false));
        let err = String::from_utf8_lossy(&o.stderr);
        if !err.contains(want) {
            problems.push(format!("{what}: want `{want}` in: {err}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
