//! The canonical result struct: every exporter (JSON, CSV, the summary table, reports) reads
//! [`Results`], nothing else. Serialized as `results.json`; the schema is versioned and
//! documented field by field in `results/README.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::measure::machine::Machine;
use crate::measure::noise::Noise;
use crate::model::{DriverKind, Load, Pin, UnitKind};

/// Version of the results.json schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// One run of a suite.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Schema version of this file.
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// Where it ran.
    pub machine: Machine,
    /// Warnings about the machine (VM, SMT, governor, debug build).
    pub machine_warnings: Vec<String>,
    /// What ran.
    pub suite: SuiteInfo,
    /// Unix time (seconds) the run started.
    pub started_unix: u64,
    /// Unix time (seconds) of the last write.
    pub updated_unix: u64,
    /// True once every cell finished every repeat.
    pub complete: bool,
    /// True when the run was interrupted before finishing.
    pub interrupted: bool,
    /// One entry per cell of the matrix, in suite order.
    pub cells: Vec<CellResult>,
    /// One entry per OS mechanic of the suite, in suite order.
    #[serde(default)]
    pub mechanics: Vec<MechanicResult>,
    /// One entry per server cell of the suite, in suite order.
    #[serde(default)]
    pub servers: Vec<ServerResult>,
}

/// The tool that wrote the results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// "concbench".
    pub name: String,
    /// Crate version.
    pub version: String,
    /// Git commit it was built from.
    pub commit: String,
}

/// The suite that ran.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuiteInfo {
    /// Suite name.
    pub name: String,
    /// Suite file path as given.
    pub file: String,
    /// What the suite shows.
    pub description: String,
    /// Warmup before each window, nanoseconds.
    pub warmup_ns: u64,
    /// Measured window, nanoseconds.
    pub duration_ns: u64,
    /// Windows per cell.
    pub repeats: u32,
    /// Noise threshold (share of the machine, 0..1).
    pub noise_threshold: f64,
    /// The spin kernel's ns per iteration, measured once at the start of the run; every
    /// calibrated op of the run used it.
    pub spin_ns_per_iteration: f64,
}

/// Status of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Not run yet.
    Pending,
    /// Every repeat so far ran and measured.
    Ok,
    /// A repeat failed: see `error`.
    Failed,
    /// A repeat exceeded its time budget and was killed.
    TimedOut,
}

/// Median and range of a figure over repeats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median over repeats.
    pub median: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// Median, min and max of `v` (zeros when empty).
    pub fn of(v: &[f64]) -> Spread {
        if v.is_empty() {
            return Spread::default();
        }
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        let median = if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        };
        Spread {
            median,
            min: s[0],
            max: s[n - 1],
        }
    }
}

/// Latency percentiles in nanoseconds, from HdrHistogram (3 significant digits), merged over
/// every worker and repeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest recorded.
    pub max: u64,
    /// Mean.
    pub mean: f64,
    /// Ops recorded.
    pub count: u64,
}

/// Context switches per op, from the workers' `getrusage(RUSAGE_THREAD)` over their windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Switches {
    /// Voluntary (blocked: I/O, sleep, futex).
    pub voluntary: f64,
    /// Involuntary (preempted).
    pub involuntary: f64,
}

/// CPU nanoseconds per op, from the workers' `getrusage(RUSAGE_THREAD)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuPerOp {
    /// User mode.
    pub user: f64,
    /// Kernel mode.
    pub sys: f64,
}

/// One measured window of a cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Repeat index (0-based).
    pub repeat: u32,
    /// Ops completed in the window (sum of the shared counters' deltas).
    pub ops: u64,
    /// Window length, nanoseconds (host clock).
    pub window_ns: u64,
    /// ops / window.
    pub ops_per_sec: f64,
    /// Each worker's ops/s in the window.
    pub per_worker_ops_per_sec: Vec<f64>,
    /// What the noise guard saw.
    pub noise: Noise,
    /// What an injected fault did in this window (cells with a `fault` parameter only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultOutcome>,
    /// This window's own latency percentiles (the cell's `latency_ns` merges every window),
    /// so `concbench compare` can test latency changes against the spread over windows.
    /// Absent in files written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ns: Option<Latency>,
}

/// What happened to the run when worker 0 failed on purpose (`fault = "kind@K"`).
///
/// Times are from `CLOCK_MONOTONIC`, taken by the failing worker right before it faults (the
/// fault instant), by the cell host (window edges, reap, fork) and by the replacement worker
/// (its first completed op).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultOutcome {
    /// The fault: `panic`, `abort`, `segv`, `kill9` or `hang`.
    pub kind: String,
    /// K: the fault fires when worker 0 completes its K-th op of the measured window (counted
    /// by the worker from its first op that completes in the window); that op is never counted.
    pub at_op: u64,
    /// The failing worker's index (always 0).
    pub worker: usize,
    /// False when worker 0 never reached op K inside the window (the rest is then empty).
    pub fired: bool,
    /// What the fault did: `worker-replaced` (the worker process died and the cell host forked
    /// a replacement, as Nginx's master does), `worker-lost` (the worker thread or loop ended,
    /// its process lived, nobody replaced it), `worker-hung` (it blocked forever and was killed
    /// after the window), `process-lost` (the whole cell host process died with it) or
    /// `not-fired`.
    pub effect: String,
    /// True when the fault took the whole process holding the workers down (thread models with
    /// abort, segv, kill9; a hang that only the watchdog ended).
    pub process_lost: bool,
    /// How the failed worker or process ended, as the host or harness saw it ("signal 9
    /// (SIGKILL)", "exit 101", "thread panicked: …").
    pub exit: Option<String>,
    /// True when some worker completed ops after the fault instant (in the window).
    pub run_continued: bool,
    /// True when every worker other than the failed one completed ops after the fault; None
    /// when there is no other worker (event-loop).
    pub others_kept_running: Option<bool>,
    /// Ops (all workers) completed in the window before the fault instant.
    pub ops_before: u64,
    /// Ops (all workers, replacement included) completed in the window after the fault
    /// instant. 0 when the process was lost.
    pub ops_after: u64,
    /// Ops in flight in the lost workers: one per task of each lost worker (in a closed loop
    /// every task always has exactly one op issued and unfinished; the faulting op is one of
    /// them). Lost workers: worker 0, or every worker when the process was lost.
    pub ops_in_flight_lost: u64,
    /// Ops lost = `ops_in_flight_lost` + each lost worker's shortfall while it was down: its
    /// own pre-fault rate (its window ops before the fault ÷ window time before the fault) ×
    /// its downtime (fault instant → the replacement's first op, or → the window's end when
    /// nothing replaced it).
    pub ops_lost: f64,
    /// Nanoseconds from the fault instant to the end of the failed worker's downtime (see
    /// `ops_lost`), clamped to the window.
    pub downtime_ns: u64,
    /// Nanoseconds from the fault instant until the host had reaped the dead worker process.
    pub reaped_after_ns: Option<u64>,
    /// Nanoseconds from the fault instant until the host's fork of the replacement returned.
    pub forked_after_ns: Option<u64>,
    /// Respawn time: nanoseconds from the fault instant to the replacement's first completed
    /// op (it rebuilt its tasks and counts on into the same shared counter). None: not
    /// replaced within the window.
    pub respawn_ns: Option<u64>,
    /// Ops the replacement worker completed in the window.
    pub replacement_ops: u64,
    /// Process id of the replacement worker.
    pub replacement_pid: Option<i32>,
    /// Each worker's throughput before and after the fault instant.
    pub workers: Vec<WorkerFaultView>,
}

/// One worker's view of a fault: its ops/s in the window before and after the fault instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerFaultView {
    /// Worker index.
    pub worker: usize,
    /// True for the worker that faulted (after = its replacement's ops).
    pub failed: bool,
    /// Its ops ÷ window time before the fault instant.
    pub ops_per_sec_before: f64,
    /// Its ops ÷ window time after the fault instant (0 when the process was lost).
    pub ops_per_sec_after: f64,
    /// True when it completed ops after the fault instant.
    pub kept_running: bool,
}

/// Where a worker ran, as the kernel reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerPlacement {
    /// Worker index.
    pub worker: usize,
    /// Process id (distinct per worker for process models, shared for thread models).
    pub pid: i32,
    /// Thread id.
    pub tid: i32,
    /// Core the harness assigned, if pinned.
    pub assigned_core: Option<usize>,
    /// Cores the kernel allowed, read back after pinning.
    pub allowed_cpus: Vec<usize>,
    /// Core it was on when it stopped.
    pub last_cpu: i32,
    /// Tasks it ran.
    pub tasks: usize,
    /// The worker process's own resident memory after the window (process workers only:
    /// thread workers share the cell host's address space, whose memory is the cell's).
    pub rss_bytes: Option<u64>,
    /// The worker process's own proportional memory (shared copy-on-write pages divided among
    /// the processes sharing them).
    pub pss_bytes: Option<u64>,
}

/// Everything measured for one cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CellResult {
    /// `workload/params/model/wN/tN/pin/load`.
    pub id: String,
    /// Workload id.
    pub workload: String,
    /// Parameters, formatted with units.
    pub params: BTreeMap<String, String>,
    /// Values the workload resolved when prepared (calibrated iterations, server address).
    pub resolved: BTreeMap<String, String>,
    /// Model id.
    pub model: String,
    /// Thread or process.
    pub unit: UnitKind,
    /// Blocking or loop.
    pub driver: DriverKind,
    /// Workers (W).
    pub workers: usize,
    /// Tasks (T).
    pub tasks: usize,
    /// Pinning.
    pub pin: Pin,
    /// Load shape.
    pub load: Load,
    /// Pending, ok, failed or timed-out.
    pub status: Status,
    /// What went wrong, when status is failed or timed-out.
    pub error: Option<String>,
    /// Windows measured so far.
    pub repeats_done: u32,
    /// Throughput over repeats (ops/s).
    pub ops_per_sec: Spread,
    /// Slowest and fastest worker's ops/s over all repeats.
    pub per_worker_ops_per_sec: Spread,
    /// The W=1 cell of the same series × W: perfect linear scaling (None without a W=1 cell).
    pub linear_reference_ops_per_sec: Option<f64>,
    /// ops_per_sec.median / linear reference.
    pub scaling_efficiency: Option<f64>,
    /// Latency percentiles.
    pub latency_ns: Latency,
    /// Context switches per op.
    pub ctx_switches_per_op: Switches,
    /// CPU time per op.
    pub cpu_ns_per_op: CpuPerOp,
    /// Minor page faults per op.
    pub minor_faults_per_op: f64,
    /// Resident memory of the cell (host process plus worker processes), bytes, median over repeats.
    pub rss_bytes: u64,
    /// Proportional memory of the cell (COW pages split among sharers), bytes.
    pub pss_bytes: u64,
    /// rss_bytes / workers.
    pub rss_per_worker_bytes: u64,
    /// pss_bytes / workers.
    pub pss_per_worker_bytes: u64,
    /// Where each worker ran (last repeat).
    pub placement: Vec<WorkerPlacement>,
    /// Worst noise over repeats (highest other-CPU share), with total re-runs.
    pub noise: Noise,
    /// Every measured window.
    pub samples: Vec<Sample>,
    /// Things a reader must know about this cell (oversubscribed, unpinned, noisy).
    pub warnings: Vec<String>,
    /// What the injected fault did in the last repeat (cells with a `fault` parameter only;
    /// every repeat's outcome is in `samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultOutcome>,
}

/// One measured window of an OS mechanic.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MechanicSample {
    /// Repeat index (0-based).
    pub repeat: u32,
    /// Iterations run in the window.
    pub iters: u64,
    /// Their total time, nanoseconds.
    pub elapsed_ns: u64,
    /// elapsed / iters.
    pub ns_per_iter: f64,
    /// Context switches of every participant per iteration.
    pub switches_per_iter: f64,
    /// The mechanic's further figures.
    pub extra: BTreeMap<String, f64>,
}

/// Everything measured for one OS mechanic (a context switch, a spawn, an IPC message …).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MechanicResult {
    /// `mechanic/params`.
    pub id: String,
    /// Mechanic id.
    pub mechanic: String,
    /// Parameters, formatted.
    pub params: BTreeMap<String, String>,
    /// What one iteration is ("round trip", "fork + _exit + waitpid").
    pub iteration: String,
    /// Pending, ok, failed or timed-out.
    pub status: Status,
    /// What went wrong.
    pub error: Option<String>,
    /// Windows measured so far.
    pub repeats_done: u32,
    /// Nanoseconds per iteration over repeats.
    pub ns_per_iter: Spread,
    /// Context switches per iteration over repeats.
    pub switches_per_iter: Spread,
    /// Each further figure over repeats.
    pub extra: BTreeMap<String, Spread>,
    /// Every window.
    pub samples: Vec<MechanicSample>,
}

/// One measured window of a server cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerWindow {
    /// Repeat index.
    pub repeat: u32,
    /// Responses per second the generator measured.
    pub requests_per_sec: f64,
    /// Errors the generator counted in the window (all kinds).
    pub errors: u64,
    /// Responses the generator received over the whole run (warmup, window, drain).
    pub generator_responses: u64,
    /// Requests the server answered over the same run (the generator's count can be lower
    /// only by responses still in flight when it stopped reading).
    pub server_requests: u64,
}

/// Everything measured for one server cell.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerResult {
    /// `server/arch/wW/cC/handler/load`.
    pub id: String,
    /// Architecture id.
    pub arch: String,
    /// Workers.
    pub workers: usize,
    /// Keep-alive connections of the generator.
    pub connections: usize,
    /// Handler (`none` or `workload:params`).
    pub handler: String,
    /// Closed loop or open loop at a rate.
    pub load: Load,
    /// Pending, ok, failed or timed-out.
    pub status: Status,
    /// What went wrong.
    pub error: Option<String>,
    /// Windows measured so far.
    pub repeats_done: u32,
    /// Responses per second over repeats.
    pub requests_per_sec: Spread,
    /// Latency from the intended send time (no coordinated omission), last window.
    pub latency_ns: Latency,
    /// Latency from the actual send time, last window.
    pub latency_uncorrected_ns: Latency,
    /// Errors in the windows, summed over repeats.
    pub errors: u64,
    /// Server context switches per request answered in the window (every thread of every
    /// server process).
    pub ctx_switches_per_request: Switches,
    /// Server CPU per request, ns (user + system, from schedstat).
    pub cpu_ns_per_request: f64,
    /// Requests each worker answered (last window): the balance across workers.
    pub per_worker_requests: Vec<u64>,
    /// Smallest worker's share of requests ÷ largest's (1.0 = perfectly even).
    pub balance: f64,
    /// Server processes and threads at the end of the last window.
    pub server_processes: u64,
    /// Threads over all server processes.
    pub server_threads: u64,
    /// RSS of the server processes, bytes (last window).
    pub rss_bytes: u64,
    /// PSS of the server processes, bytes (last window).
    pub pss_bytes: u64,
    /// The generator's CPU share (0..1 per thread) in the last window.
    pub generator_cpu: f64,
    /// Generator and placement warnings (the generator may be the bottleneck; shared cores).
    pub warnings: Vec<String>,
    /// Every window.
    pub samples: Vec<ServerWindow>,
}
