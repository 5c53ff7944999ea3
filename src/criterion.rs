//! concbench inside criterion: cells and OS mechanics as criterion benchmarks, your own code
//! under every model, and a criterion [`Measurement`] that counts context switches.
//!
//! ```no_run
//! use criterion::{Criterion, criterion_group, criterion_main};
//!
//! fn my_handler(input: u64) -> u64 {
//!     (0..200).fold(input, |x, i| x.rotate_left(5) ^ i)
//! }
//!
//! fn bench(c: &mut Criterion) {
//!     concbench::criterion::bench_models(c, "my_handler", |input| my_handler(input));
//! }
//!
//! criterion_group!(benches, bench);
//! criterion_main!(benches);
//! ```
//!
//! # Timing model
//! A cell benchmark's sample is one real measured window of the cell (a forked cell host,
//! workers created and released outside the window, as in `concbench run`). Criterion asks for
//! the time of `iters` ops; the sample reports `window / ops × iters`: the time `iters` ops take
//! at the rate the window measured. With `Throughput::Elements(1)` criterion prints ops/s.
//! A mechanic benchmark's sample is one `Mechanic::measure(iters)` call: exactly `iters`
//! iterations timed (see each mechanic's timing model).

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};

use crate::mechanic::{Mechanic, MechanicEnv};
use crate::model;
use crate::runner::cell::{Timing, WindowEnv};
use crate::runner::run_window;
use crate::suite::{Cell, MechCell};
use crate::sys::rusage::{children_rusage, self_rusage};

/// A window environment for benches: cores read now (call before pinning anything), the spin
/// kernel calibrated once, short windows (criterion repeats them).
pub fn window_env(warmup: Duration, duration: Duration) -> WindowEnv {
    WindowEnv {
        timing: Timing { warmup, duration },
        cores: crate::sys::allowed_cpus(),
        noise: Default::default(),
        scratch_root: std::env::temp_dir(),
        spin_ns_per_iter: crate::workload::cpu::spin_ns_per_iter(),
        window_timeout: None,
    }
}

/// Splits a cell id into criterion's group (`workload/params`) and function
/// (`model/wW/tT/pin/load`), so criterion's full id is the cell id.
pub fn split_id(id: &str) -> (&str, &str) {
    let mut cut = 0;
    for (n, (i, _)) in id.match_indices('/').enumerate() {
        if n == 1 {
            cut = i;
            break;
        }
    }
    if cut == 0 {
        (id, "")
    } else {
        (&id[..cut], &id[cut + 1..])
    }
}

/// Benchmarks each cell with criterion, one group per workload/params.
pub fn bench_cells(c: &mut Criterion, cells: &[Cell], env: &WindowEnv) {
    let mut groups: Vec<&str> = cells.iter().map(|c| split_id(&c.id).0).collect();
    groups.dedup();
    for name in groups {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(200));
        g.measurement_time(Duration::from_secs(1));
        for cell in cells.iter().filter(|c| split_id(&c.id).0 == name) {
            g.bench_function(split_id(&cell.id).1, |b| {
                b.iter_custom(|iters| {
                    let s = run_window(cell, env).unwrap_or_else(|e| panic!("{}: {e:?}", cell.id));
                    let per_op = s.window_ns as f64 / s.ops().max(1) as f64;
                    Duration::from_nanos((per_op * iters as f64).round() as u64)
                })
            });
        }
        g.finish();
    }
}

/// Benchmarks `op` (called with a pseudo-random `u64` per op) under every model, with one
/// worker and with one per core: `<name>/-/<model>/wW/…` in criterion's output.
pub fn bench_models<F, R>(c: &mut Criterion, name: &str, op: F)
where
    F: Fn(u64) -> R + Send + Sync + 'static,
{
    let env = window_env(Duration::from_millis(20), Duration::from_millis(100));
    let mut workers = vec![1];
    if env.cores.len() > 1 {
        workers.push(env.cores.len());
    }
    let models: Vec<&'static model::ModelDef> = model::REGISTRY.iter().collect();
    let cells = crate::custom::cells(name, op, &models, &workers);
    bench_cells(c, &cells, &env);
}

/// Builds a mechanic or panics with the suite's error (benches have no other way to fail).
pub fn build_mechanic(m: &MechCell, env: &MechanicEnv) -> Box<dyn Mechanic> {
    (m.mechanic.build)(&m.params, env).unwrap_or_else(|e| panic!("{}: {e}", m.id))
}

/// Benchmarks each mechanic's time per iteration, one group per mechanic.
pub fn bench_mechanics(c: &mut Criterion, mechs: &[MechCell], env: &MechanicEnv) {
    let mut groups: Vec<&str> = mechs.iter().map(|m| m.mechanic.id).collect();
    groups.dedup();
    for name in groups {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.warm_up_time(Duration::from_millis(100));
        g.measurement_time(Duration::from_millis(500));
        for m in mechs.iter().filter(|m| m.mechanic.id == name) {
            let mut mech = build_mechanic(m, env);
            g.bench_function(m.params.canonical(), |b| {
                b.iter_custom(|iters| {
                    mech.measure(iters)
                        .unwrap_or_else(|e| panic!("{}: {e}", m.id))
                        .elapsed
                })
            });
        }
        g.finish();
    }
}

/// Benchmarks context switches per iteration of each mechanic with the [`ContextSwitches`]
/// measurement. Use it only for mechanics that switch in every sample (blocking ping-pong):
/// criterion rejects a sample of zero.
pub fn bench_mechanic_switches(
    c: &mut Criterion<ContextSwitches>,
    group: &str,
    mechs: &[MechCell],
    env: &MechanicEnv,
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(100));
    g.measurement_time(Duration::from_millis(500));
    for m in mechs {
        let mut mech = build_mechanic(m, env);
        g.bench_function(m.params.canonical(), |b| {
            b.iter_custom(|iters| {
                let r = mech
                    .measure(iters)
                    .unwrap_or_else(|e| panic!("{}: {e}", m.id));
                (r.rusage.voluntary + r.rusage.involuntary).max(1)
            })
        });
    }
    g.finish();
}

/// A criterion measurement in context switches (voluntary + involuntary) of this process and
/// its reaped children, read with `getrusage`. With `iter_custom`, return the switches the
/// iterations caused (e.g. `Measured::rusage`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContextSwitches;

fn switches_now() -> u64 {
    let s = self_rusage();
    let c = children_rusage();
    s.voluntary + s.involuntary + c.voluntary + c.involuntary
}

impl Measurement for ContextSwitches {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        switches_now()
    }

    fn end(&self, i: u64) -> u64 {
        switches_now().saturating_sub(i)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &SwitchFormatter
    }
}

struct SwitchFormatter;

impl ValueFormatter for SwitchFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "switches"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        if let Throughput::Elements(n) = throughput {
            for v in values.iter_mut() {
                *v /= *n as f64;
            }
        }
        "switches/elem"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "switches"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_into_group_and_function() {
        assert_eq!(
            split_id("spin/op_time=10us/threads/w2/t2/spread/closed"),
            ("spin/op_time=10us", "threads/w2/t2/spread/closed")
        );
    }

    #[test]
    fn switch_measurement_counts_a_blocking_sleep() {
        let m = ContextSwitches;
        let s = m.start();
        std::thread::sleep(Duration::from_millis(2));
        assert!(m.end(s) >= 1);
    }
}
