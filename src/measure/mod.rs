//! Measurement: the shared counters, the start gate, latency histograms, rusage deltas, the
//! noise guard and the machine description live here; only `machine` exists so far.

pub mod machine;
