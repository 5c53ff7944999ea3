//! The worker body every model runs, thread or forked process alike: pin, read the affinity
//! back from the kernel, build this worker's tasks, report ready, wait at the start gate, run
//! the driver, and report. A worker does not know whether it is a process or a thread.

use std::ops::Range;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{DriverKind, Load, blocking, event_loop};
use crate::measure::control::{Control, Gate};
use crate::measure::recorder::{Recorder, WindowStats};
use crate::sys::{allowed_cpus, current_cpu, pin_current};
use crate::workload::{Mode, Task, TaskCtx, Workload};

/// Everything one worker needs.
#[derive(Clone)]
pub struct WorkerSpec<'a> {
    /// Worker index in 0..W.
    pub index: usize,
    /// Indices of the tasks this worker runs.
    pub tasks: Range<usize>,
    /// Tasks in the whole cell (for the open-loop schedule).
    pub total_tasks: usize,
    /// Core to pin to, if any.
    pub core: Option<usize>,
    /// Blocking or loop.
    pub driver: DriverKind,
    /// Load shape.
    pub load: Load,
    /// The prepared workload.
    pub workload: &'a dyn Workload,
    /// Shared phase word and counters.
    pub control: &'a Control,
    /// Start gate.
    pub gate: &'a Gate,
    /// Fault injection (fault cells only; see `crate::fault`).
    pub fault: Option<crate::fault::FaultHook<'a>>,
}

/// What a worker reports when it stops (sent through a pipe by forked workers).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport {
    /// Worker index.
    pub worker: usize,
    /// Process id the worker ran in.
    pub pid: i32,
    /// Thread id the worker ran on.
    pub tid: i32,
    /// Core the harness assigned, if pinned.
    pub assigned_core: Option<usize>,
    /// Cores the kernel allowed the worker to run on, read back after pinning.
    pub allowed_cpus: Vec<usize>,
    /// Core the worker was on when it stopped (`sched_getcpu`).
    pub last_cpu: i32,
    /// Number of tasks it ran.
    pub tasks: usize,
    /// Ops completed in every phase.
    pub total_ops: u64,
    /// Ops, span and rusage in the worker's view of the measured window.
    pub window: WindowStats,
    /// Set when the worker could not pin, build its tasks or run an op.
    pub error: Option<String>,
    /// Latency histogram (HdrHistogram V2 serialization, nanoseconds).
    pub histogram: Vec<u8>,
}

/// Seed for task `t`: the same under every model.
pub fn task_seed(t: usize) -> u64 {
    (t as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The open-loop schedule of one worker's tasks.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Load shape.
    pub load: Load,
    /// Global index of the worker's first task.
    pub first_task: usize,
    /// Tasks in the whole cell.
    pub total_tasks: usize,
}

impl Schedule {
    /// Time between two ops of one task (open loop only).
    pub fn interval(&self) -> Option<Duration> {
        match self.load {
            Load::Closed => None,
            Load::Open { rate } => Some(Duration::from_secs_f64(self.total_tasks as f64 / rate)),
        }
    }

    /// When local task `i`'s first op is due: task k of the cell is offset by k / rate, so the
    /// cell's arrivals are evenly spaced.
    pub fn first_due(&self, start: Instant, i: usize) -> Instant {
        match self.load {
            Load::Closed => start,
            Load::Open { rate } => {
                start + Duration::from_secs_f64((self.first_task + i) as f64 / rate)
            }
        }
    }
}

/// Marks the worker ready when dropped, unless it already did: a worker that panics while
/// setting up still counts as ready, so the host never waits out its setup timeout for it.
struct ReadyGuard<'a> {
    control: &'a Control,
    marked: bool,
}

impl ReadyGuard<'_> {
    fn mark(&mut self) {
        if !self.marked {
            self.marked = true;
            self.control.mark_ready();
        }
    }
}

impl Drop for ReadyGuard<'_> {
    fn drop(&mut self) {
        self.mark();
    }
}

/// Runs one worker to completion and reports.
pub fn run_worker(spec: &WorkerSpec<'_>) -> WorkerReport {
    let mut ready = ReadyGuard {
        control: spec.control,
        marked: false,
    };
    let mut report = WorkerReport {
        worker: spec.index,
        pid: nix::unistd::getpid().as_raw(),
        tid: nix::unistd::gettid().as_raw(),
        assigned_core: spec.core,
        allowed_cpus: Vec::new(),
        last_cpu: -1,
        tasks: spec.tasks.len(),
        total_ops: 0,
        window: WindowStats::default(),
        error: None,
        histogram: Vec::new(),
    };
    let pinned = match spec.core {
        Some(core) => pin_current(core),
        None => Ok(()),
    };
    report.allowed_cpus = allowed_cpus();
    let mode = match spec.driver {
        DriverKind::Blocking => Mode::Blocking,
        DriverKind::Loop => Mode::NonBlocking,
    };
    let tasks: Result<Vec<Box<dyn Task>>, String> = pinned.and_then(|()| {
        spec.tasks
            .clone()
            .map(|t| {
                spec.workload
                    .task(&TaskCtx {
                        task: t,
                        mode,
                        seed: task_seed(t),
                    })
                    .map_err(|e| format!("building task {t}: {e}"))
            })
            .collect()
    });
    ready.mark();
    let mut tasks = match tasks {
        Ok(t) => t,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    if let Err(e) = spec.gate.wait() {
        report.error = Some(format!("start gate: {e}"));
        return report;
    }
    let schedule = Schedule {
        load: spec.load,
        first_task: spec.tasks.start,
        total_tasks: spec.total_tasks,
    };
    let mut rec = Recorder::new(spec.control.phase_word(), spec.control.counter(spec.index));
    if let Some(hook) = spec.fault {
        rec = rec.with_fault(hook);
    }
    let run = match spec.driver {
        DriverKind::Blocking => blocking::run(&mut tasks, &schedule, &mut rec),
        DriverKind::Loop => event_loop::run(&mut tasks, &schedule, &mut rec),
    };
    report.last_cpu = current_cpu();
    if let Err(e) = run {
        report.error = Some(e);
    }
    report.total_ops = rec.total();
    let (window, hist) = rec.into_parts();
    report.window = window;
    let mut bytes = Vec::new();
    use hdrhistogram::serialization::Serializer;
    if let Err(e) = hdrhistogram::serialization::V2Serializer::new().serialize(&hist, &mut bytes) {
        report
            .error
            .get_or_insert(format!("serializing histogram: {e}"));
    }
    report.histogram = bytes;
    drop(tasks);
    report
}
