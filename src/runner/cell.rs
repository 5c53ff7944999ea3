//! One measured window of one cell, run inside the cell host.
//!
//! The harness forks a fresh, single-threaded cell host per window; it prepares the workload
//! (calibration, files, downstream server), creates the workers (threads or forked
//! processes), drives the phases, and sends one [`RunSample`] back. Forking from a
//! single-threaded host is what makes the process models fork-safe, and a crash in any model
//! costs one cell, not the run.
//!
//! # Timing model
//! Outside the window: workload preparation, worker creation, task setup (connects, file
//! opens), the start gate and the warmup. The window opens when the host sets MEASURE and
//! snapshots the shared counters, and closes when it snapshots them again `duration` later:
//! throughput is the counters' difference over the host's clock. Latency and rusage come from
//! each worker's own view of the same phase (within one op of the host's edges). Memory is
//! read right after the window (phase DRAIN), from live workers, before they stop.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::fault::outcome;
use crate::fault::{self, FAULT_WORKER, FaultBoard, FaultHook};
use crate::measure::control::{Control, DRAIN, Gate, MEASURE, WARMUP};
use crate::measure::noise::{self, Noise, NoiseConfig};
use crate::measure::recorder::new_histogram;
use crate::model::unit::{Supervise, run_units};
use crate::model::worker::WorkerSpec;
use crate::model::{UnitKind, tasks_of};
use crate::report::result::WorkerPlacement;
use crate::suite::Cell;
use crate::sys::procfs;
use crate::sys::{Rusage, thread_rusage};
use crate::workload::{self, PrepareEnv};

/// How long workers may take to build their tasks before the cell fails.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);

/// What one window measured (sent from the cell host to the harness as JSON).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSample {
    /// Window length on the host's clock, nanoseconds.
    pub window_ns: u64,
    /// Each worker's op count in the window (shared counters' deltas).
    pub per_worker_ops: Vec<u64>,
    /// Ops the workers saw complete inside their own view of the window.
    pub worker_window_ops: u64,
    /// Sum of the workers' rusage over their windows.
    pub rusage: Rusage,
    /// RSS of the cell's processes (host + worker processes), bytes.
    pub rss_bytes: u64,
    /// PSS of the cell's processes, bytes.
    pub pss_bytes: u64,
    /// Where each worker ran.
    pub placement: Vec<WorkerPlacement>,
    /// Merged latency histogram (V2 serialization).
    pub histogram: Vec<u8>,
    /// What the noise guard saw in the window.
    pub noise: Noise,
    /// Values the workload resolved in prepare.
    pub resolved: BTreeMap<String, String>,
    /// What the injected fault did (fault cells only).
    #[serde(default)]
    pub fault: Option<crate::report::result::FaultOutcome>,
}

impl RunSample {
    /// Ops in the window.
    pub fn ops(&self) -> u64 {
        self.per_worker_ops.iter().sum()
    }
}

/// Phase timings for a window.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Warmup before the window.
    pub warmup: Duration,
    /// The window.
    pub duration: Duration,
}

/// What every window of a run shares: timings, cores, noise settings, scratch space and the
/// run's spin calibration.
#[derive(Debug, Clone)]
pub struct WindowEnv {
    /// Warmup and window lengths.
    pub timing: Timing,
    /// Cores the harness may use, read at start-up before anything was pinned.
    pub cores: Vec<usize>,
    /// Noise guard settings.
    pub noise: NoiseConfig,
    /// Where cell hosts make their scratch directories.
    pub scratch_root: std::path::PathBuf,
    /// Spin kernel ns per iteration, measured once per run.
    pub spin_ns_per_iter: f64,
    /// The suite's `window_timeout`: how long a window may take beyond warmup + duration
    /// (setup and teardown) before the watchdog kills it. None: the defaults.
    pub window_timeout: Option<std::time::Duration>,
}

/// Runs one window of `cell` in this process (the cell host). Errors say which step failed.
/// A fault cell gets a fault board of its own here; the runner maps it before forking the host
/// instead (see [`measure_with`]) so that it outlives a host the fault kills.
pub fn measure_once(cell: &Cell, env: &WindowEnv) -> Result<RunSample, String> {
    match cell.params.fault() {
        None => measure_with(cell, env, None),
        Some(_) => {
            let board = FaultBoard::new(cell.workers)
                .map_err(|e| format!("mapping the fault board: {e}"))?;
            measure_with(cell, env, Some(&board))
        }
    }
}

/// [`measure_once`] with the fault board of a fault cell (None for other cells).
pub fn measure_with(
    cell: &Cell,
    env: &WindowEnv,
    board: Option<&FaultBoard>,
) -> Result<RunSample, String> {
    let fault = cell.params.fault().zip(board);
    let (timing, cores, scratch_root) = (env.timing, &env.cores, &env.scratch_root);
    let mut wl = match &cell.custom {
        Some(make) => make.build(),
        None => workload::build(cell.workload, &cell.params_raw)?.1,
    };
    let scratch = tempfile::Builder::new()
        .prefix("concbench-")
        .tempdir_in(scratch_root)
        .map_err(|e| {
            format!(
                "creating a scratch directory in {}: {e}",
                scratch_root.display()
            )
        })?;
    wl.prepare(&PrepareEnv {
        scratch: scratch.path().to_path_buf(),
        tasks: cell.tasks,
        spin_ns_per_iter: env.spin_ns_per_iter,
    })
    .map_err(|e| format!("preparing workload {}: {e}", cell.workload.id))?;
    let resolved: BTreeMap<String, String> = wl.resolved().into_iter().collect();
    let helpers = wl.helper_pids();

    let w = cell.workers;
    let control = Control::new(w).map_err(|e| format!("mapping shared memory: {e}"))?;
    let gate = Gate::new().map_err(|e| format!("creating the start gate: {e}"))?;
    let specs: Vec<WorkerSpec<'_>> = (0..w)
        .map(|i| WorkerSpec {
            index: i,
            tasks: tasks_of(i, w, cell.tasks),
            total_tasks: cell.tasks,
            core: cell.pin.core_for(i, cores),
            driver: cell.model.driver,
            load: cell.load,
            workload: wl.as_ref(),
            control: &control,
            gate: &gate,
            fault: fault.map(|(spec, board)| FaultHook {
                board,
                control: &control,
                plan: (i == FAULT_WORKER).then_some(spec),
                replacement: false,
            }),
        })
        .collect();

    let (host, reports) = run_units(cell.model.unit, &specs, |sup| {
        host_phases(
            &control,
            &gate,
            sup,
            timing,
            cell.model.unit,
            &helpers,
            fault.map(|f| f.1),
        )
    });
    let host = host?;
    let fired = fault.is_some_and(|(_, b)| b.fired());
    let mut fault_exit = host.deaths.first().map(|(_, how)| how.clone());

    let mut errors = Vec::new();
    let mut sample = RunSample {
        window_ns: host.window.as_nanos() as u64,
        per_worker_ops: host.c1.iter().zip(&host.c0).map(|(a, b)| a - b).collect(),
        rss_bytes: host.rss_bytes,
        pss_bytes: host.pss_bytes,
        resolved,
        ..RunSample::default()
    };
    let mut hist = new_histogram();
    for (w, r) in reports.into_iter().enumerate() {
        match r {
            // The worker that failed on purpose: its loss is the measurement, not an error.
            Err(e) if fired && w == FAULT_WORKER => {
                fault_exit.get_or_insert(e);
            }
            Err(e) => errors.push(e),
            Ok(r) => {
                if let Some(e) = &r.error {
                    errors.push(format!("worker {}: {e}", r.worker));
                }
                sample.worker_window_ops += r.window.ops;
                sample.rusage = sample.rusage.add(&r.window.rusage);
                if !r.histogram.is_empty() {
                    match Deserializer::new().deserialize::<u64, _>(&mut r.histogram.as_slice()) {
                        Ok(h) => {
                            let _ = hist.add(&h);
                        }
                        Err(e) => errors.push(format!("worker {}: bad histogram: {e}", r.worker)),
                    }
                }
                let own = host
                    .per_worker
                    .iter()
                    .find(|(w, _)| *w == r.worker)
                    .map(|(_, m)| *m);
                sample.placement.push(WorkerPlacement {
                    rss_bytes: own.map(|m| m.rss_bytes),
                    pss_bytes: own.map(|m| m.pss_bytes),
                    worker: r.worker,
                    pid: r.pid,
                    tid: r.tid,
                    assigned_core: r.assigned_core,
                    allowed_cpus: r.allowed_cpus,
                    last_cpu: r.last_cpu,
                    tasks: r.tasks,
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    if let Some((spec, board)) = fault {
        sample.fault = Some(outcome::compute(
            &board.view(),
            &outcome::Context {
                spec,
                tasks_per_worker: specs.iter().map(|s| s.tasks.len()).collect(),
                process_lost: false,
                window: timing.duration,
                exit: fault_exit,
            },
        ));
    }
    let own_cpu = sample.rusage.cpu_ns() + host.helper_cpu_ns + host.host_cpu_ns;
    sample.noise = noise::assess(host.machine_cpu, own_cpu, &env.noise);
    sample.histogram = serialize(&hist)?;
    drop(wl);
    drop(scratch);
    Ok(sample)
}

/// Serializes a histogram (V2 format).
pub fn serialize(h: &Histogram<u64>) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut out)
        .map_err(|e| format!("serializing histogram: {e}"))?;
    Ok(out)
}

struct HostOut {
    window: Duration,
    c0: Vec<u64>,
    c1: Vec<u64>,
    machine_cpu: procfs::CpuTimes,
    helper_cpu_ns: u64,
    host_cpu_ns: u64,
    rss_bytes: u64,
    pss_bytes: u64,
    per_worker: Vec<(usize, procfs::Memory)>,
    deaths: Vec<(usize, String)>,
}

fn helpers_cpu(pids: &[i32]) -> u64 {
    pids.iter()
        .filter_map(|&p| procfs::thread_cpu_ns(p).ok())
        .sum()
}

fn host_phases(
    control: &Control,
    gate: &Gate,
    sup: &mut dyn Supervise,
    timing: Timing,
    unit: UnitKind,
    helpers: &[i32],
    board: Option<&FaultBoard>,
) -> Result<HostOut, String> {
    let running = sup.running();
    let deadline = Instant::now() + SETUP_TIMEOUT;
    while control.ready() < control.workers() {
        // A worker process that died (abort, segfault) before it marked ready never will.
        if let Some(dead) = running.iter().find(|r| r.pid > 0 && procfs::is_dead(r.pid)) {
            return Err(format!("worker process {} died while setting up", dead.pid));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} workers finished setting up within {:?}",
                control.ready(),
                control.workers(),
                SETUP_TIMEOUT
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    control.set_phase(WARMUP);
    gate.open();
    std::thread::sleep(timing.warmup);

    let machine = noise::Window::begin();
    let helper0 = helpers_cpu(helpers);
    let host0 = thread_rusage();
    control.set_phase(MEASURE);
    let t0 = Instant::now();
    let c0 = control.counts();
    match board {
        None => std::thread::sleep(timing.duration),
        Some(b) => {
            b.window_start(fault::now_ns(), &c0);
            sup.watch_until(t0 + timing.duration);
        }
    }
    let c1 = control.counts();
    let t1 = Instant::now();
    if let Some(b) = board {
        b.window_end(fault::now_ns(), &c1);
    }
    control.set_phase(DRAIN);
    let machine_cpu = machine.close();
    let helper_cpu_ns = helpers_cpu(helpers).saturating_sub(helper0);
    let host_cpu_ns = thread_rusage().since(&host0).cpu_ns();

    // Memory of the whole cell: the host (which holds thread workers) plus worker processes.
    let (mut rss, mut pss) = (0, 0);
    let mut per_worker = Vec::new();
    if let Ok(m) = procfs::memory(0) {
        rss += m.rss_bytes;
        pss += m.pss_bytes;
    }
    if unit == UnitKind::Process {
        for r in sup.running() {
            if let (Some(w), Ok(m)) = (r.worker, procfs::memory(r.pid)) {
                rss += m.rss_bytes;
                pss += m.pss_bytes;
                per_worker.push((w, m));
            }
        }
    }
    Ok(HostOut {
        window: t1 - t0,
        c0,
        c1,
        machine_cpu,
        helper_cpu_ns,
        host_cpu_ns,
        rss_bytes: rss,
        pss_bytes: pss,
        per_worker,
        deaths: sup.deaths(),
    })
}
