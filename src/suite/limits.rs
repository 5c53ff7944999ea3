//! Limits a suite is checked against when it is loaded, so an impossible cell is refused with
//! a message before anything runs: the machine's memory (MemTotal from `/proc/meminfo`, or the
//! cgroup's `memory.max` when lower) against each cell's estimated footprint, and the CLI's
//! overrides of a suite (`--duration`, `--warmup`, `--out`).
//!
//! A footprint is a lower bound of what the workload must allocate: the buffers its tasks
//! hold (tasks × per task) plus what all tasks share. It leaves out the harness, stacks and
//! allocator slack, so a cell that passes may still be too large; one that fails cannot fit.

use std::path::Path;
use std::time::Duration;

use crate::workload::Params;

/// Longest measured window or warmup, in a suite or on the command line.
pub const MAX_WINDOW: Duration = Duration::from_secs(3600);

/// What a cell of a workload holds in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes each task holds (its buffers, matrices, sieve).
    pub per_task: u64,
    /// Bytes shared by all tasks (a file in the page cache).
    pub shared: u64,
}

impl Footprint {
    /// Bytes for `tasks` tasks (saturating: an absurd product is still "too much").
    pub fn total(self, tasks: usize) -> u64 {
        self.per_task
            .saturating_mul(tasks as u64)
            .saturating_add(self.shared)
    }
}

/// The estimated footprint of workload `id` with `p`; `None` for a workload this table does
/// not know (a unit test keeps every registered workload in it).
pub fn footprint(id: &str, p: &Params) -> Option<Footprint> {
    let per = |per_task| Footprint {
        per_task,
        shared: 0,
    };
    Some(match id {
        "spin" | "sleep" | "request" => per(0),
        // The buffer hashed each op.
        "hash" => per(p.size("size")),
        // One byte of sieve per number below n.
        "primes" => per(p.count("n")),
        // Three n×n matrices of f64.
        "matmul" => per(p.count("n").saturating_mul(p.count("n")).saturating_mul(24)),
        // The document, its serialized text and the output buffer (twice the size).
        "json" => per(p.size("size").saturating_mul(3)),
        // The client's request and response buffers, and the server's for its connection.
        "downstream" => per(p
            .size("request")
            .saturating_add(p.size("response"))
            .saturating_mul(2)),
        // A read buffer per task; the file is shared, through the page cache.
        "file_read" => Footprint {
            per_task: p.size("block"),
            shared: p.size("file_size"),
        },
        // A write buffer per task (the files are on disk; fsync checks free space itself).
        "fsync" => per(p.size("block")),
        _ => return None,
    })
}

/// Memory this process may use: MemTotal, or the cgroup v2 limit when it is lower. `None`
/// when `/proc/meminfo` cannot be read (then no memory check is made).
pub fn machine_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())?
        .saturating_mul(1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    Some(cgroup.map_or(total, |c| c.min(total)))
}

/// Bytes for people: `512 B`, `3.0 KiB`, `1.5 GiB`, `9.1 TiB`.
pub fn human(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Checks that a cell of workload `id` with `tasks` tasks fits in `mem` bytes; the error says
/// how much it needs, how much there is, and what to lower.
pub fn check_memory(id: &str, p: &Params, tasks: usize, mem: u64) -> Result<(), String> {
    let Some(f) = footprint(id, p) else {
        return Ok(());
    };
    let need = f.total(tasks);
    if need <= mem {
        return Ok(());
    }
    let how = if f.shared > mem {
        format!("its file alone is {}", human(f.shared))
    } else {
        format!(
            "{tasks} task(s) × {} each{}",
            human(f.per_task),
            if f.shared > 0 {
                format!(" + {} shared", human(f.shared))
            } else {
                String::new()
            }
        )
    };
    Err(format!(
        "workload `{id}` ({}) needs at least {} of memory ({how}) but this machine has {} \
         (MemTotal or the cgroup's memory.max): lower the task count or the sizes",
        p.canonical(),
        human(need),
        human(mem)
    ))
}

/// Checks the `run` command's overrides of a suite and its output directory before anything
/// is created; the error names the flag and the fix.
pub fn check_run_flags(
    duration: Option<Duration>,
    warmup: Option<Duration>,
    out: &Path,
) -> Result<(), String> {
    if duration.is_some_and(|d| d.is_zero()) {
        return Err("--duration must be longer than 0: e.g. --duration 2s".into());
    }
    for (flag, d) in [("--duration", duration), ("--warmup", warmup)] {
        if let Some(d) = d.filter(|d| *d > MAX_WINDOW) {
            return Err(format!(
                "{flag} {} is too long: use at most 1h",
                crate::workload::param::format_duration(d)
            ));
        }
    }
    // The nearest existing ancestor must be a directory (create_dir_all makes the rest).
    let mut at = Some(out);
    while let Some(p) = at {
        if p.as_os_str().is_empty() {
            break;
        }
        if let Ok(m) = std::fs::metadata(p) {
            if !m.is_dir() {
                return Err(if p == out {
                    format!(
                        "--out {} is a file, not a directory: give a directory (it is created if missing)",
                        out.display()
                    )
                } else {
                    format!(
                        "--out {}: {} is a file, so the directory cannot be created: choose another path",
                        out.display(),
                        p.display()
                    )
                });
            }
            break;
        }
        at = p.parent();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::workload::{self, Params};

    fn params(id: &str, kv: &[(&str, &str)]) -> Params {
        let def = workload::find(id).unwrap();
        let raw: BTreeMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Params::resolve(def.params, &raw).unwrap()
    }

    #[test]
    fn every_workload_has_a_footprint() {
        for def in workload::REGISTRY {
            let p = Params::resolve(def.params, &BTreeMap::new()).unwrap();
            assert!(
                footprint(def.id, &p).is_some(),
                "{} has no footprint",
                def.id
            );
        }
    }

    #[test]
    fn too_much_memory_is_refused_with_figures() {
        let p = params("matmul", &[("n", "2048")]);
        assert_eq!(footprint("matmul", &p).unwrap().per_task, 2048 * 2048 * 24);
        let e = check_memory("matmul", &p, 100_000, 24 << 30).unwrap_err();
        assert!(
            e.contains("100000 task(s) × 96.0 MiB") && e.contains("24.0 GiB"),
            "{e}"
        );
        assert!(check_memory("matmul", &p, 10, 24 << 30).is_ok());
        let p = params("file_read", &[("file_size", "16GiB")]);
        let e = check_memory("file_read", &p, 1, 8 << 30).unwrap_err();
        assert!(e.contains("its file alone is 16.0 GiB"), "{e}");
        assert!(machine_memory().is_some_and(|m| m > 0));
    }

    #[test]
    fn run_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(check_run_flags(None, None, &dir.path().join("new/deeper")).is_ok());
        let e = check_run_flags(None, None, &file).unwrap_err();
        assert!(e.contains("is a file"), "{e}");
        let e = check_run_flags(None, None, &file.join("sub")).unwrap_err();
        assert!(e.contains("cannot be created"), "{e}");
        let e = check_run_flags(Some(Duration::ZERO), None, dir.path()).unwrap_err();
        assert!(e.contains("--duration must be longer than 0"), "{e}");
        let e = check_run_flags(None, Some(Duration::from_secs(7200)), dir.path()).unwrap_err();
        assert!(e.contains("--warmup 7200s is too long"), "{e}");
    }
}
