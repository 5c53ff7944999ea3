//! CLI behaviour: bad input gives one clear message (file, line, key) and exit 2 with no
//! output written; `list` and `sys` describe what there is; results read back identically.

mod common;

use common::*;

#[test]
fn bad_suite_names_file_line_and_key_and_exits_2() {
    let (dir, path) = suite(
        "name = \"x\"\n[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\nworkers = 0\n",
    );
    let out = dir.path().join("out");
    let o = run(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("suite.toml:5:") && err.contains("matrix[0].workers"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "nothing may be written for bad input");
}

#[test]
fn unknown_model_filter_and_bad_flags_exit_2() {
    let o = run(&["run", "workloads/ci.toml", "--model", "fibers"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("known models are"));
    let o = run(&["run", "workloads/ci.toml", "--duration", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a duration"));
    let o = run(&["run", "no/such/suite.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the suite"));
}

#[test]
fn list_shows_every_workload_model_and_shipped_suite() {
    let o = run(&["list"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    for d in concbench::workload::REGISTRY {
        assert!(s.contains(d.id), "{} missing", d.id);
    }
    for m in concbench::model::REGISTRY {
        assert!(s.contains(m.id), "{} missing", m.id);
    }
    for d in concbench::mechanic::REGISTRY {
        assert!(s.contains(d.id), "{} missing", d.id);
    }
    for f in [
        "quick.toml",
        "ci.toml",
        "cpu.toml",
        "io.toml",
        "os.toml",
        "bench.toml",
        "faults.toml",
    ] {
        assert!(s.contains(f), "{f} missing");
    }
    assert!(
        !s.contains("invalid:"),
        "a shipped suite does not parse:\n{s}"
    );
}

#[test]
fn sys_describes_the_machine() {
    let o = run(&["sys"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("kernel") && s.contains("rustc"), "{s}");
}

#[test]
fn results_schema_round_trips() {
    let (dir, path) = suite(
        "warmup = \"10ms\"\nduration = \"50ms\"\nrepeats = 1\n[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"2us\" }\nmodels = [\"threads\"]\n",
    );
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(dir.path().join("out/results.json")).unwrap();
    let again = serde_json::to_string_pretty(&r).unwrap() + "\n";
    assert_eq!(
        text, again,
        "results.json must survive a read/write round trip unchanged"
    );
    assert_eq!(r.schema_version, concbench::report::result::SCHEMA_VERSION);
}

#[test]
fn filters_select_cells() {
    let (dir, _) = suite("");
    let out = dir.path().join("out");
    let o = run(&[
        "run",
        "workloads/ci.toml",
        "--out",
        out.to_str().unwrap(),
        "--model",
        "threads",
        "--workload",
        "spin",
        "--duration",
        "30ms",
        "--warmup",
        "5ms",
        "--repeats",
        "1",
        "--no-idle-wait",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = concbench::report::json::read(&out.join("results.json")).unwrap();
    assert!(!r.cells.is_empty());
    assert!(
        r.cells
            .iter()
            .all(|c| c.model == "threads" && c.workload == "spin")
    );
}
