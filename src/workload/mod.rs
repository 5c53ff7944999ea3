//! Workloads: what ONE operation is, independent of how it is run.
//!
//! A workload knows nothing about processes, threads or loops, and never counts or times
//! itself: the model's driver steps its tasks and the harness counts and times the ops. So the
//! same task code runs unchanged under every model and the comparison is fair by construction.
//!
//! A task is a small state machine: [`Task::step`] does one bounded piece of work and returns
//! a [`Step`]: an op finished, the task waits for an fd, or it sleeps until a deadline. A
//! blocking driver turns `Wait` into a blocking `poll` of that one fd and `Sleep` into
//! `nanosleep`; the loop driver registers the fd with epoll (mio) and keeps a timer heap.
//! Tasks built in [`Mode::Blocking`] may block inside `step` instead (a blocking `read`), which
//! is what a thread-per-connection server does; disk I/O blocks in either mode, because epoll
//! cannot make it non-blocking. Under the loop that stalls every task: a real result to show.
//!
//! Adding a workload: one file (or an entry in a family's file) plus one line in [`REGISTRY`].

pub mod cpu;
pub mod downstream;
pub mod io;
pub mod mixed;
pub mod param;

use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Instant;

pub use param::{ParamDef, Params, Unit, Value};

/// What happened in one call of [`Task::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Exactly one operation finished; the harness records its latency. Step again for the next.
    Done,
    /// Would block: step again when `fd` is ready for `interest` (non-blocking mode only).
    Wait {
        /// The file descriptor to wait on (owned by the task; stable while it waits).
        fd: RawFd,
        /// Readiness wanted.
        interest: Interest,
    },
    /// Nothing to do until `until` (think time, a simulated downstream delay).
    Sleep {
        /// When to step again.
        until: Instant,
    },
}

/// Readiness a waiting task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (data or EOF).
    Read,
    /// Writable.
    Write,
}

/// Whether a task may block inside `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One task at a time per worker: `step` may block in a syscall (blocking sockets).
    Blocking,
    /// Many tasks per worker on an event loop: `step` must return `Wait` instead of blocking.
    NonBlocking,
}

/// Workload family, for listings and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Burns CPU; no syscalls in the op.
    Cpu,
    /// Waits on a timer, a socket or the disk.
    Io,
    /// CPU and I/O composed.
    Mixed,
}

/// Errors of workloads: bad parameters, failed setup, failed ops.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// A parameter is out of range.
    #[error("parameter `{name}`: {reason}")]
    Param {
        /// Parameter name.
        name: &'static str,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// A syscall failed while preparing or running the workload.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, with a message that says what to do.
    #[error("{0}")]
    Other(String),
}

impl WorkloadError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        WorkloadError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What the harness gives a workload when it prepares a cell.
#[derive(Debug, Clone)]
pub struct PrepareEnv {
    /// A private scratch directory for generated files; removed after the cell.
    pub scratch: PathBuf,
    /// Total tasks the cell will run (e.g. to size a downstream server).
    pub tasks: usize,
    /// The spin kernel's nanoseconds per iteration, measured once per run by the runner, so
    /// every calibrated op (`spin`, `request`'s parse and render) has the same iteration count
    /// in every cell and model of the run.
    pub spin_ns_per_iter: f64,
}

impl PrepareEnv {
    /// An environment for unit tests and one-off use: measures the spin kernel now.
    pub fn new(scratch: PathBuf, tasks: usize) -> Self {
        Self {
            scratch,
            tasks,
            spin_ns_per_iter: cpu::spin_ns_per_iter(),
        }
    }
}

/// What a task knows about where it runs (only for seeding and naming files: a task must
/// behave the same under every model).
#[derive(Debug, Clone, Copy)]
pub struct TaskCtx {
    /// Task index in 0..tasks, unique in the cell.
    pub task: usize,
    /// Blocking or non-blocking I/O.
    pub mode: Mode,
    /// Seed for any randomness (derived from the task index: same sequence under every model).
    pub seed: u64,
}

/// One unit of concurrent work: a connection, a client, a job stream.
pub trait Task {
    /// Does one bounded piece of work. Must not block in [`Mode::NonBlocking`] except on disk
    /// I/O, which cannot be made non-blocking.
    fn step(&mut self) -> Result<Step, WorkloadError>;
}

/// A workload instance for one cell, with its parameters resolved.
///
/// Created and prepared once per cell in the cell host, before any worker exists; forked
/// workers inherit it, threads share it.
pub trait Workload: Send + Sync {
    /// Calibrates, generates files, starts servers. Runs before workers are created, outside
    /// the measured window.
    fn prepare(&mut self, _env: &PrepareEnv) -> Result<(), WorkloadError> {
        Ok(())
    }

    /// Builds one task; called inside the worker (thread or process) that runs it.
    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError>;

    /// Processes the workload started (a downstream server): the noise guard subtracts their
    /// CPU time, which belongs to the run.
    fn helper_pids(&self) -> Vec<i32> {
        Vec::new()
    }

    /// Values resolved during `prepare` worth recording (e.g. calibrated iterations).
    fn resolved(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// A registry entry: one workload kind.
pub struct WorkloadDef {
    /// Id used in suites, cell ids and the CLI (snake_case).
    pub id: &'static str,
    /// Family.
    pub kind: Kind,
    /// One line: what ONE op is.
    pub op: &'static str,
    /// Declared parameters.
    pub params: &'static [ParamDef],
    /// Builds an instance from resolved params; checks ranges.
    pub build: fn(&Params) -> Result<Box<dyn Workload>, WorkloadError>,
}

impl std::fmt::Debug for WorkloadDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadDef").field("id", &self.id).finish()
    }
}

/// Every workload concbench knows. Tests, benches, `list` and reports iterate this.
pub static REGISTRY: &[&WorkloadDef] = &[
    &cpu::SPIN,
    &cpu::HASH,
    &cpu::PRIMES,
    &cpu::MATMUL,
    &cpu::JSON,
    &io::SLEEP,
    &downstream::DOWNSTREAM,
    &io::FILE_READ,
    &io::FSYNC,
    &mixed::REQUEST,
];

/// Looks a workload up by id; the error lists the known ids.
pub fn find(id: &str) -> Result<&'static WorkloadDef, String> {
    crate::registry::find(REGISTRY.iter().copied(), |d| d.id, "workload", id)
}

/// Resolves raw params and builds the workload in one go.
pub fn build(
    def: &WorkloadDef,
    raw: &std::collections::BTreeMap<String, String>,
) -> Result<(Params, Box<dyn Workload>), String> {
    let params = Params::resolve_workload(def.params, raw)?;
    let w = (def.build)(&params).map_err(|e| e.to_string())?;
    Ok((params, w))
}

/// Runs `task` in blocking mode until it has finished `ops` operations (sleeping through
/// `Sleep`, polling through `Wait`). For unit tests of workload kernels and for calibration.
pub fn run_ops(task: &mut dyn Task, ops: u64) -> Result<(), WorkloadError> {
    let mut done = 0;
    while done < ops {
        match task.step()? {
            Step::Done => done += 1,
            Step::Sleep { until } => {
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
            Step::Wait { fd, interest } => wait_fd(fd, interest, None)
                .map_err(|e| WorkloadError::io("poll", e))
                .map(|_| ())?,
        }
    }
    Ok(())
}

/// Blocks until `fd` is ready for `interest` or `timeout` passes; true when ready.
pub fn wait_fd(
    fd: RawFd,
    interest: Interest,
    timeout: Option<std::time::Duration>,
) -> std::io::Result<bool> {
    crate::sys::fd::poll_one(fd, interest == Interest::Write, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_ids_are_unique_snake_case_and_build_with_defaults() {
        let mut seen = std::collections::HashSet::new();
        for d in REGISTRY {
            assert!(seen.insert(d.id), "duplicate id {}", d.id);
            assert!(
                d.id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{} is not snake_case",
                d.id
            );
            assert!(!d.op.is_empty(), "{} has no op definition", d.id);
            let p = Params::resolve(d.params, &Default::default())
                .unwrap_or_else(|e| panic!("{}: default params: {e}", d.id));
            (d.build)(&p).unwrap_or_else(|e| panic!("{}: build with defaults: {e}", d.id));
        }
    }

    #[test]
    fn unknown_workload_lists_known_ones() {
        let e = find("spinn").err().unwrap();
        assert!(e.contains("spin") && e.contains("hash"), "{e}");
    }
}
