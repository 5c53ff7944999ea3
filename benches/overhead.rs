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
//! At the end (not in `cargo test --benches`) the bench prints each model's overhead against
//! the bare kernel, in percent: for each model seven bare runs and seven windows alternate on
//! the same core, each window is compared with the bare run before it, and the median ratio
//! (with the range) is printed.

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
        window_timeout: None,
    };

    let mut g = c.benchmark_group("spin_1us");
    g.throughput(Throughput::Elements(1));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("bare", |b| {
        let mut x = 1u64;
        b.iter(|| {
            x = spin_kernel(iterations, x);
            x
        })
    });
    let per_op_window = |cell: &concbench::suite::Cell| {
        let s = run_window(cell, &env).unwrap_or_else(|e| panic!("{}: {e:?}", cell.id));
        s.window_ns as f64 / s.ops().max(1) as f64
    };
    for cell in &suite.cells {
        g.bench_function(format!("{}/w1", cell.model.id), |b| {
            b.iter_custom(|iters| Duration::from_nanos((per_op_window(cell) * iters as f64) as u64))
        });
    }
    g.finish();

    // The overhead figure: for each model, a bare-kernel run and a real window alternate seven
    // times on the same core; each window is compared with the bare run just before it and
    // the median of the seven ratios is reported, so neither drift of the machine nor one
    // lucky run lands in the figure.
    if std::env::args().any(|a| a == "--bench") {
        println!(
            "\nper-op overhead against the bare kernel ({iterations} iterations; median of 7 paired runs):"
        );
        for cell in &suite.cells {
            let mut pairs: Vec<(f64, f64)> = (0..7)
                .map(|_| (per_op_bare(iterations), per_op_window(cell)))
                .collect();
            pairs.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
            let pct = |(b, m): (f64, f64)| (m / b - 1.0) * 100.0;
            let (bare, model) = pairs[pairs.len() / 2];
            println!(
                "  {:<14} {model:>8.1} ns/op  bare {bare:>7.1} ns/op  {:+6.2}%  (range {:+.2}% .. {:+.2}%)",
                cell.model.id,
                pct((bare, model)),
                pct(pairs[0]),
                pct(pairs[pairs.len() - 1])
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default()
        .nresamples(5_000)
        .without_plots()
        .configure_from_args()
        .final_summary();
}
