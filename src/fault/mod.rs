//! Fault injection: one worker fails on purpose, for real, and the harness measures what the
//! model did about it: the lecture's claim that a crashing process leaves its siblings running
//! while a crashing thread can take its whole process down, made a measurement.
//!
//! Every workload accepts `fault = "KIND@K"` (default none). **Worker 0** fails when it
//! completes its **K-th op of the measured window** (ops counted by the worker from the first
//! op it completes after it sees the MEASURE phase): right before that op would be counted it
//! writes the fault instant and every worker's counter into the [`FaultBoard`] (shared memory
//! mapped by the harness before the cell host is forked, so it survives the host) and then:
//!
//! - `panic`: a Rust panic (`resume_unwind`: the unwinding without the panic hook, whose
//!   backtrace under RUST_BACKTRACE would add half a second). A thread worker unwinds and ends
//!   (the thread join catches it: the thread is lost, the process lives); a forked worker
//!   exits with code 101 and is replaced.
//! - `abort`: `libc::abort()` (SIGABRT), which kills the whole process.
//! - `segv`: a store to a `PROT_NONE` page: a real SIGSEGV (see `sys::fault`).
//! - `kill9`: `kill(getpid(), SIGKILL)`.
//! - `hang`: an endless blocking wait (futex park); never returns.
//!
//! Process models (`processes`, `process-loops`) respawn a dead worker as Nginx's master does:
//! the cell host sees the worker's report pipe hang up, reaps it, and forks a replacement with
//! the same index, which rebuilds its tasks and keeps counting into the same padded counter.
//! A hung worker process is killed 5 s after the window (the master's shutdown timeout). Under
//! thread models abort/segv/kill9 kill the cell host: the harness reads the board and records
//! `process-lost` with the ops counted before the crash; a hung thread is ended by the
//! harness's watchdog with the cell host.
//!
//! # Timing model
//! All instants are `CLOCK_MONOTONIC` nanoseconds, comparable across the harness, the cell host
//! and the workers. The fault instant is read by the failing worker right before it faults;
//! the respawn time runs from it to the replacement's first completed op, so it contains the
//! kernel's delivery of the death, the host's wake-up, `wait4`, `fork`, the replacement's task
//! setup and one op. The outcome is computed in [`outcome`].

pub mod outcome;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::measure::control::Control;
use crate::sys::SharedSlice;

/// The worker that fails.
pub const FAULT_WORKER: usize = 0;

/// How the failing worker fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A Rust panic (unwinds).
    Panic,
    /// `abort()`: SIGABRT to the whole process.
    Abort,
    /// A real segmentation fault.
    Segv,
    /// SIGKILL to its own process.
    Kill9,
    /// Blocks forever.
    Hang,
}

/// Every kind, in suite spelling.
pub const KINDS: &[(&str, FaultKind)] = &[
    ("panic", FaultKind::Panic),
    ("abort", FaultKind::Abort),
    ("segv", FaultKind::Segv),
    ("kill9", FaultKind::Kill9),
    ("hang", FaultKind::Hang),
];

impl FaultKind {
    /// Suite spelling.
    pub fn id(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map(|(n, _)| *n)
            .expect("every kind is listed")
    }

    fn code(self) -> u64 {
        KINDS.iter().position(|(_, k)| *k == self).expect("listed") as u64 + 1
    }
}

/// An injected fault: `kind` at worker 0's `at`-th op of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultSpec {
    /// How it fails.
    pub kind: FaultKind,
    /// K (≥ 1).
    pub at: u64,
}

impl std::fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.kind.id(), self.at)
    }
}

impl FaultSpec {
    /// Parses `"none"` (→ None) or `"KIND@K"`; the error says what is accepted.
    pub fn parse(raw: &str) -> Result<Option<FaultSpec>, String> {
        let s = raw.trim();
        if s == "none" {
            return Ok(None);
        }
        let kinds = KINDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        let bad = || {
            format!(
                "\"{raw}\" is not a fault: write \"KIND@K\" with KIND one of {kinds} and K ≥ 1 \
                 the op of worker 0 that fails (e.g. \"kill9@5000\"), or \"none\""
            )
        };
        let (kind, at) = s.split_once('@').ok_or_else(bad)?;
        let kind = KINDS
            .iter()
            .find(|(n, _)| *n == kind.trim())
            .map(|(_, k)| *k)
            .ok_or_else(bad)?;
        let at: u64 = at.trim().replace('_', "").parse().map_err(|_| bad())?;
        if at == 0 {
            return Err(bad());
        }
        Ok(Some(FaultSpec { kind, at }))
    }
}

/// Monotonic clock in nanoseconds (comparable across processes).
pub fn now_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

const FIRED: usize = 0;
const KIND: usize = 1;
const T_FAULT: usize = 2;
const T0: usize = 3;
const T1: usize = 4;
const REAPED: usize = 5;
const FORKED: usize = 6;
const NEW_PID: usize = 7;
const FIRST_OP: usize = 8;
const FIRST_OP_COUNT: usize = 9;
const HEADER: usize = 10;

/// The fault's record in `MAP_SHARED` memory, mapped by the harness before it forks the cell
/// host: written by the failing worker (fault instant, every counter at that instant), the
/// host (window edges and counters, reap and fork instants) and the replacement (first op);
/// readable by the harness even after the host died.
pub struct FaultBoard {
    slots: SharedSlice<AtomicU64>,
    workers: usize,
}

/// Counters and instants read back from a board.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BoardView {
    /// The fault fired.
    pub fired: bool,
    /// Fault instant (0 if not fired).
    pub t_fault: u64,
    /// Window start (0 if the host never opened it).
    pub t0: u64,
    /// Window end (0 if the host died first).
    pub t1: u64,
    /// When the host had reaped the dead worker (0: never).
    pub reaped: u64,
    /// When the host's fork of the replacement returned (0: never).
    pub forked: u64,
    /// The replacement's pid (0: none).
    pub new_pid: i32,
    /// The replacement's first completed op (0: none).
    pub first_op: u64,
    /// Worker 0's counter right after the replacement's first op.
    pub first_op_count: u64,
    /// Counters at the window start.
    pub c0: Vec<u64>,
    /// Counters at the fault instant.
    pub at_fault: Vec<u64>,
    /// Counters at the window end (empty if the host died first).
    pub c1: Vec<u64>,
}

impl FaultBoard {
    /// Maps a zeroed board for `workers` workers.
    pub fn new(workers: usize) -> std::io::Result<Self> {
        Ok(Self {
            slots: SharedSlice::new(HEADER + 3 * workers)?,
            workers,
        })
    }

    fn set(&self, i: usize, v: u64) {
        self.slots[i].store(v, Ordering::Release);
    }

    fn get(&self, i: usize) -> u64 {
        self.slots[i].load(Ordering::Acquire)
    }

    fn row(&self, r: usize) -> std::ops::Range<usize> {
        HEADER + r * self.workers..HEADER + (r + 1) * self.workers
    }

    fn read_row(&self, r: usize) -> Vec<u64> {
        self.row(r).map(|i| self.get(i)).collect()
    }

    fn write_row(&self, r: usize, v: &[u64]) {
        for (i, x) in self.row(r).zip(v) {
            self.set(i, *x);
        }
    }

    /// True once the fault fired.
    pub fn fired(&self) -> bool {
        self.get(FIRED) != 0
    }

    /// Called by the failing worker right before it faults: the instant and every counter.
    pub fn record_fault(&self, kind: FaultKind, control: &Control) {
        self.set(T_FAULT, now_ns());
        self.write_row(1, &control.counts());
        self.set(KIND, kind.code());
        self.set(FIRED, 1);
    }

    /// Called by the host right after its window-start snapshot.
    pub fn window_start(&self, t0: u64, c0: &[u64]) {
        self.write_row(0, c0);
        self.set(T0, t0);
    }

    /// Called by the host right after its window-end snapshot.
    pub fn window_end(&self, t1: u64, c1: &[u64]) {
        self.write_row(2, c1);
        self.set(T1, t1);
    }

    /// Called by the host when it reaped a dead worker and when its replacement's fork returned.
    pub fn respawned(&self, reaped: u64, forked: u64, pid: i32) {
        self.set(REAPED, reaped);
        self.set(FORKED, forked);
        self.set(NEW_PID, pid as u64);
    }

    /// Called by a replacement worker at its first completed op (first call wins).
    pub fn replacement_first_op(&self, count: u64) {
        if self.slots[FIRST_OP]
            .compare_exchange(0, now_ns(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.set(FIRST_OP_COUNT, count);
        }
    }

    /// Everything on the board.
    pub fn view(&self) -> BoardView {
        let t1 = self.get(T1);
        BoardView {
            fired: self.fired(),
            t_fault: self.get(T_FAULT),
            t0: self.get(T0),
            t1,
            reaped: self.get(REAPED),
            forked: self.get(FORKED),
            new_pid: self.get(NEW_PID) as i32,
            first_op: self.get(FIRST_OP),
            first_op_count: self.get(FIRST_OP_COUNT),
            c0: self.read_row(0),
            at_fault: self.read_row(1),
            c1: if t1 == 0 {
                Vec::new()
            } else {
                self.read_row(2)
            },
        }
    }
}

/// A worker's link to the fault machinery (fault cells only).
#[derive(Clone, Copy)]
pub struct FaultHook<'a> {
    /// The board.
    pub board: &'a FaultBoard,
    /// The cell's counters (snapshotted at the fault instant).
    pub control: &'a Control,
    /// The fault this worker injects (worker 0 only, and not its replacement).
    pub plan: Option<FaultSpec>,
    /// True for a replacement forked after the original worker died.
    pub replacement: bool,
}

/// Fails the way `kind` says. Never returns, except that a panic unwinds.
pub fn fire(kind: FaultKind, at: u64) -> ! {
    match kind {
        FaultKind::Panic => {
            let msg = format!("injected fault: panic at op {at} of worker {FAULT_WORKER}");
            eprintln!("concbench: {msg}");
            // Unwinds exactly as a panic does, but without the panic hook: with RUST_BACKTRACE
            // set, the hook's symbolised backtrace takes about half a second, which would be
            // measured as the fault's cost.
            std::panic::resume_unwind(Box::new(msg))
        }
        FaultKind::Abort => {
            crate::sys::fault::no_core_dumps();
            std::process::abort()
        }
        FaultKind::Segv => crate::sys::fault::segfault(),
        FaultKind::Kill9 => {
            let _ = nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::SIGKILL);
            loop {
                std::thread::park();
            }
        }
        FaultKind::Hang => loop {
            std::thread::park();
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_rejects_bad_ones() {
        for (name, kind) in KINDS {
            let s = FaultSpec::parse(&format!("{name}@5_000")).unwrap().unwrap();
            assert_eq!(
                s,
                FaultSpec {
                    kind: *kind,
                    at: 5000
                }
            );
            assert_eq!(s.to_string(), format!("{name}@5000"));
        }
        assert_eq!(FaultSpec::parse("none"), Ok(None));
        for bad in ["panic", "panic@0", "panic@x", "explode@5", "@5", ""] {
            let e = FaultSpec::parse(bad).unwrap_err();
            assert!(e.contains("kill9") && e.contains("KIND@K"), "{bad}: {e}");
        }
    }

    #[test]
    fn board_keeps_what_each_side_wrote() {
        let control = Control::new(2).unwrap();
        control.counter(0).store(7, Ordering::Relaxed);
        control.counter(1).store(9, Ordering::Relaxed);
        let b = FaultBoard::new(2).unwrap();
        assert!(!b.fired());
        b.window_start(100, &[1, 2]);
        b.record_fault(FaultKind::Kill9, &control);
        b.replacement_first_op(8);
        b.replacement_first_op(99);
        let v = b.view();
        assert!(v.fired && v.t_fault > 0 && v.first_op >= v.t_fault);
        assert_eq!(
            (v.c0, v.at_fault, v.first_op_count),
            (vec![1, 2], vec![7, 9], 8)
        );
        assert!(v.c1.is_empty(), "window end not written yet");
        b.window_end(200, &[10, 20]);
        assert_eq!(b.view().c1, vec![10, 20]);
    }
}
