//! Units: what carries a worker. Threads are scoped threads of the cell host; processes are
//! forked from it (single-threaded at that point) and send their [`WorkerReport`] back as JSON
//! through a pipe. Either way the same `run_worker` body runs, and every process is reaped.
//!
//! While the window runs, the host may ask the units to [`Supervise`] themselves: in a fault
//! cell the process units act as Nginx's master, replacing a worker process that died (its
//! report pipe hangs up) with a fresh one of the same index; thread units cannot do that.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::UnitKind;
use super::worker::{WorkerReport, WorkerSpec, run_worker};
use crate::measure::control::STOP;
use crate::sys::fd::close_inherited;
use crate::sys::{Child, fork_child};

/// Identifies a running worker for the host: the pid whose memory it lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// Worker index, or None for the cell host itself (which holds thread workers).
    pub worker: Option<usize>,
    /// Process to read `/proc/PID/smaps_rollup` of (0 = the cell host itself).
    pub pid: i32,
}

/// What the cell host can ask of its workers' units while they run.
pub trait Supervise {
    /// Waits until `until`. Process units also act as Nginx's master meanwhile: a worker
    /// process that dies is reaped and replaced by a fresh one with the same index (once per
    /// index), and the fault board (if any) records when. Thread units just sleep.
    fn watch_until(&mut self, until: Instant);
    /// The units running now (a replacement's pid after a respawn).
    fn running(&self) -> Vec<Running>;
    /// Worker processes that died while watched: (worker, how it ended).
    fn deaths(&self) -> Vec<(usize, String)>;
}

/// How long a worker process of a fault cell may take to report after STOP before the host
/// kills it (a hung worker; Nginx's `worker_shutdown_timeout`).
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Starts one unit per spec, runs `host` while they work, then collects every report.
///
/// `host` drives the phases (gate, warmup, window, stop). Whatever it does, the workers are
/// told to stop and the gate is opened afterwards, so no worker is left waiting, and every
/// forked worker is reaped before this returns.
pub fn run_units<R>(
    kind: UnitKind,
    specs: &[WorkerSpec<'_>],
    host: impl FnOnce(&mut dyn Supervise) -> R,
) -> (R, Vec<Result<WorkerReport, String>>) {
    match kind {
        UnitKind::Thread => run_threads(specs, host),
        UnitKind::Process => run_processes(specs, host),
    }
}

fn stop_all(specs: &[WorkerSpec<'_>]) {
    if let Some(s) = specs.first() {
        s.control.set_phase(STOP);
        s.gate.open();
    }
}

struct Threads;

impl Supervise for Threads {
    fn watch_until(&mut self, until: Instant) {
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
    fn running(&self) -> Vec<Running> {
        vec![Running {
            worker: None,
            pid: 0,
        }]
    }
    fn deaths(&self) -> Vec<(usize, String)> {
        Vec::new()
    }
}

fn run_threads<R>(
    specs: &[WorkerSpec<'_>],
    host: impl FnOnce(&mut dyn Supervise) -> R,
) -> (R, Vec<Result<WorkerReport, String>>) {
    std::thread::scope(|s| {
        let handles: Vec<_> = specs
            .iter()
            .map(|spec| {
                std::thread::Builder::new()
                    .name(format!("worker-{}", spec.index))
                    .spawn_scoped(s, move || run_worker(spec))
            })
            .collect();
        let spawned = handles.iter().filter(|h| h.is_ok()).count();
        // A failed spawn (EAGAIN) never marks ready: count it as ready-with-error for the host.
        for _ in spawned..specs.len() {
            if let Some(s) = specs.first() {
                s.control.mark_ready();
            }
        }
        let r = host(&mut Threads);
        stop_all(specs);
        let reports = handles
            .into_iter()
            .enumerate()
            .map(|(w, h)| match h {
                Err(e) => Err(format!("worker {w}: thread spawn failed: {e}")),
                Ok(h) => h.join().map_err(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "unknown panic".into());
                    format!("worker {w}: thread panicked: {msg}")
                }),
            })
            .collect();
        (r, reports)
    })
}

type Unit = Result<(Child, std::io::PipeReader), String>;

/// Forks one worker process that runs `spec` and sends its report through a pipe.
fn spawn_process(spec: &WorkerSpec<'_>, gate_fd: Option<i32>) -> Unit {
    let started = std::io::pipe().and_then(|(reader, writer)| {
        let reader_fd = reader.as_raw_fd();
        let child = fork_child(|| {
            if let Some(g) = gate_fd {
                close_inherited(g);
            }
            close_inherited(reader_fd);
            let report = run_worker(spec);
            let mut out = std::io::BufWriter::new(&writer);
            let ok = serde_json::to_writer(&mut out, &report).is_ok() && out.flush().is_ok();
            if ok { 0 } else { 3 }
        });
        drop(writer);
        child.map(|c| (c, reader))
    });
    started.map_err(|e| format!("worker {}: fork failed: {e}", spec.index))
}

/// The worker processes, and the master's bookkeeping of respawns.
struct Processes<'s, 'a> {
    specs: &'s [WorkerSpec<'a>],
    units: Vec<Unit>,
    watched: Vec<bool>,
    respawned: Vec<bool>,
    deaths: Vec<(usize, String)>,
}

impl Processes<'_, '_> {
    /// Reaps dead worker `w` and forks its replacement (same index and tasks, same counter).
    fn replace(&mut self, w: usize) {
        let how = match &mut self.units[w] {
            Ok((child, _)) => child
                .wait()
                .map(|e| e.describe())
                .unwrap_or_else(|e| format!("waitpid: {e}")),
            Err(_) => return,
        };
        let reaped = crate::fault::now_ns();
        self.deaths.push((w, how.clone()));
        if self.respawned[w] {
            self.watched[w] = false;
            self.units[w] = Err(format!("worker {w}: its replacement died too: {how}"));
            return;
        }
        self.respawned[w] = true;
        let mut spec = self.specs[w].clone();
        spec.fault = spec.fault.map(|h| crate::fault::FaultHook {
            plan: None,
            replacement: true,
            ..h
        });
        match spawn_process(&spec, None) {
            Ok(unit) => {
                if let Some(h) = spec.fault {
                    h.board
                        .respawned(reaped, crate::fault::now_ns(), unit.0.pid());
                }
                self.units[w] = Ok(unit);
            }
            Err(e) => {
                self.watched[w] = false;
                self.units[w] = Err(format!("worker {w} died ({how}); replacing it failed: {e}"));
            }
        }
    }
}

impl Supervise for Processes<'_, '_> {
    fn watch_until(&mut self, until: Instant) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsFd;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let ms = left.as_millis().clamp(1, 1000) as u16;
            let idx: Vec<usize> = (0..self.units.len())
                .filter(|&w| self.watched[w] && self.units[w].is_ok())
                .collect();
            let dead: Vec<usize> = {
                let mut fds: Vec<PollFd<'_>> = idx
                    .iter()
                    .filter_map(|&w| self.units[w].as_ref().ok())
                    .map(|(_, r)| PollFd::new(r.as_fd(), PollFlags::POLLIN))
                    .collect();
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(0) => continue,
                    Ok(_) => {}
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => {
                        std::thread::sleep(left);
                        return;
                    }
                }
                // Hung up with nothing to read: the worker died without reporting. Data to
                // read: it stopped early on its own (an error it reports): not a crash, so it
                // is left for the report collection and not replaced.
                let mut dead = Vec::new();
                for (&w, f) in idx.iter().zip(&fds) {
                    let r = f.revents().unwrap_or(PollFlags::empty());
                    if r.contains(PollFlags::POLLIN) {
                        self.watched[w] = false;
                    } else if !r.is_empty() {
                        dead.push(w);
                    }
                }
                dead
            };
            for w in dead {
                self.replace(w);
            }
        }
    }

    fn running(&self) -> Vec<Running> {
        self.units
            .iter()
            .enumerate()
            .filter_map(|(w, c)| {
                c.as_ref().ok().map(|(c, _)| Running {
                    worker: Some(w),
                    pid: c.pid(),
                })
            })
            .collect()
    }

    fn deaths(&self) -> Vec<(usize, String)> {
        self.deaths.clone()
    }
}

fn run_processes<R>(
    specs: &[WorkerSpec<'_>],
    host: impl FnOnce(&mut dyn Supervise) -> R,
) -> (R, Vec<Result<WorkerReport, String>>) {
    let gate_fd = specs.first().and_then(|s| s.gate.writer_fd());
    let mut units = Vec::with_capacity(specs.len());
    for spec in specs {
        let u = spawn_process(spec, gate_fd);
        if u.is_err() {
            spec.control.mark_ready();
        }
        units.push(u);
    }
    let mut procs = Processes {
        specs,
        units,
        watched: vec![true; specs.len()],
        respawned: vec![false; specs.len()],
        deaths: Vec::new(),
    };
    let r = host(&mut procs);
    stop_all(specs);
    let grace = specs.first().and_then(|s| s.fault).map(|_| STOP_GRACE);
    let reports = procs
        .units
        .into_iter()
        .enumerate()
        .map(|(w, c)| collect(w, c?, grace))
        .collect();
    (r, reports)
}

/// Reads worker `w`'s report and reaps it; with a grace, a worker that has not reported by
/// then is killed (and reaped) instead.
fn collect(
    w: usize,
    (mut child, mut reader): (Child, std::io::PipeReader),
    grace: Option<Duration>,
) -> Result<WorkerReport, String> {
    if let Some(g) = grace
        && !crate::sys::fd::poll_one(reader.as_raw_fd(), false, Some(g)).unwrap_or(true)
    {
        let exit = child.kill_and_reap().map(|e| e.describe());
        return Err(format!(
            "worker {w} (pid {}) did not stop within {g:?} after the window and was killed ({})",
            child.pid(),
            exit.unwrap_or_else(|e| e.to_string())
        ));
    }
    let mut buf = Vec::new();
    let read = reader.read_to_end(&mut buf);
    let exit = child
        .wait()
        .map_err(|e| format!("worker {w}: waitpid: {e}"))?;
    read.map_err(|e| format!("worker {w}: reading its report: {e}"))?;
    if buf.is_empty() || !exit.success() {
        return Err(format!(
            "worker {w} (pid {}) died before reporting: {}",
            child.pid(),
            exit.describe()
        ));
    }
    serde_json::from_slice(&buf).map_err(|e| format!("worker {w}: bad report: {e}"))
}

#[cfg(test)]
mod tests {
    //! A worker that panics (while setting up, or at its third op) must fail the cell with a
    //! message, let the other workers finish, and leave no process behind: under threads and
    //! under forked processes.

    use super::*;
    use crate::measure::control::{Control, Gate, MEASURE, WARMUP};
    use crate::model::worker::WorkerSpec;
    use crate::model::{DriverKind, Load};
    use crate::workload::{Step, Task, TaskCtx, Workload, WorkloadError};
    use std::time::Duration;

    struct Faulty {
        panic_in_setup: bool,
    }
    struct FaultyTask {
        ops: u64,
        victim: bool,
    }
    impl Workload for Faulty {
        fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
            if self.panic_in_setup && ctx.task == 1 {
                panic!("setup fault");
            }
            Ok(Box::new(FaultyTask {
                ops: 0,
                victim: ctx.task == 1,
            }))
        }
    }
    impl Task for FaultyTask {
        fn step(&mut self) -> Result<Step, WorkloadError> {
            self.ops += 1;
            if self.victim && self.ops == 3 {
                panic!("op fault");
            }
            std::thread::sleep(Duration::from_micros(100));
            Ok(Step::Done)
        }
    }

    fn run(kind: UnitKind, panic_in_setup: bool) -> Vec<Result<WorkerReport, String>> {
        std::panic::set_hook(Box::new(|_| {}));
        let wl = Faulty { panic_in_setup };
        let control = Control::new(2).unwrap();
        let gate = Gate::new().unwrap();
        let specs: Vec<WorkerSpec<'_>> = (0..2)
            .map(|i| WorkerSpec {
                index: i,
                tasks: i..i + 1,
                total_tasks: 2,
                core: None,
                driver: DriverKind::Blocking,
                load: Load::Closed,
                workload: &wl,
                control: &control,
                gate: &gate,
                fault: None,
            })
            .collect();
        let ((), reports) = run_units(kind, &specs, |_: &mut dyn Supervise| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while control.ready() < 2 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "workers never got ready"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            control.set_phase(WARMUP);
            gate.open();
            control.set_phase(MEASURE);
            std::thread::sleep(Duration::from_millis(50));
        });
        reports
    }

    fn no_children_left() {
        let r = nix::sys::wait::waitpid(
            nix::unistd::Pid::from_raw(-1),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
        assert_eq!(
            r,
            Err(nix::errno::Errno::ECHILD),
            "a worker process was left"
        );
    }

    #[test]
    fn panicking_op_fails_only_its_worker() {
        for kind in [UnitKind::Thread, UnitKind::Process] {
            let r = run(kind, false);
            assert!(
                r[0].as_ref().is_ok_and(|w| w.total_ops > 3),
                "{kind:?}: {:?}",
                r[0]
            );
            let e = r[1].as_ref().unwrap_err();
            assert!(
                e.contains("panicked") || e.contains("died before reporting"),
                "{kind:?}: {e}"
            );
            no_children_left();
        }
    }

    #[test]
    fn panicking_setup_still_releases_the_host() {
        for kind in [UnitKind::Thread, UnitKind::Process] {
            let r = run(kind, true);
            assert!(r[0].is_ok(), "{kind:?}: {:?}", r[0]);
            assert!(r[1].is_err(), "{kind:?}");
            no_children_left();
        }
    }
}

#[cfg(test)]
mod master_tests {
    //! The master's respawn: a worker process that dies in the window is replaced (once) and
    //! the replacement counts on; a worker that stops on its own with an error is not.

    use super::*;
    use crate::fault::{FaultBoard, FaultHook, FaultKind, FaultSpec};
    use crate::measure::control::{Control, Gate, MEASURE, WARMUP};
    use crate::model::{DriverKind, Load};
    use crate::workload::{Step, Task, TaskCtx, Workload, WorkloadError};

    /// Task 1 fails with an error at its 50th op when `err` is set; otherwise ops sleep 100 µs.
    struct Slow {
        err: bool,
    }
    struct SlowTask {
        ops: u64,
        fail: bool,
    }
    impl Workload for Slow {
        fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
            Ok(Box::new(SlowTask {
                ops: 0,
                fail: self.err && ctx.task == 1,
            }))
        }
    }
    impl Task for SlowTask {
        fn step(&mut self) -> Result<Step, WorkloadError> {
            self.ops += 1;
            if self.fail && self.ops == 50 {
                return Err(WorkloadError::Other("task error".into()));
            }
            std::thread::sleep(Duration::from_micros(100));
            Ok(Step::Done)
        }
    }

    type Ran = (
        Vec<(usize, String)>,
        Vec<Result<WorkerReport, String>>,
        FaultBoard,
    );

    fn run(err: bool, plan: Option<FaultSpec>) -> Ran {
        let wl = Slow { err };
        let control = Control::new(2).unwrap();
        let gate = Gate::new().unwrap();
        let board = FaultBoard::new(2).unwrap();
        let specs: Vec<WorkerSpec<'_>> = (0..2)
            .map(|i| WorkerSpec {
                index: i,
                tasks: i..i + 1,
                total_tasks: 2,
                core: None,
                driver: DriverKind::Blocking,
                load: Load::Closed,
                workload: &wl,
                control: &control,
                gate: &gate,
                fault: Some(FaultHook {
                    board: &board,
                    control: &control,
                    plan: if i == 1 { plan } else { None },
                    replacement: false,
                }),
            })
            .collect();
        let (deaths, reports) = run_units(UnitKind::Process, &specs, |sup| {
            while control.ready() < 2 {
                std::thread::sleep(Duration::from_millis(1));
            }
            control.set_phase(WARMUP);
            gate.open();
            control.set_phase(MEASURE);
            sup.watch_until(Instant::now() + Duration::from_millis(500));
            sup.deaths()
        });
        (deaths, reports, board)
    }

    #[test]
    fn a_dead_worker_process_is_replaced_and_counts_on() {
        let (deaths, reports, board) = run(
            false,
            Some(FaultSpec {
                kind: FaultKind::Kill9,
                at: 20,
            }),
        );
        assert_eq!(deaths.len(), 1, "{deaths:?}");
        assert_eq!(deaths[0].0, 1);
        assert!(deaths[0].1.contains("SIGKILL"), "{deaths:?}");
        let v = board.view();
        assert!(v.fired && v.reaped >= v.t_fault && v.forked >= v.reaped);
        assert!(v.first_op >= v.forked && v.new_pid > 0, "{v:?}");
        // The replacement reported as worker 1 and counted on from its predecessor's count.
        let r = reports[1].as_ref().unwrap();
        assert_eq!(r.pid, v.new_pid);
        assert!(
            r.total_ops > v.at_fault[1],
            "{} vs {:?}",
            r.total_ops,
            v.at_fault
        );
        assert!(reports[0].is_ok());
    }

    #[test]
    fn a_worker_that_stops_with_an_error_is_not_replaced() {
        let (deaths, reports, board) = run(true, None);
        assert!(deaths.is_empty(), "{deaths:?}");
        assert!(!board.fired() && board.view().new_pid == 0);
        let r = reports[1].as_ref().unwrap();
        assert!(
            r.error.as_deref().is_some_and(|e| e.contains("task error")),
            "{r:?}"
        );
    }
}
