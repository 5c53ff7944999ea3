//! Resource limits: a low RLIMIT_NOFILE (`prlimit`), fork and thread creation failing with
//! EAGAIN (RLIMIT_NPROC, as an unprivileged user via `setpriv`: root ignores it), and a full
//! disk when results are written (a small tmpfs in a private mount namespace, `unshare -m`).
//! Each gives a clear error naming the limit and the fix, leaves no process behind, and keeps
//! the results written before intact. The tools come from util-linux (`prlimit`, `setpriv`,
//! `unshare`, `mount`); a test fails (it does not skip) when one is missing. The NPROC and
//! full-disk tests need root (to change user, to mount).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use concbench::report::json;
use concbench::report::result::{Results, Status};

fn need(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{tool} is required for this test: `apt-get install util-linux`"
    );
    path
}

fn no_process_left() {
    assert_eq!(
        leftover_children(Duration::from_secs(3)),
        Vec::<i32>::new(),
        "processes outlived concbench"
    );
}

/// `concbench run SUITE --out DIR/out` under `prefix` (a command and its arguments that
/// execs the rest, e.g. prlimit).
fn run_under(prefix: &[&str], dir: &Path, suite: &Path) -> (Output, Results) {
    let out = dir.join("out");
    let o = Command::new(prefix[0])
        .args(&prefix[1..])
        .arg(bin())
        .args(["run", suite.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--no-idle-wait", "--quiet"])
        .output()
        .unwrap();
    let r = json::read(&out.join("results.json")).unwrap_or_else(|e| {
        panic!(
            "no results ({e:#}); stderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, r)
}

fn cell<'a>(r: &'a Results, prefix: &str) -> Vec<&'a concbench::report::result::CellResult> {
    r.cells
        .iter()
        .filter(|c| c.id.starts_with(prefix))
        .collect()
}

#[test]
fn a_low_open_file_limit_fails_the_cell_that_needs_more_with_the_limit_named() {
    become_subreaper();
    let prlimit = need("prlimit");
    let (dir, path) = suite(
        r#"
warmup = "10ms"
duration = "100ms"
repeats = 1
noise_reruns = 0
[[matrix]]
workload = "spin"
params = { op_time = "5us" }
models = ["threads"]
workers = [1]
tasks = 1
# 64 tasks, each with a socket to the downstream server (and the server's end): over 40.
[[matrix]]
workload = "downstream"
params = { delay = "100us" }
models = ["threads", "processes", "event-loop"]
workers = [1]
tasks = 64
[[matrix]]
workload = "sleep"
params = { delay = "1ms" }
models = ["processes"]
workers = [2]
tasks = 2
"#,
    );
    let (o, r) = run_under(&[&prlimit, "--nofile=40:40", "--"], dir.path(), &path);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(r.complete && !r.interrupted);
    let failed = cell(&r, "downstream/");
    assert_eq!(failed.len(), 3);
    for c in failed {
        assert_eq!(c.status, Status::Failed, "{}", c.id);
        let e = c.error.as_deref().unwrap_or_default();
        assert!(
            e.contains("RLIMIT_NOFILE (soft 40, hard 40)") && e.contains("ulimit -n"),
            "{}: {e}",
            c.id
        );
    }
    // The cells before and after ran: the suite went on.
    for c in cell(&r, "spin/").into_iter().chain(cell(&r, "sleep/")) {
        assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
    }
    no_process_left();
}

#[test]
fn fork_and_thread_creation_failing_with_eagain_name_rlimit_nproc() {
    become_subreaper();
    let prlimit = need("prlimit");
    let setpriv = need("setpriv");
    let (dir, path) = suite(
        r#"
warmup = "10ms"
duration = "100ms"
repeats = 1
noise_reruns = 0
[[matrix]]
workload = "spin"
params = { op_time = "5us" }
models = ["threads", "processes"]
workers = [12, 1]
tasks = 12
"#,
    );
    // nobody must be able to write the output directory (and read the suite).
    for p in [dir.path(), &path] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    // 8 tasks for user nobody: the harness, a cell host and a few workers; 12 cannot start.
    let (o, r) = run_under(
        &[
            &prlimit,
            "--nproc=8",
            "--",
            &setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ],
        dir.path(),
        &path,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    for c in &r.cells {
        if c.workers == 12 {
            assert_eq!(c.status, Status::Failed, "{}", c.id);
            let e = c.error.as_deref().unwrap_or_default();
            let what = if c.model == "threads" {
                "thread spawn failed"
            } else {
                "fork failed"
            };
            assert!(
                e.contains(what) && e.contains("RLIMIT_NPROC soft 8") && e.contains("ulimit -u"),
                "{}: {e}",
                c.id
            );
        } else {
            assert_eq!(c.status, Status::Ok, "{}: {:?}", c.id, c.error);
        }
    }
    no_process_left();
}

#[test]
fn a_full_disk_stops_the_run_with_a_clear_error_and_keeps_the_last_results() {
    become_subreaper();
    for tool in ["unshare", "mount"] {
        need(tool);
    }
    let (dir, path) = suite(
        r#"
warmup = "10ms"
duration = "300ms"
repeats = 1
noise_reruns = 0
[[matrix]]
workload = "spin"
params = { op_time = "5us" }
models = ["threads", "processes"]
workers = [1, 2, 3]
tasks = 3
"#,
    );
    let keep = dir.path().join("keep");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    // In a private mount namespace: a 1 MiB tmpfs as the output disk; once a cell finished,
    // fill the disk; then copy what is left out before the namespace (and tmpfs) goes.
    let script = r#"
mount -t tmpfs -o size=1m tmpfs "$MNT" || exit 90
"$BIN" run "$SUITE" --out "$MNT/out" --no-idle-wait --quiet 2>"$KEEP/stderr" &
pid=$!
n=0
until grep -q '"status": "ok"' "$MNT/out/results.json" 2>/dev/null; do
  n=$((n+1)); [ $n -gt 3000 ] && exit 91; sleep 0.02
done
cat /dev/zero > "$MNT/fill" 2>/dev/null
wait $pid
echo $? > "$KEEP/rc"
cp "$MNT/out/results.json" "$KEEP/results.json"
ls -a "$MNT/out" > "$KEEP/ls"
"#;
    let o = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("MNT", &mnt)
        .env("KEEP", &keep)
        .env("SUITE", &path)
        .env("BIN", bin())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "the namespace script failed ({:?}): {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let rc = std::fs::read_to_string(keep.join("rc")).unwrap();
    let stderr = std::fs::read_to_string(keep.join("stderr")).unwrap();
    assert_eq!(rc.trim(), "1", "{stderr}");
    assert!(
        stderr.contains("No space left on device")
            && stderr.contains("disk")
            && stderr.contains("--out"),
        "{stderr}"
    );
    // The last results written before the disk filled: valid, with the finished cells.
    let r = json::read(&keep.join("results.json")).unwrap();
    assert!(r.cells.iter().any(|c| c.status == Status::Ok));
    assert!(!r.complete);
    for c in r.cells.iter().filter(|c| c.status == Status::Ok) {
        assert!(c.samples[0].ops > 0, "{}", c.id);
    }
    // No half-written temp file left on the full disk.
    let ls = std::fs::read_to_string(keep.join("ls")).unwrap();
    assert!(!ls.contains(".concbench-"), "{ls}");
    no_process_left();
}

/// `concbench serve` (under `prefix`) and its address.
fn serve(prefix: &[&str], arch: &str) -> (std::process::Child, String) {
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(bin())
        .args(["serve", "--arch", arch])
        .stderr(Stdio::piped());
    spawn_serve(cmd, arch)
}

fn get(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"HTTP/1.1 200"))
}

#[test]
fn serve_out_of_descriptors_says_so_keeps_serving_and_stops_cleanly() {
    become_subreaper();
    let prlimit = need("prlimit");
    for arch in ["event-loop", "prefork"] {
        let (mut server, addr) = serve(&[&prlimit, "--nofile=30:30", "--"], arch);
        let mut first = TcpStream::connect(&addr).unwrap();
        assert!(get(&mut first), "{arch}");
        // More connections than descriptors: the kernel queues them in the backlog.
        let _many: Vec<TcpStream> = (0..40)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // The connections it holds are still served.
        assert!(
            get(&mut first),
            "{arch}: an open connection stopped being served"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(server.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = server.wait().unwrap();
        let mut err = String::new();
        server
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(143), "{arch}: {err}");
        assert!(
            err.contains("RLIMIT_NOFILE (soft 30, hard 30)") && err.contains("ulimit -n"),
            "{arch}: {err}"
        );
        // Throttled: one warning, not one per failed accept.
        assert!(err.matches("RLIMIT_NOFILE").count() <= 2, "{arch}: {err}");
        drop(_many);
        no_process_left();
    }
}

#[test]
fn load_with_more_connections_than_descriptors_refuses_or_raises_the_soft_limit() {
    become_subreaper();
    let prlimit = need("prlimit");
    // Above the hard limit: refused before any connection (port 1 would refuse them).
    let o = Command::new(&prlimit)
        .args(["--nofile=64:64", "--"])
        .arg(bin())
        .args(["load", "--target", "127.0.0.1:1", "--connections", "500"])
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--connections 500") && err.contains("RLIMIT_NOFILE (64)"),
        "{err}"
    );
    // Above the soft limit, within the hard one: raised, said, and the run works.
    let (mut server, addr) = serve(&["env"], "event-loop");
    let o = Command::new(&prlimit)
        .args(["--nofile=64:4096", "--"])
        .arg(bin())
        .args(["load", "--target", &addr, "--connections", "200"])
        .args(["--duration", "300ms", "--warmup", "50ms", "--json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("raised the soft open-file limit RLIMIT_NOFILE from 64 to"),
        "{err}"
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report["completed"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["totals"]["errors"]["connect"], 0, "{report}");
    let _ = server.kill();
    let _ = server.wait();
    no_process_left();
}
