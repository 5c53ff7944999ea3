//! The per-worker op recorder: the harness's side of every op boundary.
//!
//! Drivers call [`Recorder::op_done`] when a task reports `Step::Done`, passing the time the op
//! was issued and the time it finished (one clock read per op). The recorder publishes the
//! worker's running op count to its shared counter, and while the phase is `MEASURE` records
//! latency in an HdrHistogram and counts the op in the worker's own window. On the first op it
//! sees in `MEASURE` and on seeing `STOP` it snapshots `getrusage(RUSAGE_THREAD)`, so CPU time
//! and context switches are the kernel's figures for exactly the span the worker measured.
//!
//! # Timing model
//! Inside an op's latency: everything from `issued` (the end of the task's previous op in a
//! closed loop, or the op's due time in an open loop) to the clock read after `Step::Done`:
//! queueing behind other tasks of the same worker, the op's work, its waits and the driver's
//! dispatch. Outside: worker creation, task setup, warmup, and the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::control::{MEASURE, STOP};

/// Recording stops once the phase passes MEASURE (DRAIN or STOP).
const AFTER_MEASURE: u64 = MEASURE + 1;
use crate::sys::{Rusage, thread_rusage};

/// Latencies are recorded in nanoseconds with 3 significant digits.
pub const SIGFIGS: u8 = 3;

/// A new auto-resizing latency histogram (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    let mut h = Histogram::new(SIGFIGS).expect("valid sigfigs");
    h.auto(true);
    h
}

/// What a worker measured in its own view of the window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowStats {
    /// Ops the worker completed while it saw the MEASURE phase.
    pub ops: u64,
    /// Nanoseconds from the worker's first to its last op boundary in MEASURE.
    pub span_ns: u64,
    /// getrusage(RUSAGE_THREAD) difference across that span.
    pub rusage: Rusage,
}

/// Records op boundaries for one worker.
pub struct Recorder<'a> {
    phase: &'a AtomicU64,
    counter: &'a AtomicU64,
    total: u64,
    measuring: bool,
    begin: Option<(Instant, Rusage)>,
    end: Option<(Instant, Rusage)>,
    window_ops: u64,
    hist: Histogram<u64>,
    fault: Option<crate::fault::FaultHook<'a>>,
}

impl<'a> Recorder<'a> {
    /// A recorder writing to `counter` and obeying `phase`.
    pub fn new(phase: &'a AtomicU64, counter: &'a AtomicU64) -> Self {
        Self {
            phase,
            counter,
            total: 0,
            measuring: false,
            begin: None,
            end: None,
            window_ops: 0,
            hist: new_histogram(),
            fault: None,
        }
    }

    /// Arms fault injection (fault cells only): the worker with a plan fails at its K-th op
    /// of the window, before counting it; a replacement continues its predecessor's count in
    /// the shared counter and marks its first completed op on the board.
    pub fn with_fault(mut self, hook: crate::fault::FaultHook<'a>) -> Self {
        if hook.replacement {
            self.total = self.counter.load(Ordering::Relaxed);
        }
        self.fault = Some(hook);
        self
    }

    /// The fault point of every op of a fault cell (kept out of line: other cells never get
    /// here).
    #[cold]
    #[inline(never)]
    fn fault_point(&mut self) {
        let Some(h) = self.fault else { return };
        if h.replacement {
            h.board.replacement_first_op(self.total + 1);
            self.fault = None;
        } else if let Some(plan) = h.plan
            && self.phase.load(Ordering::Relaxed) == MEASURE
            && self.window_ops + 1 == plan.at
        {
            h.board.record_fault(plan.kind, h.control);
            crate::fault::fire(plan.kind, plan.at);
        }
    }

    /// Records one finished op. Returns false when the worker must stop.
    #[inline]
    pub fn op_done(&mut self, issued: Instant, now: Instant) -> bool {
        if self.fault.is_some() {
            self.fault_point();
        }
        self.total += 1;
        self.counter.store(self.total, Ordering::Relaxed);
        let phase = self.phase.load(Ordering::Relaxed);
        if phase == MEASURE {
            if !self.measuring {
                self.start_window(now);
            }
            self.window_ops += 1;
            let ns = now.saturating_duration_since(issued).as_nanos() as u64;
            // Auto-resizing: fails only on allocation failure, which we cannot report here.
            let _ = self.hist.record(ns.max(1));
            true
        } else if phase >= AFTER_MEASURE {
            self.finish(now);
            phase < STOP
        } else {
            true
        }
    }

    /// Checks the phase without an op (a driver that is idle or waiting). False: stop now.
    #[inline]
    pub fn keep_going(&mut self) -> bool {
        let phase = self.phase.load(Ordering::Relaxed);
        if phase == MEASURE && !self.measuring {
            self.start_window(Instant::now());
        }
        if phase >= AFTER_MEASURE {
            self.finish(Instant::now());
        }
        phase < STOP
    }

    fn start_window(&mut self, now: Instant) {
        self.measuring = true;
        self.begin = Some((now, thread_rusage()));
    }

    fn finish(&mut self, now: Instant) {
        if self.measuring && self.end.is_none() {
            self.end = Some((now, thread_rusage()));
        }
    }

    /// Ops counted in all phases (a replacement includes its predecessor's).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The window figures and the latency histogram. Call after the driver returned.
    pub fn into_parts(mut self) -> (WindowStats, Histogram<u64>) {
        self.finish(Instant::now());
        let stats = match (self.begin, self.end) {
            (Some((t0, r0)), Some((t1, r1))) => WindowStats {
                ops: self.window_ops,
                span_ns: t1.saturating_duration_since(t0).as_nanos() as u64,
                rusage: r1.since(&r0),
            },
            _ => WindowStats::default(),
        };
        (stats, self.hist)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::control::{Control, DRAIN, WARMUP};

    #[test]
    fn counts_only_measure_phase_in_window() {
        let c = Control::new(1).unwrap();
        let mut r = Recorder::new(c.phase_word(), c.counter(0));
        let t = Instant::now();
        c.set_phase(WARMUP);
        assert!(r.op_done(t, Instant::now()));
        c.set_phase(MEASURE);
        assert!(r.op_done(t, Instant::now()));
        assert!(r.op_done(t, Instant::now()));
        c.set_phase(DRAIN);
        assert!(r.op_done(t, Instant::now()), "drain keeps running");
        c.set_phase(STOP);
        assert!(!r.op_done(t, Instant::now()));
        assert_eq!(c.counts(), vec![5]);
        let (w, h) = r.into_parts();
        assert_eq!(w.ops, 2);
        assert_eq!(h.len(), 2);
    }
}
