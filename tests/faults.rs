//! Fault injection end to end, through the real binary: worker 0 really panics, aborts,
//! segfaults, SIGKILLs itself or hangs at its K-th op of the window. A worker process is
//! replaced and the run completes; a fatal fault under threads takes the cell host down, which
//! is recorded as `process-lost` while the harness and the next cell go on. Invariants only
//! (counts, effects, exit signals, reaped processes), never speed.

mod common;

use common::{become_subreaper, leftover_children, run_suite, suite};
use concbench::report::result::{CellResult, FaultOutcome, Results, Status};

/// A 20 µs spin; K = 2000 puts the fault a few tens of ms into a 1.5 s window even on a busy
/// machine, leaving the rest of the window for the replacement.
fn faults_suite(matrix: &str) -> String {
    format!(
        "name = \"f\"\nwarmup = \"50ms\"\nduration = \"1500ms\"\nrepeats = 1\nnoise_reruns = 0\n{matrix}"
    )
}

fn cell<'a>(r: &'a Results, model: &str, fault: &str) -> &'a CellResult {
    r.cells
        .iter()
        .find(|c| c.model == model && c.params.get("fault").map(String::as_str) == Some(fault))
        .unwrap_or_else(|| panic!("no {model} cell with fault {fault}"))
}

fn outcome(c: &CellResult) -> &FaultOutcome {
    assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
    let f = c
        .fault
        .as_ref()
        .unwrap_or_else(|| panic!("{}: no fault outcome", c.id));
    assert!(f.fired, "{}: the fault never fired: {f:?}", c.id);
    assert_eq!(
        c.samples[0].fault.as_ref(),
        Some(f),
        "{}: the sample has it too",
        c.id
    );
    f
}

fn no_core_file() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        !root.join("core").exists(),
        "an injected crash left a core dump"
    );
}

#[test]
fn a_killed_worker_process_is_replaced_and_the_run_completes() {
    become_subreaper();
    let (dir, path) = suite(&faults_suite(
        "[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"20us\", fault = [\"kill9@2000\", \"segv@2000\"] }\nmodels = [\"processes\", \"process-loops\"]\nworkers = 2\ntasks = 4\n",
    ));
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(r.complete);
    for model in ["processes", "process-loops"] {
        for (fault, signal) in [("kill9@2000", "SIGKILL"), ("segv@2000", "SIGSEGV")] {
            let c = cell(&r, model, fault);
            assert!(
                c.id.contains(&format!("fault={fault}")),
                "the id carries it: {}",
                c.id
            );
            let f = outcome(c);
            assert_eq!(f.effect, "worker-replaced", "{}: {f:?}", c.id);
            assert!(!f.process_lost && f.run_continued, "{}: {f:?}", c.id);
            assert!(
                f.exit.as_deref().is_some_and(|e| e.contains(signal)),
                "{}: {f:?}",
                c.id
            );
            // Two tasks per worker: both had an op in flight; plus the downtime's shortfall.
            assert_eq!(f.ops_in_flight_lost, 2, "{}", c.id);
            assert!(f.ops_lost >= 2.0, "{}: {f:?}", c.id);
            // Reaped, then forked, then the replacement's first op: in that order, all > 0.
            let (reap, fork, first) = (
                f.reaped_after_ns.unwrap(),
                f.forked_after_ns.unwrap(),
                f.respawn_ns.unwrap(),
            );
            assert!(0 < reap && reap <= fork && fork <= first, "{}: {f:?}", c.id);
            assert_eq!(f.downtime_ns, first, "{}", c.id);
            assert!(f.replacement_ops > 0, "{}: {f:?}", c.id);
            assert_eq!(f.others_kept_running, Some(true), "{}: {f:?}", c.id);
            assert!(f.workers.iter().all(|w| w.ops_per_sec_before > 0.0));
            // The replacement reported as worker 0, from a new process.
            let w0 = c.placement.iter().find(|p| p.worker == 0).unwrap();
            assert_eq!(Some(w0.pid), f.replacement_pid, "{}", c.id);
            // The window's count includes the replacement's ops.
            assert!(c.samples[0].ops >= f.ops_before + f.replacement_ops);
        }
    }
    no_core_file();
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn a_fatal_fault_under_threads_loses_the_process_but_not_the_harness() {
    become_subreaper();
    let (dir, path) = suite(&faults_suite(
        "[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"20us\", fault = [\"abort@2000\", \"segv@2000\", \"kill9@2000\"] }\nmodels = [\"threads\", \"thread-loops\", \"event-loop\"]\nworkers = 2\ntasks = 4\n\n[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"20us\" }\nmodels = [\"threads\"]\nworkers = 2\n",
    ));
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(r.complete);
    for model in ["threads", "thread-loops", "event-loop"] {
        for (fault, signal) in [
            ("abort@2000", "SIGABRT"),
            ("segv@2000", "SIGSEGV"),
            ("kill9@2000", "SIGKILL"),
        ] {
            let c = cell(&r, model, fault);
            let f = outcome(c);
            assert_eq!(f.effect, "process-lost", "{}: {f:?}", c.id);
            assert!(f.process_lost && !f.run_continued, "{}: {f:?}", c.id);
            assert!(
                f.exit.as_deref().is_some_and(|e| e.contains(signal)),
                "{}: {f:?}",
                c.id
            );
            // Every task of every worker had an op in flight; the ops before still count.
            assert_eq!(f.ops_in_flight_lost, 4, "{}", c.id);
            assert!(f.ops_before > 0 && f.ops_after == 0, "{}: {f:?}", c.id);
            assert_eq!(c.samples[0].ops, f.ops_before, "{}", c.id);
            assert!(f.ops_lost > f.ops_in_flight_lost as f64, "{}: {f:?}", c.id);
            assert!(f.respawn_ns.is_none() && f.replacement_pid.is_none());
            assert!(
                c.warnings.iter().any(|w| w.contains("process lost")),
                "{}",
                c.id
            );
        }
    }
    // The cell after the crashes ran normally.
    let next = r.cells.last().unwrap();
    assert!(next.fault.is_none() && !next.params.contains_key("fault"));
    assert_eq!((next.status, next.repeats_done), (Status::Ok, 1));
    assert!(next.samples[0].ops > 0);
    no_core_file();
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn a_panic_loses_a_thread_or_a_loop_but_the_process_lives() {
    become_subreaper();
    let (dir, path) = suite(&faults_suite(
        "[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"20us\", fault = \"panic@2000\" }\nmodels = [\"threads\", \"thread-loops\", \"event-loop\", \"processes\"]\nworkers = 2\ntasks = 4\n",
    ));
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for model in ["threads", "thread-loops"] {
        let c = cell(&r, model, "panic@2000");
        let f = outcome(c);
        assert_eq!(f.effect, "worker-lost", "{}: {f:?}", c.id);
        assert!(!f.process_lost && f.run_continued, "{}: {f:?}", c.id);
        assert!(
            f.exit.as_deref().is_some_and(|e| e.contains("panicked")),
            "{f:?}"
        );
        assert_eq!(f.others_kept_running, Some(true), "{}: {f:?}", c.id);
        // Nobody replaces a thread: worker 0 counts nothing after the fault.
        assert!(!f.workers[0].kept_running && f.respawn_ns.is_none());
        assert_eq!(f.ops_in_flight_lost, 2, "{}", c.id);
        // Latency and CPU are still measured: the process lived.
        assert!(c.latency_ns.count > 0, "{}", c.id);
    }
    // The single loop took all four of its tasks with it.
    let c = cell(&r, "event-loop", "panic@2000");
    let f = outcome(c);
    assert_eq!(f.effect, "worker-lost");
    assert!(!f.run_continued && f.others_kept_running.is_none(), "{f:?}");
    assert_eq!(f.ops_in_flight_lost, 4);
    // A panicking worker process exits (code 101) and is replaced.
    let c = cell(&r, "processes", "panic@2000");
    let f = outcome(c);
    assert_eq!(f.effect, "worker-replaced", "{f:?}");
    assert!(f.exit.as_deref() == Some("exit 101"), "{f:?}");
    assert!(f.respawn_ns.is_some_and(|n| n > 0) && f.replacement_ops > 0);
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn a_hung_worker_process_is_killed_after_the_window_and_the_run_completes() {
    become_subreaper();
    let (dir, path) = suite(&faults_suite(
        "[[matrix]]\nworkload = \"spin\"\nparams = { op_time = \"20us\", fault = \"hang@2000\" }\nmodels = [\"processes\"]\nworkers = 2\n",
    ));
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let c = cell(&r, "processes", "hang@2000");
    let f = outcome(c);
    assert_eq!(f.effect, "worker-hung", "{f:?}");
    assert!(
        f.exit.as_deref().is_some_and(|e| e.contains("was killed")),
        "{f:?}"
    );
    assert!(
        !f.workers[0].kept_running && f.workers[1].kept_running,
        "{f:?}"
    );
    assert_eq!(f.ops_in_flight_lost, 1);
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn a_bad_fault_is_rejected_with_its_line() {
    let (dir, path) = suite(
        "[[matrix]]\nworkload = \"spin\"\nparams = { fault = \"explode@5\" }\nmodels = [\"threads\"]\n",
    );
    let o = common::run(&[
        "run",
        path.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(":3:") && err.contains("fault") && err.contains("kill9"),
        "{err}"
    );
    assert!(!dir.path().join("out/results.json").exists());
}
