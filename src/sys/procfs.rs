//! Readers for the few `/proc` files concbench trusts: `smaps_rollup` (RSS and PSS: PSS splits
//! copy-on-write pages among the processes that share them, RSS counts them in full for each)
//! and `/proc/stat` (machine-wide CPU time, including steal time on a VM).

use std::io;

/// Memory of one process, from `/proc/PID/smaps_rollup`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// Proportional set size in bytes (shared pages divided among their sharers).
    pub pss_bytes: u64,
}

/// Reads `/proc/<pid>/smaps_rollup` (`pid` 0 means this process).
pub fn memory(pid: i32) -> io::Result<Memory> {
    let path = if pid == 0 {
        "/proc/self/smaps_rollup".to_string()
    } else {
        format!("/proc/{pid}/smaps_rollup")
    };
    let text = std::fs::read_to_string(&path)?;
    parse_smaps_rollup(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: no Rss/Pss")))
}

fn parse_smaps_rollup(text: &str) -> Option<Memory> {
    let kb = |key: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.trim();
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_bytes: kb("Rss:")? * 1024,
        pss_bytes: kb("Pss:")? * 1024,
    })
}

/// CPU time of process `pid`'s main thread in nanoseconds, from `/proc/PID/schedstat` (the
/// scheduler's own run-time sum, nanosecond resolution).
pub fn thread_cpu_ns(pid: i32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat"))?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad schedstat"))
}

/// True when process `pid` has ended (zombie awaiting reaping, or gone).
pub fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z" || state == "X"),
    }
}

/// Process `root` and every live descendant of it (children, grandchildren …), from the
/// parent pids in `/proc/*/stat`.
pub fn process_tree(root: i32) -> Vec<i32> {
    let mut parent = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(pp) = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
            {
                parent.push((pid, pp));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parent.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree
}

/// What the kernel has accounted to every thread of process `pid` so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskTotals {
    /// Threads seen.
    pub threads: u64,
    /// Sum of `voluntary_ctxt_switches` over the threads.
    pub voluntary: u64,
    /// Sum of `nonvoluntary_ctxt_switches`.
    pub involuntary: u64,
    /// Sum of the threads' run time (`schedstat`), nanoseconds.
    pub cpu_ns: u64,
}

impl TaskTotals {
    /// Field-wise sum.
    pub fn add(&self, o: &TaskTotals) -> TaskTotals {
        TaskTotals {
            threads: self.threads + o.threads,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
            cpu_ns: self.cpu_ns + o.cpu_ns,
        }
    }
}

/// Sums context switches and CPU time over every thread in `/proc/PID/task/*` (zeros for a
/// process that is gone).
pub fn task_totals(pid: i32) -> TaskTotals {
    let mut t = TaskTotals::default();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return t;
    };
    for e in rd.flatten() {
        let dir = e.path();
        if let Ok(status) = std::fs::read_to_string(dir.join("status")) {
            t.threads += 1;
            for l in status.lines() {
                let num = |k: &str| {
                    l.strip_prefix(k)
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                t.voluntary += num("voluntary_ctxt_switches:");
                t.involuntary += num("nonvoluntary_ctxt_switches:");
            }
        }
        if let Ok(ss) = std::fs::read_to_string(dir.join("schedstat")) {
            t.cpu_ns += ss
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    t
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + irq + softirq (time some task or interrupt used a CPU).
    pub busy: u64,
    /// idle + iowait.
    pub idle: u64,
    /// Time the hypervisor ran something else while this VM wanted the CPU.
    pub steal: u64,
}

impl CpuTimes {
    /// `self - earlier`, per field.
    pub fn since(&self, earlier: &CpuTimes) -> CpuTimes {
        CpuTimes {
            busy: self.busy.saturating_sub(earlier.busy),
            idle: self.idle.saturating_sub(earlier.idle),
            steal: self.steal.saturating_sub(earlier.steal),
        }
    }

    /// All ticks counted (busy + idle + steal).
    pub fn total(&self) -> u64 {
        self.busy + self.idle + self.steal
    }
}

/// Reads the aggregate `cpu` line of `/proc/stat`.
pub fn cpu_times() -> io::Result<CpuTimes> {
    let text = std::fs::read_to_string("/proc/stat")?;
    parse_proc_stat(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/stat: no cpu line"))
}

fn parse_proc_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let g = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
    Some(CpuTimes {
        busy: g(0) + g(1) + g(2) + g(5) + g(6),
        idle: g(3) + g(4),
        steal: g(7),
    })
}

/// Nanoseconds per clock tick of `/proc/stat` (`sysconf(_SC_CLK_TCK)`, usually 100 Hz).
pub fn ns_per_tick() -> u64 {
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|&h| h > 0)
        .unwrap_or(100) as u64;
    1_000_000_000 / hz
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rollup() {
        let t = "55d0-7ff [rollup]\nRss:                2048 kB\nPss:                1024 kB\nPss_Anon: 12 kB\n";
        assert_eq!(
            parse_smaps_rollup(t),
            Some(Memory {
                rss_bytes: 2048 * 1024,
                pss_bytes: 1024 * 1024
            })
        );
    }

    #[test]
    fn parses_stat() {
        let t = "cpu  10 1 5 100 2 3 4 7 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        let c = parse_proc_stat(t).unwrap();
        assert_eq!(c.busy, 10 + 1 + 5 + 3 + 4);
        assert_eq!(c.idle, 102);
        assert_eq!(c.steal, 7);
    }

    #[test]
    fn reads_own_memory_and_stat() {
        let m = memory(0).unwrap();
        assert!(m.rss_bytes > 0 && m.pss_bytes > 0 && m.pss_bytes <= m.rss_bytes);
        assert!(cpu_times().unwrap().total() > 0);
        assert!(ns_per_tick() > 0);
        assert!(thread_cpu_ns(std::process::id() as i32).unwrap() > 0);
        let me = std::process::id() as i32;
        let t = task_totals(me);
        assert!(t.threads >= 1 && t.cpu_ns > 0, "{t:?}");
        assert_eq!(process_tree(me)[0], me);
    }
}
