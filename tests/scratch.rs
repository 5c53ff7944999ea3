//! Scratch files: every window's files (workload files, a server handler's files) live in a
//! directory the harness makes and removes itself, so nothing is left in TMPDIR after a run,
//! a watchdog kill or a fault; and a run removes what a SIGKILLed run left behind.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A suite whose cells and server cells write files: file_read, fsync, an fsync handler.
const FILES: &str = r#"
name = "scratch"
warmup = "20ms"
duration = "100ms"
repeats = 1
noise_reruns = 0

[[matrix]]
workload = "file_read"
params = { file_size = "1MiB" }
models = ["threads", "processes"]
workers = 2
tasks = 2

[[matrix]]
workload = "fsync"
params = { file_size = "64KiB" }
models = ["processes"]
workers = 2
tasks = 2

[[server]]
arch = ["event-loop"]
connections = 2
handler = "fsync:file_size=64KiB"
"#;

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn run_in(tmp: &Path, suite: &Path, out: &Path) -> std::process::Output {
    Command::new(bin())
        .args([
            "run",
            suite.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(["--no-idle-wait", "--quiet"])
        .env("TMPDIR", tmp)
        .output()
        .unwrap()
}

#[test]
fn a_run_leaves_nothing_in_tmpdir() {
    let (dir, suite) = common::suite(FILES);
    let tmp = tempfile::tempdir().unwrap();
    let o = run_in(tmp.path(), &suite, &dir.path().join("out"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = concbench::report::json::read(&dir.path().join("out/results.json")).unwrap();
    assert!(
        r.cells.iter().all(|c| c.repeats_done == 1),
        "every cell ran"
    );
    assert_eq!(r.servers[0].repeats_done, 1, "the server cell ran");
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}

#[test]
fn a_sigkilled_runs_scratch_is_swept_by_the_next_run() {
    become_subreaper();
    let (dir, suite) = common::suite(&FILES.replace("\"100ms\"", "\"2s\""));
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .args(["run", suite.to_str().unwrap(), "--out"])
        .arg(dir.path().join("killed"))
        .args(["--no-idle-wait", "--quiet"])
        .env("TMPDIR", tmp.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a window's directory exists, then SIGKILL the harness: nobody removes it.
    let t0 = Instant::now();
    while !entries(tmp.path())
        .iter()
        .any(|n| n.starts_with("concbench-window-"))
    {
        assert!(t0.elapsed() < Duration::from_secs(30), "no window started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(leftover_children(Duration::from_secs(2)).is_empty());
    assert!(
        !entries(tmp.path()).is_empty(),
        "the killed run left its window directory"
    );
    let small = common::suite("[[matrix]]\nworkload = \"spin\"\nmodels = [\"threads\"]\n");
    let o = Command::new(bin())
        .args(["run", small.1.to_str().unwrap(), "--out"])
        .arg(small.0.path().join("out"))
        .args([
            "--no-idle-wait",
            "--duration",
            "50ms",
            "--warmup",
            "10ms",
            "--repeats",
            "1",
        ])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("removed 1 scratch directories"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}
