//! Measurement: the shared control block and start gate, the per-worker op recorder
//! (counters, HdrHistogram latency, `getrusage` window deltas), the noise guard and machine
//! information. Workloads never measure themselves; everything measured lives here.

pub mod control;
pub mod machine;
pub mod noise;
pub mod recorder;
