//! One window of a server cell: fork the server (an architecture with its workers and
//! handler), put the load generator on it, and read what the kernel accounted to the server.
//!
//! Placement: with three or more cores, the generator gets the last core and the server's
//! workers are pinned spread over the others; with two, the server is spread over both and
//! the generator pinned to the last (they share it: the result carries a warning); with one,
//! everything shares it.
//!
//! # Timing model
//! Requests/s and latency are the generator's (`load::run_observed`): its own warmup is cut,
//! latency is counted from the intended send time (corrected) and from the actual send. At the
//! generator's window edges, while every connection is still open, the runner reads the server's
//! request counters and sums context switches and CPU over every thread of every process of the
//! server (`/proc/PID/task/*/status` and `schedstat`); per-request figures divide those window
//! differences by the requests the server answered in the same window. Memory (RSS, PSS) is
//! read from every server process at the window's end. A process that both starts and ends
//! inside the window (a process-per-conn child of a connection that closed) is missed: with
//! keep-alive connections there are none.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::cell::WindowEnv;
use super::{WindowError, in_host};
use crate::load::{Edge, LoadConfig, LoadReport};
use crate::model::Load;
use crate::report::result::{Latency, ServerResult, ServerWindow, Spread, Status, Switches};
use crate::server::{ServeConfig, Stats, serve_with};
use crate::suite::ServerCell;
use crate::sys::fork_child;
use crate::sys::procfs::{self, TaskTotals};

/// What one window of a server cell measured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSample {
    /// The generator's report.
    pub load: LoadReport,
    /// Requests each server worker answered in the window.
    pub per_worker_requests: Vec<u64>,
    /// Connections each server worker accepted in the window.
    pub per_worker_connections: Vec<u64>,
    /// Requests the server answered over the whole load run (warmup, window, drain): compare
    /// with the generator's `totals.responses`.
    pub run_requests: u64,
    /// Server voluntary context switches in the window, over every thread of every process.
    pub server_voluntary: u64,
    /// Involuntary switches in the window.
    pub server_involuntary: u64,
    /// Server CPU in the window, ns.
    pub server_cpu_ns: u64,
    /// Server processes at the window's end.
    pub server_processes: u64,
    /// Threads over all server processes at the window's end.
    pub server_threads: u64,
    /// RSS of the server processes at the window's end, bytes.
    pub server_rss_bytes: u64,
    /// PSS of the server processes at the window's end, bytes.
    pub server_pss_bytes: u64,
    /// Cores the server's workers were pinned to.
    pub server_cores: Vec<usize>,
    /// Core the generator was pinned to.
    pub generator_core: Option<usize>,
    /// Placement warnings.
    pub warnings: Vec<String>,
}

/// How long a server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one window of `s` in a fresh forked host, under a watchdog.
pub fn run_server_window(s: &ServerCell, env: &WindowEnv) -> Result<ServerSample, WindowError> {
    let budget = env.timing.warmup
        + env.timing.duration * 2
        + env
            .window_timeout
            .unwrap_or(START_TIMEOUT + Duration::from_secs(30));
    let (_scratch, env) = &super::window_scratch(env)?;
    in_host(budget, || measure_server(s, env))
}

fn placement(cores: &[usize]) -> (Vec<usize>, Option<usize>, Vec<String>) {
    match cores.len() {
        0 => (Vec::new(), None, Vec::new()),
        1 => (
            cores.to_vec(),
            Some(cores[0]),
            vec!["one core: the generator and the server share it".into()],
        ),
        2 => (
            cores.to_vec(),
            Some(cores[1]),
            vec![format!(
                "two cores: the server is spread over both and the generator shares core {}",
                cores[1]
            )],
        ),
        n => (cores[..n - 1].to_vec(), Some(cores[n - 1]), Vec::new()),
    }
}

/// What the runner reads from the server at a window edge.
struct EdgeReading {
    requests: Vec<u64>,
    connections: Vec<u64>,
    totals: TaskTotals,
    processes: u64,
    rss: u64,
    pss: u64,
}

/// Reads the server's counters and its process tree's kernel accounting; memory only when
/// asked (reading smaps_rollup takes each process's mmap lock: only at the window's end).
fn read_edge(root: i32, stats: &Stats, memory: bool) -> EdgeReading {
    let tree = procfs::process_tree(root);
    let mut r = EdgeReading {
        requests: stats.requests(),
        connections: stats.connections(),
        totals: TaskTotals::default(),
        processes: tree.len() as u64,
        rss: 0,
        pss: 0,
    };
    for &pid in &tree {
        r.totals = r.totals.add(&procfs::task_totals(pid));
        if memory && let Ok(m) = procfs::memory(pid) {
            r.rss += m.rss_bytes;
            r.pss += m.pss_bytes;
        }
    }
    r
}

fn measure_server(s: &ServerCell, env: &WindowEnv) -> Result<ServerSample, String> {
    let (server_cores, generator_core, warnings) = placement(&env.cores);
    let cfg = ServeConfig {
        arch: s.arch,
        workers: s.workers,
        addr: "127.0.0.1:0".parse().expect("valid address"),
        handler: s.handler.clone(),
        reuseport: s.reuseport,
        cores: server_cores.clone(),
        helpers: s.helpers,
        limits: Default::default(),
        scratch: env.scratch_root.clone(),
    };
    let stats = Stats::new(s.workers).map_err(|e| format!("mapping counters: {e}"))?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    let reader_fd = reader.as_raw_fd();
    let mut server = fork_child(|| {
        crate::sys::fd::close_inherited(reader_fd);
        let mut w = &writer;
        let r = serve_with(&cfg, &stats, &mut |addr| {
            let _ = writeln!(w, "{addr}");
        });
        if let Err(e) = r {
            let _ = writeln!(w, "error: {e}");
        }
        1
    })
    .map_err(|e| format!("forking the server: {e}"))?;
    drop(writer);
    // The address (or the server's error), bounded by a timeout.
    let mut line = Vec::new();
    let deadline = Instant::now() + START_TIMEOUT;
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if !crate::sys::fd::poll_one(reader_fd, false, Some(left)).unwrap_or(false) {
            return Err(format!(
                "the {} server did not start listening within {START_TIMEOUT:?}",
                s.arch.id
            ));
        }
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(format!("reading the server's address: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&line).trim().to_string();
    if line.is_empty() || line.starts_with("error:") {
        let exit = server
            .kill_and_reap()
            .map(|e| e.describe())
            .unwrap_or_default();
        return Err(format!(
            "the {} server failed to start: {line} ({exit})",
            s.arch.id
        ));
    }

    let pid = server.pid();
    let run_req0: u64 = stats.requests().iter().sum();
    let mut at_start: Option<EdgeReading> = None;
    let mut at_end: Option<EdgeReading> = None;
    let report = crate::load::run_observed(
        &LoadConfig {
            target: line.clone(),
            connections: s.connections,
            rate: match s.load {
                Load::Closed => None,
                Load::Open { rate } => Some(rate),
            },
            duration: env.timing.duration,
            warmup: env.timing.warmup,
            threads: 1,
            path: "/".into(),
            pin_cores: generator_core.into_iter().collect(),
            timeout: Duration::from_secs(10),
            allow_remote: false,
        },
        &mut |edge| match edge {
            Edge::WindowStart => at_start = Some(read_edge(pid, &stats, false)),
            Edge::WindowEnd => at_end = Some(read_edge(pid, &stats, true)),
        },
    );
    let run_requests = stats.requests().iter().sum::<u64>() - run_req0;
    let alive = !procfs::is_dead(pid);
    let exit = server
        .kill_and_reap()
        .map(|e| e.describe())
        .unwrap_or_default();
    let report = report?;
    if !alive {
        return Err(format!(
            "the {} server died during the run ({exit})",
            s.arch.id
        ));
    }
    let (Some(a), Some(b)) = (at_start, at_end) else {
        return Err("the load generator never opened its window".into());
    };
    let diff = |x: &[u64], y: &[u64]| x.iter().zip(y).map(|(p, q)| p - q).collect::<Vec<_>>();
    Ok(ServerSample {
        load: report,
        per_worker_requests: diff(&b.requests, &a.requests),
        per_worker_connections: diff(&b.connections, &a.connections),
        run_requests,
        server_voluntary: b.totals.voluntary.saturating_sub(a.totals.voluntary),
        server_involuntary: b.totals.involuntary.saturating_sub(a.totals.involuntary),
        server_cpu_ns: b.totals.cpu_ns.saturating_sub(a.totals.cpu_ns),
        server_processes: b.processes,
        server_threads: b.totals.threads,
        server_rss_bytes: b.rss,
        server_pss_bytes: b.pss,
        server_cores,
        generator_core,
        warnings,
    })
}

/// Per-server-cell accumulation over repeats.
#[derive(Default)]
pub struct ServerAcc {
    samples: Vec<ServerSample>,
    windows: Vec<ServerWindow>,
    /// Set when a repeat failed or timed out.
    pub status: Option<(Status, String)>,
}

impl ServerAcc {
    /// Adds one measured window.
    pub fn add(&mut self, repeat: u32, s: ServerSample) {
        self.windows.push(ServerWindow {
            repeat,
            requests_per_sec: s.load.requests_per_sec,
            errors: error_total(&s.load),
            generator_responses: s.load.totals.responses,
            server_requests: s.run_requests,
        });
        self.samples.push(s);
    }
}

fn error_total(r: &LoadReport) -> u64 {
    let e = &r.errors;
    e.connect + e.io + e.timeout + e.status + e.closed + e.protocol
}

fn latency(l: &crate::load::Latency) -> Latency {
    Latency {
        p50: l.p50_ns,
        p90: l.p90_ns,
        p99: l.p99_ns,
        p999: l.p999_ns,
        max: l.max_ns,
        mean: l.mean_ns,
        count: l.count,
    }
}

/// The result of a server cell from what it accumulated.
pub fn to_server_result(s: &ServerCell, acc: &ServerAcc) -> ServerResult {
    let (status, error) = match &acc.status {
        Some((st, e)) => (*st, Some(e.clone())),
        None if acc.samples.is_empty() => (Status::Pending, None),
        None => (Status::Ok, None),
    };
    let last = acc.samples.last();
    let responses: u64 = acc
        .samples
        .iter()
        .map(|x| x.per_worker_requests.iter().sum::<u64>())
        .sum();
    let per_req = |f: &dyn Fn(&ServerSample) -> u64| {
        let total: u64 = acc.samples.iter().map(f).sum();
        if responses == 0 {
            0.0
        } else {
            total as f64 / responses as f64
        }
    };
    let per_worker = last
        .map(|x| x.per_worker_requests.clone())
        .unwrap_or_default();
    let balance = match (per_worker.iter().min(), per_worker.iter().max()) {
        (Some(&lo), Some(&hi)) if hi > 0 => lo as f64 / hi as f64,
        _ => 0.0,
    };
    let mut warnings = Vec::new();
    if let Some(x) = last {
        warnings.extend(x.warnings.iter().cloned());
        warnings.extend(x.load.warnings.iter().map(|w| format!("generator: {w}")));
    }
    ServerResult {
        id: s.id.clone(),
        arch: s.arch.id.into(),
        workers: s.workers,
        connections: s.connections,
        handler: s.handler.id(),
        load: s.load,
        status,
        error,
        repeats_done: acc.samples.len() as u32,
        requests_per_sec: Spread::of(
            &acc.windows
                .iter()
                .map(|w| w.requests_per_sec)
                .collect::<Vec<_>>(),
        ),
        latency_ns: last
            .map(|x| latency(&x.load.latency_corrected))
            .unwrap_or_default(),
        latency_uncorrected_ns: last
            .map(|x| latency(&x.load.latency_uncorrected))
            .unwrap_or_default(),
        errors: acc.windows.iter().map(|w| w.errors).sum(),
        ctx_switches_per_request: Switches {
            voluntary: per_req(&|x| x.server_voluntary),
            involuntary: per_req(&|x| x.server_involuntary),
        },
        cpu_ns_per_request: per_req(&|x| x.server_cpu_ns),
        per_worker_requests: per_worker,
        balance,
        server_processes: last.map_or(0, |x| x.server_processes),
        server_threads: last.map_or(0, |x| x.server_threads),
        rss_bytes: last.map_or(0, |x| x.server_rss_bytes),
        pss_bytes: last.map_or(0, |x| x.server_pss_bytes),
        generator_cpu: last.map_or(0.0, |x| x.load.cpu.share),
        warnings,
        samples: acc.windows.clone(),
    }
}
