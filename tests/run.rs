//! End-to-end tests of `concbench run`: every model × workload runs and is measured, workers
//! are what the model says (own pids or one shared), sit on their assigned cores, and no
//! process outlives the run. Behaviour and invariants only, never speed.

mod common;

use common::*;
use concbench::model::UnitKind;
use concbench::report::result::Status;

const ALL_MODELS: &str =
    r#"["event-loop", "threads", "processes", "thread-loops", "process-loops"]"#;

#[test]
fn every_model_runs_spin_and_sleep_with_counts_latency_and_placement() {
    become_subreaper();
    let (dir, path) = suite(&format!(
        r#"
name = "t"
warmup = "20ms"
duration = "150ms"
repeats = 2
noise_reruns = 0
[[matrix]]
workload = "spin"
params = {{ op_time = "5us" }}
models = {ALL_MODELS}
workers = [1, 2]
tasks = 2
[[matrix]]
workload = "sleep"
params = {{ delay = "1ms" }}
models = {ALL_MODELS}
workers = [2]
tasks = 8
"#
    ));
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(r.complete && !r.interrupted);
    // 5 models × (w1, w2) minus event-loop's w2 = 9, plus 5 sleep cells.
    assert_eq!(r.cells.len(), 14);
    let harness_pids: Vec<i32> = r
        .cells
        .iter()
        .flat_map(|c| c.placement.iter().map(|p| p.pid))
        .collect();
    for c in &r.cells {
        assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
        assert_eq!(c.repeats_done, 2, "{}", c.id);
        assert!(
            c.samples.iter().all(|s| s.ops > 0),
            "{}: a window counted no ops",
            c.id
        );
        assert!(c.latency_ns.count > 0 && c.latency_ns.p50 > 0, "{}", c.id);
        assert!(c.latency_ns.p50 <= c.latency_ns.p99 && c.latency_ns.p99 <= c.latency_ns.max);
        assert!(c.cpu_ns_per_op.user + c.cpu_ns_per_op.sys > 0.0, "{}", c.id);
        assert!(
            c.rss_bytes > 0 && c.pss_bytes > 0 && c.pss_bytes <= c.rss_bytes,
            "{}",
            c.id
        );
        assert_eq!(c.placement.len(), c.workers, "{}", c.id);
        // Every worker ran on the core it was assigned, as the kernel reports it.
        for p in &c.placement {
            let core = p.assigned_core.expect("spread pins every worker");
            assert_eq!(p.allowed_cpus, vec![core], "{}: worker {}", c.id, p.worker);
            assert_eq!(p.last_cpu, core as i32, "{}: worker {}", c.id, p.worker);
        }
        let pids: std::collections::HashSet<i32> = c.placement.iter().map(|p| p.pid).collect();
        let tids: std::collections::HashSet<i32> = c.placement.iter().map(|p| p.tid).collect();
        assert_eq!(
            tids.len(),
            c.workers,
            "{}: every worker has its own thread id",
            c.id
        );
        match c.unit {
            UnitKind::Process => {
                assert_eq!(
                    pids.len(),
                    c.workers,
                    "{}: each process worker has its own pid",
                    c.id
                )
            }
            UnitKind::Thread => assert_eq!(pids.len(), 1, "{}: thread workers share one pid", c.id),
        }
        // Sleep ops block: a voluntary switch per op for blocking workers.
        if c.workload == "sleep" && c.model == "threads" {
            assert!(c.ctx_switches_per_op.voluntary >= 0.5, "{}", c.id);
        }
    }
    assert!(!harness_pids.is_empty());
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
    // The CSV has a header and one row per cell.
    let csv = std::fs::read_to_string(dir.path().join("out/results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + r.cells.len());
    // The summary table names every cell.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("spin") && stdout.contains("process-loops"),
        "{stdout}"
    );
}

#[test]
fn every_workload_runs_under_every_model() {
    become_subreaper();
    let mut text = String::from(
        "name = \"all\"\nwarmup = \"10ms\"\nduration = \"100ms\"\nrepeats = 1\nnoise_reruns = 0\n",
    );
    for d in concbench::workload::REGISTRY {
        // Small sizes so the whole matrix stays light on a 2-core CI machine.
        let params = match d.id {
            "spin" => "{ op_time = \"2us\" }",
            "sleep" => "{ delay = \"1ms\" }",
            "file_read" => "{ file_size = \"1MiB\" }",
            "fsync" => "{ file_size = \"64KiB\" }",
            "downstream" | "request" => "{ delay = \"500us\" }",
            "json" | "hash" => "{ size = \"1KiB\" }",
            "primes" => "{ n = 1000 }",
            "matmul" => "{ n = 16 }",
            _ => "{}",
        };
        text.push_str(&format!(
            "[[matrix]]\nworkload = \"{}\"\nparams = {params}\nmodels = {ALL_MODELS}\nworkers = 2\ntasks = 4\n",
            d.id
        ));
    }
    let (dir, path) = suite(&text);
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        r.cells.len(),
        concbench::workload::REGISTRY.len() * concbench::model::REGISTRY.len()
    );
    for c in &r.cells {
        assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
        assert!(c.samples[0].ops > 0, "{}", c.id);
        assert!(c.latency_ns.count > 0, "{}", c.id);
    }
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn harness_killed_with_sigkill_leaves_no_process() {
    become_subreaper();
    let (dir, path) = suite(
        r#"
warmup = "10ms"
duration = "5s"
repeats = 1
[[matrix]]
workload = "sleep"
params = { delay = "1ms" }
models = ["processes"]
workers = 4
tasks = 4
"#,
    );
    let out = dir.path().join("out");
    let mut child = std::process::Command::new(bin())
        .args([
            "run",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-idle-wait",
            "--quiet",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Wait until the harness has a cell host with workers below it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let descendants = descendants_of(pid);
        if descendants.len() >= 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "workers never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new(),
        "processes of the run outlived the harness"
    );
}

#[test]
fn failing_cell_is_recorded_and_the_run_goes_on_without_leftovers() {
    become_subreaper();
    let (dir, path) = suite(
        r#"
warmup = "10ms"
duration = "50ms"
repeats = 2
[[matrix]]
workload = "file_read"
params = { file_size = "1MiB" }
models = ["threads", "processes"]
workers = 2
"#,
    );
    let out = dir.path().join("out");
    // Scratch files go to TMPDIR: a path that does not exist makes every cell fail in prepare.
    let o = std::process::Command::new(bin())
        .args([
            "run",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--no-idle-wait",
            "--quiet",
        ])
        .env("TMPDIR", dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let r = concbench::report::json::read(&out.join("results.json")).unwrap();
    assert!(r.complete);
    assert_eq!(r.cells.len(), 2);
    for c in &r.cells {
        assert_eq!(c.status, Status::Failed, "{}", c.id);
        let e = c.error.as_deref().unwrap_or_default();
        assert!(
            e.contains("scratch directory") && e.contains("missing"),
            "{e}"
        );
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("scratch directory"),
        "errors are shown: {stdout}"
    );
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}

#[test]
fn open_loop_never_runs_ahead_of_its_schedule_and_counts_from_due_time() {
    let (dir, path) = suite(
        r#"
warmup = "50ms"
duration = "500ms"
repeats = 1
noise_reruns = 0
[[matrix]]
workload = "sleep"
params = { delay = "1ms" }
models = ["event-loop", "threads", "processes"]
workers = [2]
tasks = 4
load = [{ rate = 400 }]
# 2 blocking workers can complete at most ~2,000 ops/s of 1 ms waits: at 4,000/s they fall
# behind, and latency counted from the due time must show it.
[[matrix]]
workload = "sleep"
params = { delay = "1ms" }
models = ["threads"]
workers = [2]
tasks = 4
load = [{ rate = 4000 }]
"#,
    );
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for c in &r.cells {
        let s = &c.samples[0];
        let window = s.window_ns as f64 / 1e9;
        let rate = match c.load {
            concbench::model::Load::Open { rate } => rate,
            _ => unreachable!(),
        };
        let scheduled = rate * window;
        // Hard invariant: never more ops than were due (plus one in flight per task).
        assert!(
            (s.ops as f64) <= scheduled + c.tasks as f64 + 1.0,
            "{}: {} ops > {scheduled} scheduled",
            c.id,
            s.ops
        );
        if rate == 400.0 {
            // Well under capacity: the schedule is kept (generous bound for a loaded machine).
            assert!(
                s.ops as f64 >= 0.5 * scheduled,
                "{}: {} of {scheduled}",
                c.id,
                s.ops
            );
        } else {
            // Over capacity: ops queue, and latency from the due time grows far past the
            // 1 ms service time (coordinated omission would hide this).
            assert!(
                c.latency_ns.p99 > 20_000_000,
                "{}: p99 {} ns",
                c.id,
                c.latency_ns.p99
            );
        }
    }
}
