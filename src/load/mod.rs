//! `concbench load`: an HTTP/1.1 load generator for the servers concbench compares (and any
//! other HTTP/1.1 server on this machine), measured the way the rest of concbench measures:
//! HdrHistograms of latency, the kernel's accounting of the generator's own CPU, and a warning
//! when the generator rather than the server may be the bottleneck.
//!
//! T threads (optionally pinned), each running one epoll loop ([`worker`]) over its share of
//! C keep-alive connections, every connection sending the same pre-built `GET`.
//! - **Closed loop** (no rate): each connection sends its next request when the previous
//!   response arrived; one request in flight per connection.
//! - **Open loop** (`rate` R req/s in total): connection `g` of C has requests due at
//!   `start + g/R + k·C/R`, so the due times of all connections are evenly spaced at 1/R. A
//!   request due while its connection still waits for a response waits too, and its latency
//!   still counts from its due time (no coordinated omission).
//!
//! A run is: connect every connection (before the clock starts), warmup, the measured window,
//! then a drain (no new requests; outstanding responses are awaited up to the timeout). On an
//! error the connection is counted and replaced (reconnect; after a failed connect, a 10 ms
//! back-off).
//!
//! [`run`] is the library entry point; [`main`] is the CLI's (`concbench load`, [`LoadArgs`]).
//!
//! # Timing model
//! - *corrected* latency: response complete (clock read after the `read` that returned its
//!   last byte) − intended time (closed loop: the send; open loop: the due time). Holds the
//!   write, both network stacks, the server, the wait for this loop to read the connection,
//!   and (open loop) the wait for a busy or reconnecting connection or a late loop.
//! - *uncorrected* latency: the same end − the clock read right before the request's `write`.
//!   In the closed loop both are the same measurement.
//! - Latencies are recorded for requests whose intended time falls in the window; throughput
//!   and the per-second series count responses completed in the window; errors count when they
//!   happen in the window. Connect, warmup and drain are outside all of these (only the run
//!   totals in [`Totals`] cover them).
//! - CPU: `getrusage(RUSAGE_THREAD)` of each generator thread, read when the thread's loop
//!   first sees the window start and the window end.

mod frame;
mod worker;

#[cfg(test)]
mod tests;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::workload::param::parse_duration;

/// Latencies are recorded in nanoseconds with 3 significant digits.
pub const SIGFIGS: u8 = 3;
/// A generator thread above this share of one core in the window is flagged.
pub const CPU_WARN: f64 = 0.90;
/// An open loop with more than this share of its requests late or unsent is flagged.
pub const BEHIND_WARN: f64 = 0.05;
/// Most connections per run.
pub const MAX_CONNECTIONS: usize = 100_000;

/// `concbench load`: drive an HTTP/1.1 server with keep-alive GETs and report throughput,
/// latency (corrected and uncorrected for coordinated omission), errors and the generator's
/// own CPU use.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadArgs {
    /// Target host:port, e.g. 127.0.0.1:8080 or [::1]:8080 (loopback unless --allow-remote).
    #[arg(long)]
    pub target: String,
    /// Keep-alive connections, spread evenly over the threads.
    #[arg(long)]
    pub connections: usize,
    /// Open loop: total requests per second, spread evenly over the connections. Without it,
    /// closed loop (each connection sends its next request when the previous one answered).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Measured window, e.g. 10s.
    #[arg(long, value_parser = duration_arg)]
    pub duration: Duration,
    /// Warmup before the window (excluded from every figure), e.g. 1s.
    #[arg(long, default_value = "1s", value_parser = duration_arg)]
    pub warmup: Duration,
    /// Generator threads, each running one epoll loop over its share of the connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Request path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Pin thread i to core list[i % len] (comma-separated). Default: unpinned.
    #[arg(long, value_delimiter = ',')]
    pub pin_cores: Vec<usize>,
    /// A request (or connect) without an answer after this long is a timeout error.
    #[arg(long, default_value = "2s", value_parser = duration_arg)]
    pub timeout: Duration,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print the report as JSON on stdout instead of the summary.
    #[arg(long)]
    pub json: bool,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("\"{s}\" is not a duration: write e.g. 500ms or 2s"))
}

/// What [`run`] does.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// Target host:port (resolved at run time; IPv4 or IPv6).
    pub target: String,
    /// Keep-alive connections in total.
    pub connections: usize,
    /// Open loop: total requests per second. None: closed loop.
    pub rate: Option<f64>,
    /// Measured window.
    pub duration: Duration,
    /// Warmup before the window.
    pub warmup: Duration,
    /// Generator threads.
    pub threads: usize,
    /// Request path.
    pub path: String,
    /// Thread i is pinned to `pin_cores[i % len]`; empty: unpinned.
    pub pin_cores: Vec<usize>,
    /// Request and connect timeout; also the longest drain.
    pub timeout: Duration,
    /// Allow a non-loopback target.
    pub allow_remote: bool,
}

impl LoadConfig {
    /// A closed-loop config with the defaults of the CLI.
    pub fn new(target: impl Into<String>, connections: usize, duration: Duration) -> Self {
        Self {
            target: target.into(),
            connections,
            rate: None,
            duration,
            warmup: Duration::from_secs(1),
            threads: 1,
            path: "/".into(),
            pin_cores: Vec::new(),
            timeout: Duration::from_secs(2),
            allow_remote: false,
        }
    }

    /// Checks the config and resolves the target. Errors are the user's to fix (exit 2).
    pub fn validate(&self) -> Result<SocketAddr, String> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(format!(
                "--connections {} is out of range: use 1 to {MAX_CONNECTIONS}",
                self.connections
            ));
        }
        if self.threads == 0 || self.threads > self.connections {
            return Err(format!(
                "--threads {} is out of range: use 1 to --connections ({})",
                self.threads, self.connections
            ));
        }
        if self.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        if self.threads > crate::suite::MAX_WORKERS {
            return Err(format!(
                "--threads {} is out of range: use 1 to {}",
                self.threads,
                crate::suite::MAX_WORKERS
            ));
        }
        for (flag, d) in [
            ("--duration", self.duration),
            ("--warmup", self.warmup),
            ("--timeout", self.timeout),
        ] {
            if d > crate::suite::limits::MAX_WINDOW {
                return Err(format!("{flag} {d:?} is too long: use at most 1h"));
            }
        }
        if self.timeout.is_zero() {
            return Err("--timeout must be longer than 0".into());
        }
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0 && r <= 1e9)
        {
            return Err(format!(
                "--rate {r} is not a rate: give requests per second above 0"
            ));
        }
        if !self.path.starts_with('/') || self.path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!(
                "--path {:?} is not a request path: it must start with / and hold no spaces",
                self.path
            ));
        }
        let cores = crate::sys::allowed_cpus();
        if let Some(c) = self.pin_cores.iter().find(|c| !cores.contains(c)) {
            return Err(format!(
                "--pin-cores: core {c} is not one this process may use ({cores:?})"
            ));
        }
        let addrs: Vec<SocketAddr> = self
            .target
            .to_socket_addrs()
            .map_err(|e| {
                format!(
                    "--target {:?} is not host:port ({e}): write e.g. 127.0.0.1:8080 or [::1]:8080",
                    self.target
                )
            })?
            .collect();
        let Some(&addr) = addrs.first() else {
            return Err(format!("--target {:?} resolves to no address", self.target));
        };
        if !self.allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
            return Err(format!(
                "--target {} ({}) is not a loopback address: concbench load only loads this \
                 machine unless you pass --allow-remote",
                self.target,
                addr.ip()
            ));
        }
        Ok(addr)
    }
}

impl From<&LoadArgs> for LoadConfig {
    fn from(a: &LoadArgs) -> Self {
        Self {
            target: a.target.clone(),
            connections: a.connections,
            rate: a.rate,
            duration: a.duration,
            warmup: a.warmup,
            threads: a.threads,
            path: a.path.clone(),
            pin_cores: a.pin_cores.clone(),
            timeout: a.timeout,
            allow_remote: a.allow_remote,
        }
    }
}

/// Kinds of errors the generator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A (re)connect failed or timed out.
    Connect,
    /// A read or write failed (other than the peer closing).
    Io,
    /// No response within the timeout.
    Timeout,
    /// A response with a status outside 200–299.
    Status,
    /// The peer closed or reset the connection without announcing it.
    Closed,
    /// Bytes that are not a response the generator can frame.
    Protocol,
}

/// Errors by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorCounts {
    /// Connects that failed or timed out (each is retried after 10 ms).
    pub connect: u64,
    /// Reads or writes that failed (other than the peer closing).
    pub io: u64,
    /// Requests without a response within the timeout (the connection is replaced).
    pub timeout: u64,
    /// Responses with a status outside 200–299 (also counted as completed responses).
    pub status: u64,
    /// Connections the peer closed or reset without `Connection: close` (replaced).
    pub closed: u64,
    /// Responses the generator could not frame: malformed, chunked, no Content-Length.
    pub protocol: u64,
}

impl ErrorCounts {
    /// Counts one error of `kind`.
    pub fn bump(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Io => self.io += 1,
            ErrorKind::Timeout => self.timeout += 1,
            ErrorKind::Status => self.status += 1,
            ErrorKind::Closed => self.closed += 1,
            ErrorKind::Protocol => self.protocol += 1,
        }
    }

    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.connect + self.io + self.timeout + self.status + self.closed + self.protocol
    }

    fn add(&mut self, o: &ErrorCounts) {
        self.connect += o.connect;
        self.io += o.io;
        self.timeout += o.timeout;
        self.status += o.status;
        self.closed += o.closed;
        self.protocol += o.protocol;
    }
}

/// A latency distribution, nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests recorded.
    pub count: u64,
    /// Smallest, ns.
    pub min_ns: u64,
    /// Mean, ns.
    pub mean_ns: f64,
    /// Standard deviation, ns.
    pub stdev_ns: f64,
    /// Median, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// Largest, ns.
    pub max_ns: u64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            min_ns: h.min(),
            mean_ns: h.mean(),
            stdev_ns: h.stdev(),
            p50_ns: h.value_at_quantile(0.50),
            p90_ns: h.value_at_quantile(0.90),
            p99_ns: h.value_at_quantile(0.99),
            p999_ns: h.value_at_quantile(0.999),
            max_ns: h.max(),
        }
    }
}

/// One second of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Second {
    /// Responses completed in this second.
    pub completed: u64,
    /// Errors counted in this second.
    pub errors: u64,
}

/// How well the open loop kept to its schedule in the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Requests due in the window (rate × window, over every connection's schedule).
    pub due: u64,
    /// Of those, requests sent (the rest were still waiting for their connection at the end).
    pub sent: u64,
    /// Sent more than 1 ms after their due time because their connection was busy with the
    /// previous request or reconnecting: the target did not keep up.
    pub late_waiting: u64,
    /// Sent more than 1 ms after their due time although their connection was free: the
    /// generator's loop itself was late.
    pub late_generator: u64,
    /// (late_waiting + late_generator + due − sent) / due.
    pub behind_share: f64,
}

/// CPU use of one generator thread over its view of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ThreadCpu {
    /// The core it was pinned to, if any.
    pub core: Option<usize>,
    /// Nanoseconds between the thread's two rusage reads (≈ the window).
    pub span_ns: u64,
    /// User CPU time in that span, ns.
    pub user_ns: u64,
    /// System CPU time in that span, ns.
    pub sys_ns: u64,
    /// (user + sys) / span: the share of one core this thread used.
    pub share: f64,
}

/// The generator's own CPU use in the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Per thread, in thread order.
    pub threads: Vec<ThreadCpu>,
    /// Sum of user + sys over the sum of spans: the share of `threads` cores used.
    pub share: f64,
}

/// Counts over the whole run: warmup, window and drain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Requests sent.
    pub sent: u64,
    /// Responses received (any status).
    pub responses: u64,
    /// Errors by kind.
    pub errors: ErrorCounts,
    /// Requests still without response when the drain gave up (after the timeout).
    pub abandoned: u64,
}

/// What one load run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// The target as given.
    pub target: String,
    /// The address the generator connected to.
    pub addr: String,
    /// The request path.
    pub path: String,
    /// "closed" (next request on response) or "open" (requests due on a schedule).
    pub mode: String,
    /// Open loop: the requested total rate, req/s.
    pub rate: Option<f64>,
    /// Keep-alive connections.
    pub connections: usize,
    /// Generator threads.
    pub threads: usize,
    /// Cores the threads were pinned to (thread i on `pin_cores[i % len]`); empty: unpinned.
    pub pin_cores: Vec<usize>,
    /// Warmup, ns.
    pub warmup_ns: u64,
    /// The measured window, ns.
    pub window_ns: u64,
    /// Responses (any status) completed in the window.
    pub completed: u64,
    /// completed / window, req/s.
    pub requests_per_sec: f64,
    /// Response time − intended send time (due time in the open loop), for requests intended
    /// in the window.
    pub latency_corrected: Latency,
    /// Response time − actual send time, for the same requests.
    pub latency_uncorrected: Latency,
    /// Errors counted in the window, by kind.
    pub errors: ErrorCounts,
    /// Per second of the window (the last entry covers a partial second if the window is not
    /// a whole number of seconds).
    pub per_second: Vec<Second>,
    /// Open loop: adherence to the schedule.
    pub schedule: Option<Schedule>,
    /// The generator's own CPU use in the window.
    pub cpu: Cpu,
    /// Counts over the whole run (warmup + window + drain).
    pub totals: Totals,
    /// Reasons to distrust the figures (the generator may be the bottleneck, …).
    pub warnings: Vec<String>,
    /// True when SIGINT/SIGTERM stopped the run early: the figures cover the part of the
    /// window before the signal (`window_ns` is that part).
    #[serde(default)]
    pub interrupted: bool,
}

/// Runs the load described by `cfg` and reports what it measured. Errors: invalid config,
/// a target refused (non-loopback), or connections that cannot be opened.
pub fn run(cfg: &LoadConfig) -> Result<LoadReport, String> {
    run_observed(cfg, &mut |_| {})
}

/// An edge of the measured window, as the generator's schedule has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The warmup ended; the window opens.
    WindowStart,
    /// The window closes (connections are still open; the drain follows).
    WindowEnd,
}

/// As [`run`], calling `observe` from the calling thread at the window's start and end
/// (within a scheduler wake-up of the generator threads' own edges). Every connection stays
/// open until `observe(WindowEnd)` has returned: the server runner reads the server's kernel
/// accounting there.
pub fn run_observed(cfg: &LoadConfig, observe: &mut dyn FnMut(Edge)) -> Result<LoadReport, String> {
    let addr = cfg.validate()?;
    let request: Arc<[u8]> = frame::build_request(&cfg.path, &cfg.target).into();
    let t = cfg.threads;
    let (c, rate) = (cfg.connections, cfg.rate);
    let interval = rate.map(|r| Duration::from_secs_f64(c as f64 / r));
    let stagger = rate.map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));

    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(), String>)>();
    let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut start_txs = Vec::with_capacity(t);
    let mut handles = Vec::with_capacity(t);
    let mut first = 0;
    for i in 0..t {
        let n = c / t + usize::from(i < c % t);
        let plan = worker::Plan {
            addr,
            request: request.clone(),
            interval,
            stagger,
            first_conn: first,
            conns: n,
            timeout: cfg.timeout,
        };
        first += n;
        let core = (!cfg.pin_cores.is_empty()).then(|| cfg.pin_cores[i % cfg.pin_cores.len()]);
        let (start_tx, start_rx) = mpsc::channel::<worker::Times>();
        start_txs.push(start_tx);
        let ready_tx = ready_tx.clone();
        let release = Arc::clone(&release);
        let h = std::thread::Builder::new()
            .name(format!("load-{i}"))
            .spawn(move || -> Result<worker::Output, String> {
                let setup = core
                    .map_or(Ok(()), crate::sys::pin_current)
                    .and_then(|_| worker::connect_all(&plan));
                let streams = match setup {
                    Ok(s) => {
                        let _ = ready_tx.send((i, Ok(())));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send((i, Err(e.clone())));
                        return Err(e);
                    }
                };
                drop(ready_tx);
                let times = start_rx
                    .recv()
                    .map_err(|_| "aborted before the start".to_string())?;
                worker::run(&plan, streams, times, &release)
            })
            .map_err(|e| format!("cannot start generator thread: {e}"))?;
        handles.push(h);
    }
    drop(ready_tx);

    let mut setup_err = None;
    let mut cut: Option<Duration> = None;
    for _ in 0..t {
        match ready_rx.recv() {
            Ok((_, Ok(()))) => {}
            Ok((i, Err(e))) => {
                setup_err.get_or_insert(format!("thread {i}: {e}"));
            }
            Err(_) => {
                setup_err.get_or_insert("a generator thread died during setup".into());
                break;
            }
        }
    }
    if setup_err.is_none() {
        let start = Instant::now();
        let times = worker::Times {
            start,
            window_start: start + cfg.warmup,
            window_end: start + cfg.warmup + cfg.duration,
            drain_until: start + cfg.warmup + cfg.duration + cfg.timeout,
        };
        for tx in &start_txs {
            let _ = tx.send(times);
        }
        drop(start_txs);
        for (edge, at) in [
            (Edge::WindowStart, times.window_start),
            (Edge::WindowEnd, times.window_end),
        ] {
            let now = Instant::now();
            // A SIGINT/SIGTERM (only when `sys::signal` is installed, as by `concbench load`)
            // cuts the window short; the threads see it too and stop.
            if at > now && crate::sys::signal::sleep(at - now).is_some() {
                let at = Instant::now().clamp(times.window_start, times.window_end);
                cut = Some(at - times.window_start);
                break;
            }
            observe(edge);
        }
    } else {
        drop(start_txs);
    }
    release.store(true, std::sync::atomic::Ordering::Release);
    let mut outs = Vec::with_capacity(t);
    for h in handles {
        match h.join() {
            Ok(Ok(o)) => outs.push(o),
            Ok(Err(e)) => {
                setup_err.get_or_insert(e);
            }
            Err(_) => {
                setup_err.get_or_insert("a generator thread panicked".into());
            }
        }
    }
    if let Some(e) = setup_err {
        return Err(e);
    }
    let interrupted = cut.is_some() || crate::sys::signal::received().is_some();
    let mut report = merge(cfg, addr, outs, cut.unwrap_or(cfg.duration));
    if interrupted {
        report.interrupted = true;
        report.warnings.push(format!(
            "interrupted after {} of the {} window: the figures cover only that part",
            fmt_ns(report.window_ns),
            fmt_ns(cfg.duration.as_nanos() as u64)
        ));
    }
    Ok(report)
}

fn merge(
    cfg: &LoadConfig,
    addr: SocketAddr,
    outs: Vec<worker::Output>,
    window: Duration,
) -> LoadReport {
    let mut per_second: Vec<Second> = Vec::new();
    let mut completed = 0;
    let mut errors = ErrorCounts::default();
    let mut totals = Totals::default();
    let mut sched = Schedule::default();
    let mut cpu = Cpu::default();
    for (i, o) in outs.iter().enumerate() {
        if per_second.len() < o.per_second.len() {
            per_second.resize(o.per_second.len(), Second::default());
        }
        for (s, &(c, e)) in per_second.iter_mut().zip(&o.per_second) {
            s.completed += c;
            s.errors += e;
        }
        completed += o.completed;
        errors.add(&o.errors);
        totals.sent += o.total_sent;
        totals.responses += o.total_responses;
        totals.errors.add(&o.total_errors);
        totals.abandoned += o.abandoned;
        sched.due += o.due;
        sched.sent += o.sent_due;
        sched.late_waiting += o.late_waiting;
        sched.late_generator += o.late_loop;
        let (span, ru) = o.cpu;
        cpu.threads.push(ThreadCpu {
            core: (!cfg.pin_cores.is_empty()).then(|| cfg.pin_cores[i % cfg.pin_cores.len()]),
            span_ns: span,
            user_ns: ru.user_ns,
            sys_ns: ru.sys_ns,
            share: if span > 0 {
                ru.cpu_ns() as f64 / span as f64
            } else {
                0.0
            },
        });
    }
    let mut hists = outs.into_iter().map(|o| (o.corrected, o.uncorrected));
    let (mut corrected, mut uncorrected) = hists.next().expect("at least one thread");
    for (c, u) in hists {
        // Both histograms auto-resize, so adding cannot fail on range.
        let _ = corrected.add(&c);
        let _ = uncorrected.add(&u);
    }
    let (cpu_ns, span_ns) = cpu.threads.iter().fold((0u64, 0u64), |(c, s), t| {
        (c + t.user_ns + t.sys_ns, s + t.span_ns)
    });
    cpu.share = if span_ns > 0 {
        cpu_ns as f64 / span_ns as f64
    } else {
        0.0
    };
    let window_ns = window.as_nanos() as u64;
    let schedule = cfg.rate.map(|_| {
        let late =
            sched.late_waiting + sched.late_generator + (sched.due - sched.sent.min(sched.due));
        sched.behind_share = if sched.due > 0 {
            late as f64 / sched.due as f64
        } else {
            0.0
        };
        sched
    });

    let mut warnings = Vec::new();
    for (i, t) in cpu.threads.iter().enumerate() {
        if t.share > CPU_WARN {
            warnings.push(format!(
                "generator thread {i} used {:.0}% of a core in the window: the generator may be \
                 the bottleneck (add --threads, or give it a core of its own)",
                t.share * 100.0
            ));
        }
    }
    if let Some(s) = &schedule
        && s.behind_share > BEHIND_WARN
    {
        let cause = if s.late_generator > s.late_waiting {
            "mostly because the generator's loop ran late: the generator is the bottleneck"
        } else {
            "mostly because connections were still waiting for earlier responses: the target \
             does not keep up with this rate over these connections (corrected latency shows it)"
        };
        warnings.push(format!(
            "open loop fell behind its schedule: {:.1}% of the {} requests due in the window were \
             sent more than 1 ms late or not at all, {cause}",
            s.behind_share * 100.0,
            s.due
        ));
    }
    if completed == 0 {
        warnings.push("no response completed in the window".into());
    }
    if totals.abandoned > 0 {
        warnings.push(format!(
            "{} request(s) still had no response when the drain ended",
            totals.abandoned
        ));
    }

    LoadReport {
        target: cfg.target.clone(),
        addr: addr.to_string(),
        path: cfg.path.clone(),
        mode: if cfg.rate.is_some() { "open" } else { "closed" }.into(),
        rate: cfg.rate,
        connections: cfg.connections,
        threads: cfg.threads,
        pin_cores: cfg.pin_cores.clone(),
        warmup_ns: cfg.warmup.as_nanos() as u64,
        window_ns,
        completed,
        requests_per_sec: if window.is_zero() {
            0.0
        } else {
            completed as f64 / window.as_secs_f64()
        },
        latency_corrected: Latency::of(&corrected),
        latency_uncorrected: Latency::of(&uncorrected),
        errors,
        per_second,
        schedule,
        cpu,
        totals,
        warnings,
        interrupted: false,
    }
}

/// `concbench load`: runs, prints the summary (or `--json`), returns the exit code: 0 done
/// (warnings included), 1 the run failed (e.g. cannot connect), 2 bad input (including a
/// non-loopback target without `--allow-remote`).
pub fn main(args: LoadArgs) -> ExitCode {
    let cfg = LoadConfig::from(&args);
    if let Err(e) = cfg.validate() {
        eprintln!("Error: {e}");
        return ExitCode::from(2);
    }
    // Every connection is a socket; the threads' epoll and timer fds and std's come on top.
    let fds = cfg.connections as u64 + 4 * cfg.threads as u64 + 32;
    match crate::sys::limits::ensure_nofile(fds, &format!("--connections {}", cfg.connections)) {
        Ok(Some(note)) => eprintln!("concbench load: {note}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(2);
        }
    }
    crate::stop::prepare();
    match run(&cfg) {
        Ok(r) => {
            if args.json {
                match serde_json::to_string_pretty(&r) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("Error: cannot serialize the report: {e}");
                        return ExitCode::from(1);
                    }
                }
                // The summary carries the warnings; with --json they also go to stderr.
                for w in &r.warnings {
                    eprintln!("WARNING: {w}");
                }
            } else {
                print!("{}", render(&r));
            }
            if let Some(sig) = crate::sys::signal::received() {
                return crate::stop::exit(sig);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {}", crate::sys::limits::explain(e));
            match crate::sys::signal::received() {
                Some(sig) => crate::stop::exit(sig),
                None => ExitCode::from(1),
            }
        }
    }
}

/// Formats nanoseconds with a unit, 3 significant-ish digits.
fn fmt_ns(ns: u64) -> String {
    let v = ns as f64;
    if v >= 1e9 {
        format!("{:.2}s", v / 1e9)
    } else if v >= 1e6 {
        format!("{:.2}ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}us", v / 1e3)
    } else {
        format!("{ns}ns")
    }
}

/// The human summary of a report.
pub fn render(r: &LoadReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mode = match r.rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_string(),
    };
    let pin = if r.pin_cores.is_empty() {
        "unpinned".to_string()
    } else {
        format!("pinned to {:?}", r.pin_cores)
    };
    let _ = writeln!(
        s,
        "load {} ({}) GET {}: {mode}, {} connections, {} thread(s) {pin}, warmup {}, window {}",
        r.target,
        r.addr,
        r.path,
        r.connections,
        r.threads,
        fmt_ns(r.warmup_ns),
        fmt_ns(r.window_ns)
    );
    let _ = writeln!(
        s,
        "  {:.0} req/s  ({} responses in the window; run total {} sent, {} answered)",
        r.requests_per_sec, r.completed, r.totals.sent, r.totals.responses
    );
    let _ = writeln!(
        s,
        "  latency       {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    for (name, l) in [
        ("corrected", &r.latency_corrected),
        ("uncorrected", &r.latency_uncorrected),
    ] {
        let _ = writeln!(
            s,
            "  {name:<13} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            fmt_ns(l.p50_ns),
            fmt_ns(l.p90_ns),
            fmt_ns(l.p99_ns),
            fmt_ns(l.p999_ns),
            fmt_ns(l.max_ns),
            fmt_ns(l.mean_ns as u64)
        );
    }
    let e = &r.errors;
    let _ = writeln!(
        s,
        "  errors {}: connect {}, read/write {}, timeout {}, non-2xx {}, closed {}, protocol {}",
        e.total(),
        e.connect,
        e.io,
        e.timeout,
        e.status,
        e.closed,
        e.protocol
    );
    if let Some(sc) = &r.schedule {
        let _ = writeln!(
            s,
            "  schedule: {} due, {} sent, late {} (connection busy) + {} (generator), behind {:.1}%",
            sc.due,
            sc.sent,
            sc.late_waiting,
            sc.late_generator,
            sc.behind_share * 100.0
        );
    }
    let per: Vec<String> = r
        .cpu
        .threads
        .iter()
        .map(|t| format!("{:.0}%", t.share * 100.0))
        .collect();
    let _ = writeln!(
        s,
        "  generator CPU {:.0}% of {} core(s) (per thread: {})",
        r.cpu.share * 100.0,
        r.threads,
        per.join(", ")
    );
    let per_sec: Vec<String> = r
        .per_second
        .iter()
        .map(|p| p.completed.to_string())
        .collect();
    let _ = writeln!(s, "  per second: {}", per_sec.join(" "));
    for w in &r.warnings {
        let _ = writeln!(s, "  WARNING: {w}");
    }
    s
}
