//! `cargo bench --bench models`: every cell of `workloads/bench.toml` (workload × model ×
//! workers) as a criterion benchmark. Group = `workload/params`, function =
//! `model/wW/tT/pin/load`: criterion's id is the CLI's cell id.
//!
//! # Timing model
//! See `concbench::criterion`: one sample = one real measured window of the cell (forked cell
//! host, workers started outside the window), reported as the time `iters` ops take at the
//! measured rate; criterion prints ops/s (`Throughput::Elements(1)`).

use std::path::Path;

use criterion::Criterion;

fn bench(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/bench.toml");
    let suite = concbench::suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let env = concbench::criterion::window_env(suite.warmup, suite.duration);
    concbench::criterion::bench_cells(c, &suite.cells, &env);
}

fn main() {
    let mut c = Criterion::default()
        .nresamples(5_000)
        .without_plots()
        .configure_from_args();
    bench(&mut c);
    c.final_summary();
}
