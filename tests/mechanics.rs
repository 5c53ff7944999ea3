//! OS mechanics through `concbench run`: every mechanic runs and reports, the race loses
//! updates and every lock or atomic loses none, and nothing outlives the run. Also: user code
//! as a workload runs under every model. Behaviour and invariants, not speed.

mod common;

use common::*;
use concbench::report::result::Status;

#[test]
fn every_mechanic_runs_and_reports() {
    become_subreaper();
    let (dir, path) = suite(
        r#"
warmup = "0ms"
duration = "40ms"
repeats = 1
[[mechanic]]
mechanic = "pingpong"
params = { transport = ["pipe", "eventfd", "futex", "yield"], unit = ["thread", "process"], placement = "same-core" }
[[mechanic]]
mechanic = "spawn"
params = { what = ["fork", "fork-exec", "thread", "pthread", "loop-task"] }
[[mechanic]]
mechanic = "ipc"
params = { channel = ["pipe", "socketpair", "shm-ring", "crossbeam", "mpsc"], mode = ["round-trip", "bandwidth"], size = "1KiB", placement = "unpinned" }
[[mechanic]]
mechanic = "counter"
params = { sync = ["none", "std-mutex", "parking-lot", "atomic", "sharded"], unit = "thread" }
[[mechanic]]
mechanic = "counter"
params = { sync = ["none", "atomic", "sharded"], unit = "process" }
[[mechanic]]
mechanic = "cow"
params = { heap = "4MiB", write_pct = [0, 100] }
"#,
    );
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(r.mechanics.len(), 8 + 5 + 10 + 5 + 3 + 2);
    for m in &r.mechanics {
        assert_eq!(m.status, Status::Ok, "{}: {:?}", m.id, m.error);
        assert!(
            m.samples[0].iters > 0 && m.ns_per_iter.median > 0.0,
            "{}",
            m.id
        );
        assert!(!m.iteration.is_empty(), "{}", m.id);
    }
    let get = |id: &str| {
        r.mechanics
            .iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("{id}"))
    };
    // Blocking ping-pong on one core must switch at least once per round trip.
    for t in ["pipe", "eventfd", "futex"] {
        for u in ["thread", "process"] {
            let m = get(&format!(
                "pingpong/placement=same-core,transport={t},unit={u}"
            ));
            assert!(
                m.switches_per_iter.median >= 1.0,
                "{}: {}",
                m.id,
                m.switches_per_iter.median
            );
        }
    }
    // Copy-on-write: writing every page costs page faults that writing none does not.
    let faults = |pct: u32| {
        get(&format!("cow/heap=4MiB,write_pct={pct},writer=child")).extra["minor_faults_per_iter"]
            .median
    };
    assert!(
        faults(100) > faults(0) + 500.0,
        "{} vs {}",
        faults(100),
        faults(0)
    );
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
    // mechanics.csv has a header and one row per mechanic.
    let csv = std::fs::read_to_string(dir.path().join("out/mechanics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + r.mechanics.len());
}

#[test]
fn unsynchronised_counter_loses_updates_and_locks_lose_none() {
    if concbench::sys::allowed_cpus().len() < 2 {
        panic!("this test needs 2 cores to race; the machine allows fewer");
    }
    // Every lock and atomic must lose exactly nothing, in every window.
    let (dir, path) = suite(
        r#"
warmup = "0ms"
duration = "200ms"
repeats = 1
[[mechanic]]
mechanic = "counter"
params = { sync = ["std-mutex", "parking-lot", "atomic", "sharded"], unit = "thread" }
[[mechanic]]
mechanic = "counter"
params = { sync = ["atomic", "sharded"], unit = "process" }
"#,
    );
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for m in &r.mechanics {
        assert_eq!(
            m.extra["lost_updates"].median, 0.0,
            "{}: a synchronised counter lost updates",
            m.id
        );
    }
    // The race loses updates whenever the two workers overlap. On a loaded machine a window
    // can pass with one worker descheduled the whole time, so give it a few windows.
    for unit in ["thread", "process"] {
        let (dir, path) = suite(&format!(
            "warmup = \"0ms\"\nduration = \"300ms\"\nrepeats = 1\n[[mechanic]]\nmechanic = \"counter\"\nparams = {{ sync = \"none\", unit = \"{unit}\" }}\n"
        ));
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (o, r) = run_suite(dir.path(), &path, &[]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let lost = r.mechanics[0].extra["lost_updates"].median;
            seen.push(lost);
            if lost > 0.0 {
                break;
            }
        }
        assert!(
            seen.iter().any(|&l| l > 0.0),
            "unsynchronised {unit} counter lost no update in {} windows",
            seen.len()
        );
    }
}

#[test]
fn user_code_runs_under_every_model() {
    become_subreaper();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c2 = calls.clone();
    let mut s = concbench::custom::suite("my_op", move |x: u64| {
        c2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        x.rotate_left(7)
    });
    s.warmup = std::time::Duration::from_millis(10);
    s.duration = std::time::Duration::from_millis(50);
    s.repeats = 1;
    let dir = tempfile::tempdir().unwrap();
    let opts = concbench::runner::RunOptions {
        out_dir: dir.path().into(),
        progress: false,
        skip_idle_wait: true,
        self_exe: None,
    };
    let r = concbench::runner::run_suite(&s, &opts).unwrap();
    let models: std::collections::HashSet<&str> =
        r.cells.iter().map(|c| c.model.as_str()).collect();
    assert_eq!(models.len(), concbench::model::REGISTRY.len());
    for c in &r.cells {
        assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
        assert!(c.samples[0].ops > 0, "{}", c.id);
        assert!(c.id.starts_with("my_op/-/"), "{}", c.id);
    }
    // The closure ran in forked cell hosts, not here: this process's counter never moved.
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(
        leftover_children(std::time::Duration::from_secs(2)),
        Vec::<i32>::new()
    );
}
