//! Shared helpers of the integration tests: run the real `concbench` binary on small suites
//! written to temp dirs, read its results back, and account for every descendant process.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use concbench::report::json;
use concbench::report::result::Results;

/// Spawns a prepared `concbench serve` command with stdout piped and returns the child and
/// the address from its first line (`listening on ADDR`). The caller sets args and stderr.
pub fn spawn_serve(mut cmd: Command, what: &str) -> (Child, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{what}: unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_concbench")
}

/// Runs concbench with `args` from the repository root.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("concbench runs")
}

/// Writes `text` as a suite file in a fresh temp dir; returns (dir, suite path).
pub fn suite(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("suite.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Runs a suite with a tiny budget into `dir/out`; returns the output and the results.
pub fn run_suite(dir: &Path, suite: &Path, extra: &[&str]) -> (Output, Results) {
    let out = dir.join("out");
    let mut args = vec![
        "run",
        suite.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-idle-wait",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = run(&args);
    let r = json::read(&out.join("results.json")).unwrap_or_else(|e| {
        panic!(
            "no results ({e:#}); stderr:\n{}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, r)
}

/// Makes this test process the reaper of every orphan below it, so a leaked grandchild
/// (a worker or cell host that outlived concbench) becomes our child and can be seen.
pub fn become_subreaper() {
    nix::sys::prctl::set_child_subreaper(true).unwrap();
}

/// pid → parent pid of every live process, from /proc/PID/stat.
pub fn parents() -> std::collections::HashMap<i32, i32> {
    let mut out = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the parenthesised command come: state ppid ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(pp) = ppid {
            out.insert(pid, pp);
        }
    }
    out
}

/// Pids of this process's live children, excluding `except`.
pub fn children_of_self(except: &[i32]) -> Vec<i32> {
    let me = std::process::id() as i32;
    parents()
        .into_iter()
        .filter(|&(pid, pp)| pp == me && !except.contains(&pid))
        .map(|(pid, _)| pid)
        .collect()
}

/// Every live descendant of `root`.
pub fn descendants_of(root: i32) -> Vec<i32> {
    let parent = parents();
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            while let Some(&pp) = parent.get(&cur) {
                if pp == root {
                    return true;
                }
                if pp <= 1 {
                    return false;
                }
                cur = pp;
            }
            false
        })
        .collect()
}

/// Reaps zombies among our children and returns the pids still alive after `timeout`.
pub fn leftover_children(timeout: std::time::Duration) -> Vec<i32> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        while let Ok(s) = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        ) {
            if s == nix::sys::wait::WaitStatus::StillAlive {
                break;
            }
        }
        let left = children_of_self(&[]);
        if left.is_empty() || std::time::Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
