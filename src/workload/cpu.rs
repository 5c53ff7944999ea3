//! CPU-bound workloads: the op is pure computation, no syscalls.
//!
//! `spin` is calibrated in `prepare` (before workers exist) so every model runs the same
//! iteration count; the others do a fixed amount of work per op.
//!
//! # Timing model
//! One op = one call of the kernel function from the first instruction to its result; the
//! harness reads the clock once per op boundary, so per-op overhead is one `clock_gettime`,
//! one histogram record and one relaxed store to the worker's shared counter.

use std::hint::black_box;
use std::time::{Duration, Instant};

use super::{
    Kind, ParamDef, Params, Step, Task, TaskCtx, Unit, Workload, WorkloadDef, WorkloadError,
};

// ---------------------------------------------------------------------------------------------
// spin

/// `spin`: a fixed number of dependent multiply-add iterations, calibrated to a target op time.
pub static SPIN: WorkloadDef = WorkloadDef {
    id: "spin",
    kind: Kind::Cpu,
    op: "a fixed number of dependent 64-bit multiply-adds (an LCG), calibrated to `op_time` on this machine",
    params: &[
        ParamDef {
            name: "op_time",
            unit: Unit::Duration,
            default: "10us",
            help: "target time of one op on an idle core; calibrated to an iteration count before the cell",
        },
        ParamDef {
            name: "iterations",
            unit: Unit::Count,
            default: "0",
            help: "fixed iteration count instead of calibrating (0 = calibrate to op_time)",
        },
    ],
    build: build_spin,
};

fn build_spin(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let op_time = p.duration("op_time");
    if op_time < Duration::from_nanos(50) || op_time > Duration::from_secs(1) {
        return Err(WorkloadError::Param {
            name: "op_time",
            reason: format!("{op_time:?} is outside 50ns..1s"),
        });
    }
    Ok(Box::new(Spin {
        op_time,
        iterations: p.count("iterations"),
    }))
}

/// The spin kernel: `iters` dependent LCG steps from `seed`. The dependency chain defeats
/// vectorisation and closed-form folding, so time is linear in `iters`.
#[inline(never)]
pub fn spin_kernel(iters: u64, seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iters {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    black_box(x)
}

/// Finds the iteration count whose run takes `target` on this core: doubles until a run is
/// long enough to time well, then scales; the fastest of several tries wins (interference only
/// ever adds time).
pub fn calibrate_spin(target: Duration) -> u64 {
    let mut n: u64 = 1024;
    let per_iter_ns = loop {
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                spin_kernel(n, 1);
                t.elapsed()
            })
            .min()
            .unwrap();
        if best >= Duration::from_millis(2) || n >= 1 << 40 {
            break best.as_nanos() as f64 / n as f64;
        }
        n *= 2;
    };
    ((target.as_nanos() as f64 / per_iter_ns).round() as u64).max(1)
}

struct Spin {
    op_time: Duration,
    iterations: u64,
}

impl Workload for Spin {
    fn prepare(&mut self, _env: &super::PrepareEnv) -> Result<(), WorkloadError> {
        if self.iterations == 0 {
            self.iterations = calibrate_spin(self.op_time);
        }
        Ok(())
    }

    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let iterations = if self.iterations == 0 {
            calibrate_spin(self.op_time)
        } else {
            self.iterations
        };
        Ok(Box::new(SpinTask {
            iterations,
            x: ctx.seed | 1,
        }))
    }

    fn resolved(&self) -> Vec<(String, String)> {
        vec![("iterations".into(), self.iterations.to_string())]
    }
}

struct SpinTask {
    iterations: u64,
    x: u64,
}

impl Task for SpinTask {
    #[inline]
    fn step(&mut self) -> Result<Step, WorkloadError> {
        self.x = spin_kernel(self.iterations, self.x);
        Ok(Step::Done)
    }
}

// ---------------------------------------------------------------------------------------------
// hash, primes, matmul, json: being written (helper); placeholders keep the registry complete.

macro_rules! pending {
    ($name:ident, $id:literal) => {
        /// Placeholder registry entry.
        pub static $name: WorkloadDef = WorkloadDef {
            id: $id,
            kind: Kind::Cpu,
            op: "pending",
            params: &[],
            build: |_| Err(WorkloadError::Other(concat!($id, ": pending").into())),
        };
    };
}
pending!(HASH, "hash");
pending!(PRIMES, "primes");
pending!(MATMUL, "matmul");
pending!(JSON, "json");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Mode, PrepareEnv, run_ops};

    #[test]
    fn spin_time_grows_with_iterations() {
        let t = |n| {
            (0..3)
                .map(|_| {
                    let s = Instant::now();
                    spin_kernel(n, 3);
                    s.elapsed()
                })
                .min()
                .unwrap()
        };
        // Not a timing assertion on the machine's speed: 64x the work must take longer.
        assert!(t(1 << 20) > t(1 << 14));
    }

    #[test]
    fn calibrated_spin_runs_ops() {
        let mut w = build_spin(&Params::from_values([
            (
                "op_time",
                super::super::Value::Duration(Duration::from_micros(5)),
            ),
            ("iterations", super::super::Value::Count(0)),
        ]))
        .unwrap();
        w.prepare(&PrepareEnv {
            scratch: std::env::temp_dir(),
            tasks: 1,
        })
        .unwrap();
        let it: u64 = w.resolved()[0].1.parse().unwrap();
        assert!(it > 0);
        let mut t = w
            .task(&TaskCtx {
                task: 0,
                mode: Mode::Blocking,
                seed: 1,
            })
            .unwrap();
        run_ops(t.as_mut(), 10).unwrap();
    }

    #[test]
    fn kernel_is_deterministic() {
        assert_eq!(spin_kernel(100, 5), spin_kernel(100, 5));
        assert_ne!(spin_kernel(100, 5), spin_kernel(101, 5));
    }
}
