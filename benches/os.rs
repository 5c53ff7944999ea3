//! `cargo bench --bench os`: the OS mechanics of `workloads/os.toml` (context switch, spawn,
//! IPC, shared counters, copy-on-write fork) as criterion benchmarks, plus the context
//! switches per ping-pong round trip counted with concbench's `ContextSwitches` measurement.
//!
//! # Timing model
//! One sample = one `Mechanic::measure(iters)` call: exactly `iters` iterations timed, partners
//! started before and stopped after the timed section (see each mechanic's docs).

use std::path::Path;

use concbench::criterion::{ContextSwitches, bench_mechanic_switches, bench_mechanics};
use concbench::mechanic::MechanicEnv;
use criterion::Criterion;

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/os.toml");
    let suite = concbench::suite::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let env = MechanicEnv::current(Some(env!("CARGO_BIN_EXE_concbench").into()));

    // The suite forks heaps up to 1 GiB; a criterion sample of those takes seconds, so the bench
    // keeps the copy-on-write cases up to 64 MiB (`concbench run workloads/os.toml` has them all).
    let mechanics: Vec<_> = suite
        .mechanics
        .iter()
        .filter(|m| m.mechanic.id != "cow" || m.params.size("heap") <= 64 << 20)
        .cloned()
        .collect();
    let mut c = Criterion::default()
        .nresamples(5_000)
        .without_plots()
        .configure_from_args();
    bench_mechanics(&mut c, &mechanics, &env);
    c.final_summary();

    // Switches per round trip, for the blocking ping-pongs (every sample switches).
    let blocking: Vec<_> = suite
        .mechanics
        .iter()
        .filter(|m| {
            m.mechanic.id == "pingpong"
                && m.params.choice("transport") != "yield"
                && m.params.choice("placement") != "unpinned"
        })
        .cloned()
        .collect();
    let mut c = Criterion::default()
        .nresamples(5_000)
        .without_plots()
        .with_measurement(ContextSwitches)
        .configure_from_args();
    bench_mechanic_switches(&mut c, "pingpong_switches", &blocking, &env);
    c.final_summary();
}
