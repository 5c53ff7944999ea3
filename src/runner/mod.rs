//! The runner: runs a suite's cells and keeps the results on disk.
//!
//! Repeats are interleaved (repeat 0 of every cell, then repeat 1 of every cell, …) so slow
//! drift of the machine hits all models alike. Before each window the noise guard waits
//! (bounded) for an idle machine; a window it flags is re-run (bounded) and the result says
//! so. Each window runs in a fresh forked cell host under a watchdog: a host that overruns its
//! budget is killed and the cell recorded as timed out, and the suite goes on. After every
//! window `results.json` and `results.csv` are rewritten atomically (temp file + rename).
//! A SIGINT/SIGTERM (see `sys::signal`) ends the wait for the current window: its host is
//! killed and reaped, the window is not counted, and the results so far are saved marked
//! `interrupted`.

pub mod cell;
pub mod mechanic;
mod output;
pub mod server;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;

use self::cell::{RunSample, Timing, WindowEnv, measure_once};
use self::mechanic::{MechAcc, mech_sample, to_mech_result};
use self::output::{interrupted, progress_bar, write_all};
use crate::measure::machine::{self, Machine};
use crate::measure::noise::{self, Noise};
use crate::measure::recorder::new_histogram;
use crate::mechanic::MechanicEnv;
use crate::report::result::{
    CellResult, CpuPerOp, Latency, Results, Sample, Spread, Status, SuiteInfo, Switches, Tool,
};
use crate::suite::{Cell, Suite, TasksSpec};
use crate::sys::{Rusage, fork_child};

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Directory for results.json and results.csv (created if missing).
    pub out_dir: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Skip the wait for an idle machine (tests).
    pub skip_idle_wait: bool,
    /// The concbench binary for fork+exec mechanics (None: this executable).
    pub self_exe: Option<PathBuf>,
}

/// How one window ended.
#[derive(Debug)]
pub enum WindowError {
    /// The cell host overran its budget and was killed.
    TimedOut(Duration),
    /// The cell failed; the message says where.
    Failed(String),
    /// SIGINT or SIGTERM (the number) arrived: the host was killed, the window is not counted.
    Interrupted(i32),
}

impl WindowError {
    /// The status and message a cell or mechanic records for this failed repeat.
    fn status(self, repeat: u32) -> (Status, String) {
        match self {
            WindowError::TimedOut(d) => (
                Status::TimedOut,
                format!(
                    "repeat {repeat} exceeded its {d:.1?} budget (the window plus the suite's \
                     window_timeout allowance for setup and teardown) and was killed with every \
                     process of it: a worker hung, or setup is slow (then raise window_timeout)"
                ),
            ),
            WindowError::Failed(e) => (
                Status::Failed,
                crate::sys::limits::explain(format!("repeat {repeat}: {e}")),
            ),
            WindowError::Interrupted(s) => (
                Status::Failed,
                format!(
                    "repeat {repeat} interrupted by {}",
                    crate::sys::signal::name(s)
                ),
            ),
        }
    }
}

/// Per-cell accumulation over repeats.
#[derive(Default)]
struct Acc {
    samples: Vec<Sample>,
    hist: Option<Histogram<u64>>,
    rusage: Rusage,
    window_ops: u64,
    rss: Vec<u64>,
    pss: Vec<u64>,
    last: Option<RunSample>,
    reruns: u32,
    status: Option<(Status, String)>,
}

/// The default allowance of a window beyond warmup + duration: setup + 30 s of teardown.
pub const DEFAULT_WINDOW_TIMEOUT: Duration =
    Duration::from_secs(cell::SETUP_TIMEOUT.as_secs() + 30);

/// The wall-clock budget of one window: warmup + window + the allowance for setup and teardown
/// (the suite's `window_timeout`, else [`DEFAULT_WINDOW_TIMEOUT`]).
pub fn window_budget(t: Timing, window_timeout: Option<Duration>) -> Duration {
    t.warmup + t.duration + window_timeout.unwrap_or(DEFAULT_WINDOW_TIMEOUT)
}

/// Runs `suite`, writing results after every window; returns the final results.
pub fn run_suite(suite: &Suite, opts: &RunOptions) -> anyhow::Result<Results> {
    use anyhow::Context;
    std::fs::create_dir_all(&opts.out_dir)
        .with_context(|| format!("creating the output directory {}", opts.out_dir.display()))?;
    // Read the cores before anything pins: the harness itself is never pinned.
    let cores = crate::sys::allowed_cpus();
    let machine = machine::detect();
    let timing = Timing {
        warmup: suite.warmup,
        duration: suite.duration,
    };
    if !opts.skip_idle_wait {
        noise::wait_for_idle(&suite.noise);
    }
    let swept = sweep_stale_scratch(&std::env::temp_dir());
    if swept > 0 && opts.progress {
        eprintln!("concbench: removed {swept} scratch directories left by killed runs");
    }
    let env = WindowEnv {
        timing,
        cores: cores.clone(),
        noise: suite.noise,
        scratch_root: std::env::temp_dir(),
        spin_ns_per_iter: crate::workload::cpu::spin_ns_per_iter(),
        window_timeout: suite.window_timeout,
    };
    let mut results = new_results(suite, &machine, env.spin_ns_per_iter);
    let mut accs: Vec<Acc> = suite.cells.iter().map(|_| Acc::default()).collect();
    let mut mech_accs: Vec<MechAcc> = suite.mechanics.iter().map(|_| MechAcc::default()).collect();
    let mech_env = MechanicEnv {
        cores: cores.clone(),
        self_exe: opts
            .self_exe
            .clone()
            .or_else(|| std::env::current_exe().ok())
            .unwrap_or_else(|| PathBuf::from("concbench")),
    };
    write_all(&results, &opts.out_dir)?;

    let mut server_accs: Vec<server::ServerAcc> = suite
        .servers
        .iter()
        .map(|_| server::ServerAcc::default())
        .collect();
    let total = (suite.cells.len() + suite.mechanics.len() + suite.servers.len()) as u64
        * suite.repeats as u64;
    let bar = progress_bar(total, opts.progress);
    for repeat in 0..suite.repeats {
        for (ci, c) in suite.cells.iter().enumerate() {
            if let Some(sig) = crate::sys::signal::received() {
                return interrupted(results, &opts.out_dir, &bar, sig);
            }
            bar.set_message(c.id.clone());
            if matches!(
                accs[ci].status,
                Some((Status::Failed | Status::TimedOut, _))
            ) {
                bar.inc(1);
                continue;
            }
            let mut reruns = 0;
            let outcome = loop {
                let idle = if opts.skip_idle_wait {
                    None
                } else {
                    Some(noise::wait_for_idle(&suite.noise))
                };
                let r = run_window(c, &env);
                match r {
                    Ok(mut s) => {
                        if let Some(w) = idle {
                            s.noise.idle_wait_ms = w.waited.as_millis() as u64;
                            s.noise.busy_at_start = !w.idle;
                        }
                        if s.noise.flagged && reruns < suite.noise.max_reruns {
                            reruns += 1;
                            continue;
                        }
                        s.noise.reruns = reruns;
                        break Ok(s);
                    }
                    Err(e) => break Err(e),
                }
            };
            if let Err(WindowError::Interrupted(sig)) = outcome {
                return interrupted(results, &opts.out_dir, &bar, sig);
            }
            let acc = &mut accs[ci];
            acc.reruns += reruns;
            match outcome {
                Ok(s) => add_sample(acc, repeat, s),
                Err(e) => acc.status = Some(e.status(repeat)),
            }
            results.cells[ci] = to_result(c, acc, &cores);
            fill_linear_refs(&mut results.cells, &suite.cells);
            results.updated_unix = unix_now();
            write_all(&results, &opts.out_dir)?;
            bar.inc(1);
        }
        for (mi, m) in suite.mechanics.iter().enumerate() {
            bar.set_message(m.id.clone());
            let acc = &mut mech_accs[mi];
            if let Some(sig) = crate::sys::signal::received() {
                return interrupted(results, &opts.out_dir, &bar, sig);
            }
            if acc.status.is_none() {
                if !opts.skip_idle_wait {
                    noise::wait_for_idle(&suite.noise);
                }
                match mechanic::run_mechanic_window(m, &env, &mech_env) {
                    Ok(w) => {
                        acc.iteration = w.iteration;
                        acc.samples.push(mech_sample(repeat, &w.measured));
                    }
                    Err(WindowError::Interrupted(sig)) => {
                        return interrupted(results, &opts.out_dir, &bar, sig);
                    }
                    Err(e) => acc.status = Some(e.status(repeat)),
                }
                results.mechanics[mi] = to_mech_result(m, acc);
                results.updated_unix = unix_now();
                write_all(&results, &opts.out_dir)?;
            }
            bar.inc(1);
        }
        for (si, srv) in suite.servers.iter().enumerate() {
            bar.set_message(srv.id.clone());
            let acc = &mut server_accs[si];
            if let Some(sig) = crate::sys::signal::received() {
                return interrupted(results, &opts.out_dir, &bar, sig);
            }
            if acc.status.is_none() {
                if !opts.skip_idle_wait {
                    noise::wait_for_idle(&suite.noise);
                }
                match server::run_server_window(srv, &env) {
                    Ok(s) => acc.add(repeat, s),
                    Err(WindowError::Interrupted(sig)) => {
                        return interrupted(results, &opts.out_dir, &bar, sig);
                    }
                    Err(e) => acc.status = Some(e.status(repeat)),
                }
                results.servers[si] = server::to_server_result(srv, acc);
                results.updated_unix = unix_now();
                write_all(&results, &opts.out_dir)?;
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    results.complete = true;
    results.updated_unix = unix_now();
    write_all(&results, &opts.out_dir)?;
    Ok(results)
}

pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_results(suite: &Suite, machine: &Machine, spin_ns_per_iter: f64) -> Results {
    let now = unix_now();
    Results {
        schema_version: crate::report::result::SCHEMA_VERSION,
        tool: Tool {
            name: "concbench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: crate::build_commit().into(),
        },
        machine: machine.clone(),
        machine_warnings: machine.warnings(),
        suite: SuiteInfo {
            name: suite.name.clone(),
            file: suite.path.display().to_string(),
            description: suite.description.clone(),
            warmup_ns: suite.warmup.as_nanos() as u64,
            duration_ns: suite.duration.as_nanos() as u64,
            repeats: suite.repeats,
            noise_threshold: suite.noise.threshold,
            spin_ns_per_iteration: spin_ns_per_iter,
        },
        started_unix: now,
        updated_unix: now,
        complete: false,
        interrupted: false,
        cells: suite
            .cells
            .iter()
            .map(|c| to_result(c, &Acc::default(), &[]))
            .collect(),
        mechanics: suite
            .mechanics
            .iter()
            .map(|m| to_mech_result(m, &MechAcc::default()))
            .collect(),
        servers: suite
            .servers
            .iter()
            .map(|s| server::to_server_result(s, &server::ServerAcc::default()))
            .collect(),
    }
}

/// Runs one window of `c` in a fresh forked cell host, under a watchdog. A fault cell goes
/// through `fault::outcome::run_fault_window`, which maps its fault board before the fork so a
/// fault that kills the whole host is recorded as `process-lost`, not as a failure.
pub fn run_window(c: &Cell, env: &WindowEnv) -> Result<RunSample, WindowError> {
    let budget = window_budget(env.timing, env.window_timeout);
    let (_scratch, env) = &window_scratch(env)?;
    let Some(spec) = c.params.fault() else {
        return in_host(budget, || measure_once(c, env));
    };
    crate::fault::outcome::run_fault_window(c, env, spec, budget)
}

/// Window scratch directories are `concbench-window-PID-<random>`, PID the harness's.
const WINDOW_PREFIX: &str = "concbench-window-";

/// Removes the window scratch directories that harnesses killed with SIGKILL left in `root`
/// (their PID no longer runs); returns how many. Directories of live harnesses are kept.
pub fn sweep_stale_scratch(root: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(root) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WINDOW_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_dir_all(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// A scratch directory for one window, made and removed by the harness itself: the cell host
/// and everything below it (workload files, a server's handler files) put their files in it,
/// and since the host may be SIGKILLed (watchdog, fault, signal) or end with `_exit`, none of
/// them can be trusted to clean up. The directory goes when the returned guard drops, after
/// the host was reaped. Returns the guard and `env` pointing at the directory.
pub fn window_scratch(env: &WindowEnv) -> Result<(tempfile::TempDir, WindowEnv), WindowError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{WINDOW_PREFIX}{}-", std::process::id()))
        .tempdir_in(&env.scratch_root)
        .map_err(|e| {
            WindowError::Failed(crate::sys::limits::explain(format!(
                "creating a scratch directory in {}: {e}",
                env.scratch_root.display()
            )))
        })?;
    let env = WindowEnv {
        scratch_root: dir.path().to_path_buf(),
        ..env.clone()
    };
    Ok((dir, env))
}

/// Runs `body` in a freshly forked, single-threaded host process and returns what it sent
/// back (JSON through a pipe). A host that overruns `budget` is killed (its workers die with
/// it) and reported as timed out; a host that dies is reported with how it died. A SIGINT or
/// SIGTERM to the harness (`sys::signal`) ends the wait the same way, as `Interrupted`. After a
/// kill, a harness that is a subreaper reaps the host's orphaned workers too.
pub fn in_host<T, F>(budget: Duration, body: F) -> Result<T, WindowError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    F: FnOnce() -> Result<T, String>,
{
    let failed = |e: String| WindowError::Failed(e);
    let (mut reader, writer) =
        std::io::pipe().map_err(|e| failed(format!("creating a pipe: {e}")))?;
    let reader_fd = reader.as_raw_fd();
    let mut host = fork_child(|| {
        crate::sys::fd::close_inherited(reader_fd);
        let r = body();
        let ok = serde_json::to_writer(&writer, &r).is_ok();
        if ok { 0 } else { 3 }
    })
    .map_err(|e| failed(format!("forking the cell host: {e}")))?;
    drop(writer);

    let deadline = Instant::now() + budget;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        use crate::sys::signal::{Wake, wait_readable};
        let left = deadline.saturating_duration_since(Instant::now());
        let wake = wait_readable(Some(reader_fd), Some(left))
            .map_err(|e| failed(format!("waiting for the cell host: {e}")))?;
        let stop = match wake {
            Wake::Ready => None,
            Wake::Timeout => Some(WindowError::TimedOut(budget)),
            Wake::Signal(s) => Some(WindowError::Interrupted(s)),
        };
        if let Some(err) = stop {
            let _ = host.kill_and_reap();
            let left = crate::sys::process::reap_orphans(Duration::from_secs(2));
            if !left.is_empty() {
                eprintln!("concbench: processes {left:?} of the killed cell host would not die");
            }
            return Err(err);
        }
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(format!("reading the cell host's result: {e}"))),
        }
    }
    let exit = host
        .wait()
        .map_err(|e| failed(format!("waiting for the cell host: {e}")))?;
    // Anything the host left (re-parented here, dying by PDEATHSIG) is reaped now.
    let _ = crate::sys::process::reap_orphans(Duration::from_secs(2));
    if buf.is_empty() {
        return Err(failed(format!(
            "the cell host (pid {}) died without a result: {}",
            host.pid(),
            exit.describe()
        )));
    }
    let r: Result<T, String> = serde_json::from_slice(&buf)
        .map_err(|e| failed(format!("bad result from the cell host: {e}")))?;
    r.map_err(WindowError::Failed)
}

fn add_sample(acc: &mut Acc, repeat: u32, s: RunSample) {
    let secs = s.window_ns as f64 / 1e9;
    let ops = s.ops();
    acc.samples.push(Sample {
        repeat,
        ops,
        window_ns: s.window_ns,
        ops_per_sec: if secs > 0.0 { ops as f64 / secs } else { 0.0 },
        per_worker_ops_per_sec: s
            .per_worker_ops
            .iter()
            .map(|&o| if secs > 0.0 { o as f64 / secs } else { 0.0 })
            .collect(),
        noise: s.noise.clone(),
        fault: s.fault.clone(),
        latency_ns: None,
    });
    if let Ok(h) = Deserializer::new().deserialize::<u64, _>(&mut s.histogram.as_slice()) {
        if let Some(last) = acc.samples.last_mut() {
            last.latency_ns = Some(latency_of(&h));
        }
        let merged = acc.hist.get_or_insert_with(new_histogram);
        let _ = merged.add(&h);
    }
    acc.rusage = acc.rusage.add(&s.rusage);
    acc.window_ops += s.worker_window_ops;
    acc.rss.push(s.rss_bytes);
    acc.pss.push(s.pss_bytes);
    acc.last = Some(s);
}

fn to_result(c: &Cell, acc: &Acc, cores: &[usize]) -> CellResult {
    let (status, error) = match &acc.status {
        Some((s, e)) => (*s, Some(e.clone())),
        None if acc.samples.is_empty() => (Status::Pending, None),
        None => (Status::Ok, None),
    };
    let tput: Vec<f64> = acc.samples.iter().map(|s| s.ops_per_sec).collect();
    let per_worker: Vec<f64> = acc
        .samples
        .iter()
        .flat_map(|s| s.per_worker_ops_per_sec.iter().copied())
        .collect();
    let latency = acc.hist.as_ref().map(latency_of).unwrap_or_default();
    let per_op = |x: u64| {
        if acc.window_ops == 0 {
            0.0
        } else {
            x as f64 / acc.window_ops as f64
        }
    };
    let median_u64 =
        |v: &[u64]| Spread::of(&v.iter().map(|&x| x as f64).collect::<Vec<_>>()).median as u64;
    let rss = median_u64(&acc.rss);
    let pss = median_u64(&acc.pss);
    let mut worst = acc
        .samples
        .iter()
        .map(|s| s.noise.clone())
        .max_by(|a, b| a.other_cpu.total_cmp(&b.other_cpu))
        .unwrap_or_default();
    worst.reruns = acc.reruns;
    worst.flagged = acc.samples.iter().any(|s| s.noise.flagged);
    let mut warnings = Vec::new();
    if !cores.is_empty() && c.workers > cores.len() {
        warnings.push(format!(
            "oversubscribed: {} workers on {} cores",
            c.workers,
            cores.len()
        ));
    }
    if c.pin == crate::model::Pin::None {
        warnings.push("unpinned: the scheduler placed and moved the workers".into());
    }
    if worst.flagged {
        warnings.push(format!(
            "noisy: other processes used {:.0}% and steal {:.0}% of the machine in the worst window, after {} re-runs",
            worst.other_cpu * 100.0,
            worst.steal * 100.0,
            acc.reruns
        ));
    }
    if acc
        .samples
        .iter()
        .any(|s| s.fault.as_ref().is_some_and(|f| f.process_lost))
    {
        warnings.push(
            "process lost: the injected fault killed the cell host; only the ops counted before \
             the fault are known (no latency, CPU or memory for that window)"
                .into(),
        );
    }
    if acc.samples.iter().any(|s| s.noise.busy_at_start) {
        warnings.push(
            "the machine was busy before a window and did not become idle within the wait".into(),
        );
    }
    CellResult {
        id: c.id.clone(),
        workload: c.workload.id.into(),
        params: c.params.to_map(),
        resolved: acc
            .last
            .as_ref()
            .map(|s| s.resolved.clone())
            .unwrap_or_default(),
        model: c.model.id.into(),
        unit: c.model.unit,
        driver: c.model.driver,
        workers: c.workers,
        tasks: c.tasks,
        pin: c.pin,
        load: c.load,
        status,
        error,
        repeats_done: acc.samples.len() as u32,
        ops_per_sec: Spread::of(&tput),
        per_worker_ops_per_sec: Spread::of(&per_worker),
        linear_reference_ops_per_sec: None,
        scaling_efficiency: None,
        latency_ns: latency,
        ctx_switches_per_op: Switches {
            voluntary: per_op(acc.rusage.voluntary),
            involuntary: per_op(acc.rusage.involuntary),
        },
        cpu_ns_per_op: CpuPerOp {
            user: per_op(acc.rusage.user_ns),
            sys: per_op(acc.rusage.sys_ns),
        },
        minor_faults_per_op: per_op(acc.rusage.minor_faults),
        rss_bytes: rss,
        pss_bytes: pss,
        rss_per_worker_bytes: rss / c.workers as u64,
        pss_per_worker_bytes: pss / c.workers as u64,
        placement: acc
            .last
            .as_ref()
            .map(|s| s.placement.clone())
            .unwrap_or_default(),
        noise: if acc.samples.is_empty() {
            Noise::default()
        } else {
            worst
        },
        samples: acc.samples.clone(),
        warnings,
        fault: acc.last.as_ref().and_then(|s| s.fault.clone()),
    }
}

/// Percentiles of a histogram.
pub fn latency_of(h: &Histogram<u64>) -> Latency {
    Latency {
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
        count: h.len(),
    }
}

/// Sets each cell's linear reference: the ops/s of the W=1 cell of the same series (same
/// workload, params, model, pin, load and task rule) × W.
pub fn fill_linear_refs(results: &mut [CellResult], cells: &[Cell]) {
    for i in 0..cells.len() {
        let c = &cells[i];
        let base = cells.iter().position(|b| {
            b.workers == 1
                && b.workload.id == c.workload.id
                && b.params == c.params
                && b.model.id == c.model.id
                && b.pin == c.pin
                && b.load == c.load
                && b.tasks_spec == c.tasks_spec
                && match c.tasks_spec {
                    TasksSpec::PerWorker => true,
                    TasksSpec::Fixed(_) => b.tasks == c.tasks,
                }
        });
        let reference = base
            .filter(|&b| results[b].repeats_done > 0)
            .map(|b| results[b].ops_per_sec.median * c.workers as f64);
        results[i].linear_reference_ops_per_sec = reference;
        results[i].scaling_efficiency = reference
            .filter(|&r| r > 0.0 && results[i].repeats_done > 0)
            .map(|r| results[i].ops_per_sec.median / r);
    }
}
