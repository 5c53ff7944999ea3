//! The noise guard: is the machine quiet enough for this cell's numbers to mean something?
//!
//! Machines are shared and virtual. Before a cell the runner waits (bounded) until the machine
//! is idle; across the measured window it reads `/proc/stat` (every CPU's busy and steal
//! ticks) and subtracts the CPU the run itself used (the workers' `getrusage` plus the
//! workload's helper processes), leaving the CPU that *other* processes took. A cell whose
//! other-CPU or steal share exceeds the threshold is flagged and re-run (bounded), and the
//! result says so.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sys::procfs::{CpuTimes, cpu_times, ns_per_tick};

/// How strict the guard is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseConfig {
    /// Flag a cell when other processes or steal took more than this share of the machine.
    pub threshold: f64,
    /// The machine counts as idle below this busy share.
    pub idle_below: f64,
    /// Longest wait for idle before a cell (then run anyway and say so).
    pub max_idle_wait: Duration,
    /// Re-runs of a flagged cell before keeping its last result.
    pub max_reruns: u32,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            threshold: 0.10,
            idle_below: 0.10,
            max_idle_wait: Duration::from_secs(3),
            max_reruns: 2,
        }
    }
}

/// What the guard saw for one run of a cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Noise {
    /// Share (0..1) of the machine's CPU time used by processes outside the run during the window.
    pub other_cpu: f64,
    /// Share (0..1) of the machine's CPU time stolen by the hypervisor during the window.
    pub steal: f64,
    /// Milliseconds waited for the machine to become idle before the cell.
    pub idle_wait_ms: u64,
    /// True when the machine never became idle within the bounded wait.
    pub busy_at_start: bool,
    /// True when other_cpu or steal exceeded the threshold.
    pub flagged: bool,
    /// How many times this cell was re-run because it was flagged.
    pub reruns: u32,
}

/// Result of waiting for an idle machine.
#[derive(Debug, Clone, Copy)]
pub struct IdleWait {
    /// How long the wait took.
    pub waited: Duration,
    /// False when the wait gave up.
    pub idle: bool,
}

/// Samples `/proc/stat` over 50 ms slices until the busy share is below `cfg.idle_below`, or
/// `cfg.max_idle_wait` passes.
pub fn wait_for_idle(cfg: &NoiseConfig) -> IdleWait {
    let start = Instant::now();
    loop {
        let a = cpu_times().unwrap_or_default();
        std::thread::sleep(Duration::from_millis(50));
        let d = cpu_times().unwrap_or_default().since(&a);
        let busy = if d.total() == 0 {
            0.0
        } else {
            (d.busy + d.steal) as f64 / d.total() as f64
        };
        if busy < cfg.idle_below {
            return IdleWait {
                waited: start.elapsed(),
                idle: true,
            };
        }
        // A SIGINT/SIGTERM to the harness ends the wait: the runner stops next.
        if start.elapsed() >= cfg.max_idle_wait || crate::sys::signal::received().is_some() {
            return IdleWait {
                waited: start.elapsed(),
                idle: false,
            };
        }
    }
}

/// Machine CPU accounting across one measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    start: CpuTimes,
}

impl Window {
    /// Opens the window (reads `/proc/stat`).
    pub fn begin() -> Self {
        Self {
            start: cpu_times().unwrap_or_default(),
        }
    }

    /// Closes the window: the machine's CPU ticks spent while it was open.
    pub fn close(&self) -> CpuTimes {
        cpu_times().unwrap_or_default().since(&self.start)
    }
}

/// Judges a closed window: `own_cpu_ns` is the CPU the run itself used in it.
pub fn assess(d: CpuTimes, own_cpu_ns: u64, cfg: &NoiseConfig) -> Noise {
    noise_from(d, ns_per_tick(), own_cpu_ns, cfg)
}

fn noise_from(d: CpuTimes, tick_ns: u64, own_cpu_ns: u64, cfg: &NoiseConfig) -> Noise {
    let total_ns = (d.total() * tick_ns) as f64;
    if total_ns == 0.0 {
        return Noise::default();
    }
    let busy_ns = (d.busy * tick_ns) as f64;
    let other_cpu = ((busy_ns - own_cpu_ns as f64) / total_ns).max(0.0);
    let steal = (d.steal * tick_ns) as f64 / total_ns;
    Noise {
        other_cpu,
        steal,
        flagged: other_cpu > cfg.threshold || steal > cfg.threshold,
        ..Noise::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracts_own_cpu_and_flags_others() {
        let cfg = NoiseConfig::default();
        // 2 CPUs × 1 s at 100 Hz = 200 ticks; 100 busy, all of them ours.
        let d = CpuTimes {
            busy: 100,
            idle: 100,
            steal: 0,
        };
        let n = noise_from(d, 10_000_000, 1_000_000_000, &cfg);
        assert_eq!(n.other_cpu, 0.0);
        assert!(!n.flagged);
        // Someone else used 40 ticks (20% of the machine).
        let d = CpuTimes {
            busy: 140,
            idle: 60,
            steal: 0,
        };
        let n = noise_from(d, 10_000_000, 1_000_000_000, &cfg);
        assert!((n.other_cpu - 0.2).abs() < 1e-9);
        assert!(n.flagged);
        // Steal alone flags too.
        let d = CpuTimes {
            busy: 100,
            idle: 70,
            steal: 30,
        };
        assert!(noise_from(d, 10_000_000, 1_000_000_000, &cfg).flagged);
    }

    #[test]
    fn idle_wait_is_bounded() {
        let cfg = NoiseConfig {
            idle_below: 0.0, // never idle: must give up
            max_idle_wait: Duration::from_millis(120),
            ..NoiseConfig::default()
        };
        let w = wait_for_idle(&cfg);
        assert!(!w.idle);
    }
}
