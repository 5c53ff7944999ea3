//! SIGINT, SIGTERM and SIGKILL to `concbench run`, `serve` and `load` mid-run: within 2 s no
//! process of the run is left (this test is the subreaper of everything below it, so an
//! orphan would become its child and be seen), the exit code is 130 / 143 (or death by
//! SIGKILL), and `run`'s results.json parses and still holds every cell that had finished
//! (marked `interrupted` after SIGINT/SIGTERM). Also the watchdog: a hung cell is killed,
//! recorded as timed out, leaves no process, and the next cell runs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::*;
use concbench::report::json;
use concbench::report::result::{Results, Status};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Everything of a run must be gone this long after the signal.
const GONE_WITHIN: Duration = Duration::from_secs(2);

/// Eight cells of 300 ms (processes with 2–3 workers, threads, and downstream, whose host
/// forks a downstream server): a run of several seconds with grandchildren to orphan.
const SUITE: &str = r#"
name = "sig"
warmup = "20ms"
duration = "300ms"
repeats = 1
noise_reruns = 0
[[matrix]]
workload = "spin"
params = { op_time = "5us" }
models = ["processes", "threads"]
workers = [2, 3]
tasks = 3
[[matrix]]
workload = "downstream"
params = { delay = "100us" }
models = ["processes", "process-loops"]
workers = [2]
tasks = 4
[[matrix]]
workload = "sleep"
params = { delay = "1ms" }
models = ["processes", "threads"]
workers = [2]
tasks = 2
"#;

/// Sends `sig` to `child` (to its whole process group when `group`, as a terminal's Ctrl-C
/// does: then every process of the run gets it), then waits (bounded) for it to exit and for
/// every process below it to be gone; returns its exit status and how long that took.
fn signal_and_wait_gone(child: &mut Child, sig: Signal) -> (ExitStatus, Duration) {
    signal_and_wait_gone_as(child, sig, false)
}

fn signal_and_wait_gone_as(child: &mut Child, sig: Signal, group: bool) -> (ExitStatus, Duration) {
    let pid = child.id() as i32;
    kill(Pid::from_raw(if group { -pid } else { pid }), sig).unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < GONE_WITHIN,
            "concbench (pid {pid}) still runs {GONE_WITHIN:?} after {sig}"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let left = leftover_children(GONE_WITHIN.saturating_sub(t0.elapsed()));
    let took = t0.elapsed();
    assert!(
        left.is_empty(),
        "processes of the run left {took:?} after {sig}: {left:?}"
    );
    assert!(took <= GONE_WITHIN, "took {took:?} to end after {sig}");
    eprintln!("{sig}: concbench and all its processes gone after {took:?}");
    (status, took)
}

fn finished(r: &Results) -> Vec<serde_json::Value> {
    r.cells
        .iter()
        .filter(|c| c.status == Status::Ok)
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

/// Starts `concbench run` on [`SUITE`] in a process group of its own, waits until
/// results.json holds at least one finished cell, signals it (or its whole group), and checks
/// what is left.
fn interrupt_run(sig: Signal, group: bool) {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    become_subreaper();
    let (dir, path) = suite(SUITE);
    let out = dir.path().join("out");
    let mut child = Command::new(bin())
        .args(["run", path.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--no-idle-wait", "--quiet"])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let results = out.join("results.json");
    let deadline = Instant::now() + Duration::from_secs(120);
    let before = loop {
        if let Ok(r) = json::read(&results)
            && !finished(&r).is_empty()
        {
            break r;
        }
        assert!(Instant::now() < deadline, "no cell finished in 120 s");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(5));
    };
    // Mid-run: the cell host (and its workers) of the next window are running.
    let deadline = Instant::now() + Duration::from_secs(30);
    while descendants_of(child.id() as i32).is_empty() {
        assert!(Instant::now() < deadline, "no cell host appeared");
        std::thread::sleep(Duration::from_millis(1));
    }
    let (status, _) = signal_and_wait_gone_as(&mut child, sig, group);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let after = json::read(&results).unwrap_or_else(|e| panic!("results.json after {sig}: {e:#}"));
    let (was, now) = (finished(&before), finished(&after));
    assert!(
        now.len() >= was.len(),
        "finished cells lost: {was:?} → {now:?}"
    );
    for cell in &was {
        assert!(
            now.contains(cell),
            "a finished cell changed or vanished: {cell}"
        );
    }
    assert!(
        !after.complete,
        "the run was cut short, yet marked complete"
    );
    assert!(
        after.cells.iter().any(|c| c.status == Status::Pending),
        "every cell finished before the signal: the test did not interrupt anything"
    );
    for c in after.cells.iter().filter(|c| c.status == Status::Ok) {
        assert_eq!(c.repeats_done, 1, "{}", c.id);
        assert!(c.samples[0].ops > 0, "{}", c.id);
    }
    // No cell was turned into a failure by the signal.
    assert!(
        after
            .cells
            .iter()
            .all(|c| matches!(c.status, Status::Ok | Status::Pending)),
        "{:?}",
        after
            .cells
            .iter()
            .map(|c| (&c.id, c.status, &c.error))
            .collect::<Vec<_>>()
    );
    if sig == Signal::SIGKILL {
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        assert!(!after.interrupted);
    } else {
        assert_eq!(status.code(), Some(128 + sig as i32), "stderr: {stderr}");
        assert!(after.interrupted, "results.json is not marked interrupted");
        assert!(stderr.contains(sig.as_str()), "stderr: {stderr}");
        // Nothing else was said: no worker or host reported dying of the signal.
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 3, "stderr: {stderr}");
    }
    // No temp file of an atomic write was left behind.
    let stray: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".concbench-"))
        .map(|e| e.file_name())
        .collect();
    assert!(stray.is_empty() || sig == Signal::SIGKILL, "{stray:?}");
}

#[test]
fn sigint_mid_run_saves_finished_cells_and_leaves_no_process() {
    interrupt_run(Signal::SIGINT, false);
}

#[test]
fn ctrl_c_to_the_whole_process_group_is_handled_by_the_harness_alone() {
    interrupt_run(Signal::SIGINT, true);
}

#[test]
fn sigterm_mid_run_saves_finished_cells_and_leaves_no_process() {
    interrupt_run(Signal::SIGTERM, false);
}

#[test]
fn sigkill_mid_run_leaves_no_orphan_and_a_parsable_results_file() {
    interrupt_run(Signal::SIGKILL, false);
}

/// Starts `concbench serve`, returns the child and its address.
fn serve(arch: &str, workers: &str) -> (Child, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin());
    cmd.args(["serve", "--arch", arch, "--workers", workers])
        .process_group(0)
        .stderr(Stdio::piped());
    spawn_serve(cmd, arch)
}

/// A connection that has had one answer and stays open.
fn open_connection(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    s
}

fn wait_descendants(pid: i32, at_least: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = descendants_of(pid);
        if d.len() >= at_least {
            return d;
        }
        assert!(Instant::now() < deadline, "{pid} has only {d:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn stop_server(arch: &str, workers: &str, sig: Signal, at_least: usize, group: bool) {
    use std::os::unix::process::ExitStatusExt;
    become_subreaper();
    let (mut child, addr) = serve(arch, workers);
    let _conn = open_connection(&addr);
    // The server process and its workers (prefork) or the connection's process.
    let below = wait_descendants(child.id() as i32, at_least);
    let (status, _) = signal_and_wait_gone_as(&mut child, sig, group);
    for p in below {
        assert!(
            std::fs::metadata(format!("/proc/{p}")).is_err(),
            "{arch}: process {p} survived {sig}"
        );
    }
    if sig == Signal::SIGKILL {
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    } else {
        assert_eq!(status.code(), Some(128 + sig as i32), "{arch} after {sig}");
    }
    assert!(
        TcpStream::connect(&addr).is_err(),
        "{arch}: still listening"
    );
    // The workers were killed, not replaced: the master said nothing of them.
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("replacement"), "{arch}: {err}");
}

#[test]
fn serve_prefork_stops_on_sigint_sigterm_and_sigkill() {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        // The server process + 2 workers.
        stop_server("prefork", "2", sig, 3, false);
    }
}

#[test]
fn serve_process_per_conn_with_an_open_connection_stops_on_every_signal() {
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGKILL] {
        // The server process + the open connection's process.
        stop_server("process-per-conn", "1", sig, 2, false);
    }
}

#[test]
fn serve_thread_per_conn_stops_on_sigterm() {
    stop_server("thread-per-conn", "1", Signal::SIGTERM, 1, false);
}

#[test]
fn serve_ctrl_c_to_the_process_group_stops_prefork_cleanly() {
    stop_server("prefork", "2", Signal::SIGINT, 3, true);
}

#[test]
fn load_prints_a_partial_report_marked_interrupted() {
    become_subreaper();
    let (mut server, addr) = serve("event-loop", "1");
    for (sig, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let mut load = Command::new(bin())
            .args(["load", "--target", &addr, "--connections", "4"])
            .args(["--warmup", "100ms", "--duration", "30s", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        assert!(load.try_wait().unwrap().is_none(), "load ended early");
        let (status, _) = signal_and_wait_gone_except(&mut load, sig, &[server.id() as i32]);
        assert_eq!(status.code(), Some(code));
        let mut out = String::new();
        load.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let report: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("load's report after {sig} is not JSON ({e}): {out}"));
        assert_eq!(report["interrupted"], true, "{report}");
        let window = report["window_ns"].as_u64().unwrap();
        assert!(
            window > 0 && window < 30_000_000_000,
            "the window was not cut at the signal: {window} ns"
        );
        assert!(report["completed"].as_u64().unwrap() > 0, "{report}");
    }
    let (status, _) = signal_and_wait_gone(&mut server, Signal::SIGTERM);
    assert_eq!(status.code(), Some(143));
}

/// As [`signal_and_wait_gone`] for a child that runs beside other children of the test
/// (`keep`), which must be left alone.
fn signal_and_wait_gone_except(
    child: &mut Child,
    sig: Signal,
    keep: &[i32],
) -> (ExitStatus, Duration) {
    let pid = child.id() as i32;
    kill(Pid::from_raw(pid), sig).unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(t0.elapsed() < GONE_WITHIN, "load still runs after {sig}");
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut kept = keep.to_vec();
    for &k in keep {
        kept.extend(descendants_of(k));
    }
    let left = children_of_self(&kept);
    assert!(left.is_empty(), "left after {sig}: {left:?}");
    (status, t0.elapsed())
}

/// A suite whose first cell hangs (two worker processes inside one op of 10¹² spin
/// iterations, minutes long: a worker inside an op cannot see STOP) under a 2 s
/// `window_timeout`, then a normal cell.
const HUNG: &str = r#"
name = "hung"
warmup = "10ms"
duration = "100ms"
repeats = 1
noise_reruns = 0
window_timeout = "2s"
[[matrix]]
workload = "spin"
params = { iterations = "1000000000000" }
models = ["processes"]
workers = [2]
tasks = 2
[[matrix]]
workload = "spin"
params = { op_time = "5us" }
models = ["threads"]
workers = [1]
tasks = 1
"#;

#[test]
fn watchdog_kills_a_hung_cell_and_the_suite_goes_on() {
    become_subreaper();
    let (dir, path) = suite(HUNG);
    let out = dir.path().join("out");
    let t0 = Instant::now();
    let mut child = Command::new(bin())
        .args(["run", path.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--no-idle-wait", "--quiet", "--duration", "1500ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While the hung cell runs: its host and two workers are below concbench.
    wait_descendants(child.id() as i32, 3);
    // Once it is recorded as timed out, nothing of it is left: the next cell (threads, one
    // process: its host) is all that runs.
    let results = out.join("results.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = json::read(&results)
            && r.cells[0].status == Status::TimedOut
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hung cell was never timed out"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let during = descendants_of(child.id() as i32);
    assert!(
        during.len() <= 1,
        "processes of the hung cell survived its timeout: {during:?}"
    );
    let status = child.wait().unwrap();
    let r = json::read(&results).unwrap();
    let hung = &r.cells[0];
    assert_eq!(hung.status, Status::TimedOut);
    let msg = hung.error.as_deref().unwrap_or_default();
    assert!(msg.contains("exceeded") && msg.contains("killed"), "{msg}");
    assert_eq!(r.cells[1].status, Status::Ok, "{:?}", r.cells[1].error);
    assert!(r.cells[1].samples[0].ops > 0);
    assert!(r.complete && !r.interrupted);
    // 1: a cell did not complete.
    assert_eq!(status.code(), Some(1));
    assert!(
        t0.elapsed() < Duration::from_secs(50),
        "the 2 s window_timeout was not applied ({:?})",
        t0.elapsed()
    );
    assert_eq!(leftover_children(Duration::from_secs(2)), Vec::<i32>::new());
}

#[test]
fn window_timeout_is_validated() {
    for (value, bad) in [
        ("\"0s\"", true),
        ("\"2h\"", true),
        ("5", true),
        ("\"5s\"", false),
    ] {
        let (dir, path) = suite(&format!(
            "window_timeout = {value}\n[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\n"
        ));
        let o = run(&[
            "run",
            path.to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
            "--no-idle-wait",
            "--quiet",
            "--duration",
            "50ms",
            "--warmup",
            "10ms",
            "--repeats",
            "1",
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        if bad {
            assert_eq!(o.status.code(), Some(2), "{value}: {err}");
            assert!(err.contains("window_timeout"), "{value}: {err}");
            assert!(!dir.path().join("o").exists(), "{value}: output written");
        } else {
            assert!(o.status.success(), "{value}: {err}");
        }
    }
}
