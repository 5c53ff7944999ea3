//! concbench: compares real concurrency models (forked processes, OS threads, epoll loops and
//! their hybrids) on a library of CPU- and I/O-bound workloads, measured by the kernel's own
//! accounting.
//!
//! The pipeline, one module per stage:
//! `suite` (TOML → matrix of cells) → `runner` (cell host, warmup, window, repeats, noise
//! guard) → `model` (units × drivers running `workload` tasks) → `measure` (counters, gate,
//! histograms, rusage, machine) → `report` (the canonical result struct and its exporters).
//! Beside the models: `mechanic` (OS mechanics measured directly: context switch, spawn, IPC,
//! shared counters, copy-on-write), `server` (HTTP/1.1 backends in seven architectures) and
//! `load` (the HTTP load generator), which suites run as their own kinds of cells; `criterion`
//! and `custom` let users bench their own code under every model.
//! `sys` is the only module with `unsafe`.

pub mod claims;
pub mod cli;
pub mod compare;
#[cfg(feature = "criterion")]
pub mod criterion;
pub mod custom;
pub mod fault;
pub mod load;
pub mod loop_timer;
pub mod measure;
pub mod mechanic;
pub mod model;
pub mod registry;
pub mod report;
pub mod runner;
pub mod server;
pub mod stop;
pub mod suite;
pub mod sys;
pub mod workload;

/// The git commit this binary was built from (set by build.rs), or "unknown".
pub fn build_commit() -> &'static str {
    option_env!("CONCBENCH_COMMIT").unwrap_or("unknown")
}
