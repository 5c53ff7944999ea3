//! Per-op harness overhead: the bare `spin` kernel against the same kernel run as a task under
//! every model, one worker pinned to one core, 1 µs ops.
//!
//! # Timing model
//! `bare/spin`: criterion times `spin_kernel(iterations)` calls back to back on the bench
//! thread (pinned to the first allowed core). `model/<id>`: each criterion sample runs one
//! measured window of a real cell (forked cell host, one pinned worker, one task, closed loop)
//! and reports `window / ops × iters`, i.e. the time `iters` ops take at the rate the harness
//! measured: per op that is the kernel plus the driver's dispatch, one clock read, one
//! histogram record and one shared-counter store. Worker start-up is outside the window.
//!
//! At the end the bench prints each model's overhead against the bare kernel, in percent.

use std::path::Path;
use std::time::{Duration, Instant};

use concbench::runner::cell::{Timing, WindowEnv};
use concbench::runner::run_window;
use concbench::workload::cpu::{calibrate_spin, spin_kernel};
use criterion::{Criterion, Throughput, criterion_group};

fn per_op_bare(iterations: u64) -> f64 {
    let mut x = 1u64;
    let n = 20_000;
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                x = spin_kernel(iterations, x);
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn bench(c: &mut Criterion) {
    // Read the cores before pinning anything, as the runner does.
    let cores = concbench::sys::allowed_cpus();
    let core = cores[0];
    concbench::sys::pin_current(core).expect("pin the bench thread");
    let iterations = calibrate_spin(Duration::from_micros(1));
    let models: Vec<&str> = concbench::model::REGISTRY.iter().map(|m| m.id).collect();
    let text = format!(
        "name = \"overhead\"\nwarmup = \"100ms\"\nduration = \"300ms\"\n[[matrix]]\nworkload = \"spin\"\nparams = {{ iterations = {iterations} }}\nmodels = {models:?}\nworkers = 1\ntasks = 1\npin = \"same-core\"\n"
    );
    let suite = concbench::suite::parse(&text, Path::new("overhead")).expect("valid suite");
    let env = WindowEnv {
        timing: Timing {
            warmup: suite.warmup,
            duration: suite.duration,
        },
        cores: vec![core],
        noise: suite.noise,
        scratch_root: std::env::temp_dir(),
        spin_ns_per_iter: concbench::workload::cpu::spin_ns_per_iter(),
    };

    let mut g = c.benchmark_group("spin_1us");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("bare", |b| {
        let mut x = 1u64;
        b.iter(|| {
            x = spin_kernel(iterations, x);
            x
        })
    });
    let mut per_op_models = Vec::new();
    for cell in &suite.cells {
        let mut best = f64::INFINITY;
        g.bench_function(format!("{}/w1", cell.model.id), |b| {
            b.iter_custom(|iters| {
                let s = run_window(cell, &env).unwrap_or_else(|e| panic!("{}: {e:?}", cell.id));
                let per_op = s.window_ns as f64 / s.ops().max(1) as f64;
                best = best.min(per_op);
                Duration::from_nanos((per_op * iters as f64) as u64)
            })
        });
        per_op_models.push((cell.model.id, best));
    }
    g.finish();

    let bare = per_op_bare(iterations);
    println!(
        "\nper-op overhead against the bare kernel ({iterations} iterations, {bare:.0} ns/op bare, best window of each model):"
    );
    for (m, ns) in per_op_models {
        println!(
            "  {m:<14} {ns:>8.1} ns/op  {:+6.2}%",
            (ns / bare - 1.0) * 100.0
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
