//! `pingpong`: the cost of a context switch, measured the way `perf bench sched pipe` does.
//! Two sides pass a token back and forth: side A is the caller's thread, side B a partner
//! thread or forked process. One iteration is one round trip A→B→A; with both sides on one
//! core and a blocking transport that is two context switches (A blocks, B runs; B blocks, A
//! runs), so `switch_ns` = round trip / 2.
//!
//! Parameters:
//! - `transport`: how the token travels and how a side waits for it.
//!   - `pipe`: two pipes, a blocking 1-byte `write` then `read` each way: the scheme of
//!     `perf bench sched pipe` (which sends a 4-byte int; same-core figures agree with perf's
//!     within a few percent, so the size does not matter).
//!   - `eventfd`: two eventfds, `write` of 1 then blocking `read` (8 bytes, the eventfd ABI).
//!   - `futex`: one turn word in shared memory ([`SharedSlice`]); a side stores the other's
//!     turn, calls `FUTEX_WAKE`, then `FUTEX_WAIT`s while the word is not its own. Threads use
//!     the private ops (`FUTEX_*_PRIVATE`, what pthread mutexes use); processes the shared ops
//!     (keyed by the shared page, what `PTHREAD_PROCESS_SHARED` objects use), so the futex
//!     figures compare thread vs process *including* that difference.
//!   - `yield`: the same turn word, but a side whose turn it is not calls `sched_yield()` in a
//!     loop instead of blocking. Same-core this measures yield-driven switches (counted by the
//!     kernel as involuntary); cross-core or unpinned both sides spin on their own core and it
//!     measures the cache-line hand-off plus a `sched_yield` syscall that returns at once
//!     (expect `switches_per_round_trip` near 0 there).
//! - `unit`: `thread` (std::thread) or `process` (forked with [`fork_child`]).
//! - `placement`: `same-core`, `cross-core`, `unpinned` ([`PairPlacement`]). Pinned sides check
//!   that the kernel applied the affinity (read back with `sched_getaffinity`). Side A's
//!   previous affinity is restored when `measure` returns.
//!
//! Extra figures: `round_trip_ns`, `switch_ns` (round trip / 2), `switches_per_round_trip`
//! (voluntary + involuntary context switches of both sides per round trip, from rusage).
//!
//! # Timing model
//! `elapsed` covers exactly `iters` round trips, measured by side A: from the clock read just
//! after A received B's "ready" token (B is spawned, pinned and about to wait for the first
//! token) to the clock read after A received the last reply. Spawning/forking and pinning the
//! partner, the ready handshake, and joining/reaping the partner are outside.
//!
//! `rusage` covers the same section for both sides. Thread partner: the `RUSAGE_SELF` delta
//! taken around the timed loop (all threads of this process, so the process should be
//! otherwise idle; B's last block happens before A's last receive, so nothing of B's loop
//! falls outside). Process partner: A's `RUSAGE_THREAD` delta around the timed loop plus the
//! child's own rusage delta (`RUSAGE_THREAD`; the child is single-threaded, so the same as its
//! `RUSAGE_SELF`) for exactly its loop (from just before it sends "ready" to
//! just after its last reply), which the child writes into a [`SharedSlice`] before `_exit`.
//! The child's fork, pinning and exit are therefore not counted (`Child::wait`'s rusage, which
//! covers the child's whole life, is not used).
//!
//! # Checked against
//! `taskset -c 0 perf bench sched pipe -l 200000` (and `-T`) on a 2-vCPU VM: 4.0–4.1 µs per
//! op; `pipe` same-core here: 4.0–4.2 µs for both units, 2.00 switches per round trip.
//! Cross-core (perf's two workers moved to cores 0 and 1 with `taskset -p` right after start,
//! as perf has no placement flag): both around 45 µs and very noisy, dominated on that VM by
//! waking the halted partner vCPU.
//!
//! The partner runs a round count agreed before it starts (`iters`) and then ends by itself.
//! If side A fails mid-way it raises an abort word and passes the token so B wakes, sees it and
//! ends; a process partner that does not end is killed when its [`Child`] is dropped.

use std::fs::File;
use std::io::{PipeReader, PipeWriter, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam::utils::CachePadded;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity, sched_yield};
use nix::unistd::Pid;

use super::{Measured, Mechanic, MechanicDef, MechanicEnv, PairPlacement};
use crate::sys::eventfd::{eventfd, eventfd_read, eventfd_write};
use crate::sys::futex::{FutexScope, futex_wait, futex_wake};
use crate::sys::rusage::self_rusage;
use crate::sys::{
    Child, Rusage, SharedSlice, allowed_cpus, fork_child, pin_current, thread_rusage,
};
use crate::workload::{ParamDef, Params, Unit, WorkloadError};

/// Transports, as written in suites.
pub const TRANSPORTS: &[&str] = &["pipe", "eventfd", "futex", "yield"];
/// Partner kinds, as written in suites.
pub const UNITS: &[&str] = &["thread", "process"];

/// Registry entry.
pub static PINGPONG: MechanicDef = MechanicDef {
    id: "pingpong",
    about: "context switch: a token passed A→B→A between two threads or processes",
    params: &[
        ParamDef {
            name: "transport",
            unit: Unit::Choice(TRANSPORTS),
            default: "pipe",
            help: "how the token travels: pipe, eventfd, futex (blocking) or yield (spin + sched_yield)",
        },
        ParamDef {
            name: "unit",
            unit: Unit::Choice(UNITS),
            default: "thread",
            help: "the partner: a thread of this process or a forked process",
        },
        ParamDef {
            name: "placement",
            unit: Unit::Choice(PairPlacement::CHOICES),
            default: "same-core",
            help: "both sides on one core, on two cores, or not pinned",
        },
    ],
    build,
};

fn build(p: &Params, env: &MechanicEnv) -> Result<Box<dyn Mechanic>, WorkloadError> {
    let transport = match p.choice("transport") {
        "pipe" => Transport::Pipe,
        "eventfd" => Transport::EventFd,
        "futex" => Transport::Futex,
        _ => Transport::Yield,
    };
    let process = p.choice("unit") == "process";
    let placement = PairPlacement::parse(p.choice("placement"));
    let cores = placement
        .cores(&env.cores)
        .map_err(|reason| WorkloadError::Param {
            name: "placement",
            reason,
        })?;
    Ok(Box::new(PingPong {
        transport,
        process,
        cores,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Pipe,
    EventFd,
    Futex,
    Yield,
}

/// The built mechanic.
#[derive(Debug)]
pub struct PingPong {
    transport: Transport,
    process: bool,
    cores: (Option<usize>, Option<usize>),
}

// Slots of the shared word array.
const TURN: usize = 0; // futex/yield: whose turn it is (SIDE_A or SIDE_B)
const STATUS: usize = 1; // B's start-up: 0 starting, 1 ready, 2 could not pin
const ABORT: usize = 2; // set by A when it gives up mid-way
const SIDE_B: u32 = 0; // initial turn: B's, to send "ready"
const SIDE_A: u32 = 1;
const READY: u32 = 1;
const PIN_FAILED: u32 = 2;

/// State both sides see: in `MAP_SHARED` memory so a forked partner shares it too.
struct Shared {
    words: SharedSlice<CachePadded<AtomicU32>>,
    /// B's own rusage delta over its loop (process partner only): the six [`Rusage`] fields.
    rusage: SharedSlice<AtomicU64>,
}

impl Shared {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            words: SharedSlice::new(3)?,
            rusage: SharedSlice::new(6)?,
        })
    }

    fn store_rusage(&self, r: &Rusage) {
        let v = [
            r.user_ns,
            r.sys_ns,
            r.voluntary,
            r.involuntary,
            r.minor_faults,
            r.major_faults,
        ];
        for (slot, x) in self.rusage.iter().zip(v) {
            slot.store(x, Ordering::Relaxed);
        }
    }

    fn load_rusage(&self) -> Rusage {
        let g = |i: usize| self.rusage[i].load(Ordering::Relaxed);
        Rusage {
            user_ns: g(0),
            sys_ns: g(1),
            voluntary: g(2),
            involuntary: g(3),
            minor_faults: g(4),
            major_faults: g(5),
        }
    }
}

/// One side's ends of the transport.
enum Link {
    Pipe {
        rx: PipeReader,
        tx: PipeWriter,
    },
    EventFd {
        rx: File,
        tx: File,
    },
    Turn {
        shared: Arc<Shared>,
        me: u32,
        other: u32,
        /// `Some` for futex (private or shared ops), `None` for yield.
        futex: Option<FutexScope>,
    },
}

impl Link {
    /// Makes both sides' ends: (A's, B's).
    fn pair(t: Transport, process: bool, shared: &Arc<Shared>) -> std::io::Result<(Link, Link)> {
        Ok(match t {
            Transport::Pipe => {
                let (b_rx, a_tx) = std::io::pipe()?;
                let (a_rx, b_tx) = std::io::pipe()?;
                (
                    Link::Pipe { rx: a_rx, tx: a_tx },
                    Link::Pipe { rx: b_rx, tx: b_tx },
                )
            }
            Transport::EventFd => {
                let to_a = eventfd()?;
                let to_b = eventfd()?;
                let (a_rx, b_tx) = (to_a.try_clone()?, to_a);
                let (b_rx, a_tx) = (to_b.try_clone()?, to_b);
                (
                    Link::EventFd { rx: a_rx, tx: a_tx },
                    Link::EventFd { rx: b_rx, tx: b_tx },
                )
            }
            Transport::Futex | Transport::Yield => {
                let futex = (t == Transport::Futex).then_some(if process {
                    FutexScope::Shared
                } else {
                    FutexScope::Private
                });
                let side = |me, other| Link::Turn {
                    shared: shared.clone(),
                    me,
                    other,
                    futex,
                };
                (side(SIDE_A, SIDE_B), side(SIDE_B, SIDE_A))
            }
        })
    }

    /// Passes the token to the other side.
    fn send(&self) -> std::io::Result<()> {
        match self {
            Link::Pipe { tx, .. } => {
                let mut tx = tx;
                tx.write_all(&[1u8])
            }
            Link::EventFd { tx, .. } => eventfd_write(tx, 1),
            Link::Turn {
                shared,
                other,
                futex,
                ..
            } => {
                let turn = &*shared.words[TURN];
                turn.store(*other, Ordering::Release);
                if let Some(scope) = futex {
                    futex_wake(turn, 1, *scope)?;
                }
                Ok(())
            }
        }
    }

    /// Waits for the token from the other side.
    fn recv(&self) -> std::io::Result<()> {
        match self {
            Link::Pipe { rx, .. } => {
                let mut b = [0u8; 1];
                let mut rx = rx;
                rx.read_exact(&mut b)
            }
            Link::EventFd { rx, .. } => eventfd_read(rx).map(drop),
            Link::Turn {
                shared,
                me,
                other,
                futex,
            } => {
                let turn = &*shared.words[TURN];
                while turn.load(Ordering::Acquire) != *me {
                    match futex {
                        Some(scope) => futex_wait(turn, *other, *scope)?,
                        None => sched_yield().map_err(std::io::Error::from)?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Pins the calling thread and checks with the kernel that it took.
fn pin_verified(core: usize) -> Result<(), String> {
    pin_current(core)?;
    let now = allowed_cpus();
    if now == [core] {
        Ok(())
    } else {
        Err(format!(
            "pinned to core {core} but the kernel reports affinity {now:?}"
        ))
    }
}

/// Restores the calling thread's affinity when dropped.
struct AffinityGuard(Option<CpuSet>);

impl Drop for AffinityGuard {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}

/// Side B: pin, say ready, answer `rounds` tokens. Returns B's own `RUSAGE_THREAD` delta over
/// its loop (a forked partner is single-threaded, so that is its `RUSAGE_SELF` too).
fn partner(
    link: &Link,
    shared: &Shared,
    core: Option<usize>,
    rounds: u64,
) -> Result<Rusage, String> {
    let pinned = core.map(pin_verified).transpose();
    let status = if pinned.is_ok() { READY } else { PIN_FAILED };
    shared.words[STATUS].store(status, Ordering::Release);
    let base = thread_rusage();
    link.send().map_err(|e| format!("partner: ready: {e}"))?;
    pinned.map_err(|e| format!("partner: {e}"))?;
    for _ in 0..rounds {
        link.recv().map_err(|e| format!("partner: receive: {e}"))?;
        if shared.words[ABORT].load(Ordering::Acquire) != 0 {
            return Err("partner: aborted by side A".into());
        }
        link.send().map_err(|e| format!("partner: send: {e}"))?;
    }
    Ok(thread_rusage().since(&base))
}

/// The partner while it runs.
enum Partner {
    Thread(std::thread::JoinHandle<Result<Rusage, String>>),
    Process(Child),
}

impl Partner {
    /// Waits for the partner to end; a process partner's loop rusage comes through `shared`.
    fn finish(self, shared: &Shared) -> Result<Rusage, String> {
        match self {
            Partner::Thread(h) => h
                .join()
                .map_err(|_| "partner thread panicked".to_string())?,
            Partner::Process(mut c) => {
                let exit = c.wait().map_err(|e| format!("waitpid(partner): {e}"))?;
                if exit.success() {
                    Ok(shared.load_rusage())
                } else {
                    Err(format!("partner process ended with {}", exit.describe()))
                }
            }
        }
    }
}

impl PingPong {
    fn spawn_partner(
        &self,
        link_b: Link,
        shared: &Arc<Shared>,
        rounds: u64,
    ) -> Result<Partner, String> {
        let core = self.cores.1;
        if self.process {
            let child = fork_child(|| match partner(&link_b, shared, core, rounds) {
                Ok(r) => {
                    shared.store_rusage(&r);
                    0
                }
                Err(_) if shared.words[STATUS].load(Ordering::Relaxed) == PIN_FAILED => 2,
                Err(_) => 1,
            })
            .map_err(|e| format!("fork: {e}"))?;
            // The child has its copies; closing ours lets A see EOF on a pipe if B dies.
            drop(link_b);
            Ok(Partner::Process(child))
        } else {
            let shared = shared.clone();
            let h = std::thread::Builder::new()
                .name("pingpong-b".into())
                .spawn(move || partner(&link_b, &shared, core, rounds))
                .map_err(|e| format!("spawn partner thread: {e}"))?;
            Ok(Partner::Thread(h))
        }
    }
}

impl Mechanic for PingPong {
    fn iteration(&self) -> &'static str {
        "round trip"
    }

    fn measure(&mut self, iters: u64) -> Result<Measured, String> {
        let shared = Arc::new(Shared::new().map_err(|e| format!("mmap shared words: {e}"))?);
        let (link_a, link_b) = Link::pair(self.transport, self.process, &shared)
            .map_err(|e| format!("create transport: {e}"))?;

        // Side A is the caller's thread: pin it, and restore its affinity afterwards.
        let _restore = AffinityGuard(match self.cores.0 {
            Some(core) => {
                let saved = sched_getaffinity(Pid::from_raw(0))
                    .map_err(|e| format!("sched_getaffinity: {e}"))?;
                pin_verified(core)?;
                Some(saved)
            }
            None => None,
        });

        let partner = self.spawn_partner(link_b, &shared, iters)?;

        // Ready handshake: B is running (and pinned) once its first token arrives.
        let run = (|| -> Result<(std::time::Duration, Rusage), String> {
            link_a
                .recv()
                .map_err(|e| format!("waiting for partner to start: {e}"))?;
            if shared.words[STATUS].load(Ordering::Acquire) != READY {
                return Err(format!(
                    "partner could not pin itself to core {:?}",
                    self.cores.1
                ));
            }
            let usage = if self.process {
                thread_rusage
            } else {
                self_rusage
            };
            let ru0 = usage();
            let t0 = Instant::now();
            for _ in 0..iters {
                link_a.send().map_err(|e| format!("send: {e}"))?;
                link_a.recv().map_err(|e| format!("receive: {e}"))?;
            }
            let elapsed = t0.elapsed();
            Ok((elapsed, usage().since(&ru0)))
        })();

        let (elapsed, rusage_a) = match run {
            Ok(v) => v,
            Err(e) => {
                // Wake B so it sees the abort word and ends; a process partner that does not
                // end is killed when dropped.
                shared.words[ABORT].store(1, Ordering::Release);
                let _ = link_a.send();
                if let Partner::Process(c) = &partner {
                    c.signal(nix::sys::signal::Signal::SIGKILL);
                }
                let _ = partner.finish(&shared);
                return Err(e);
            }
        };
        let rusage_b = partner.finish(&shared)?;
        let rusage = if self.process {
            rusage_a.add(&rusage_b)
        } else {
            // RUSAGE_SELF already includes B.
            rusage_a
        };

        let mut m = Measured {
            iters,
            elapsed,
            rusage,
            extra: Vec::new(),
        };
        let rt = m.ns_per_iter();
        let sw = m.switches_per_iter();
        m.extra = vec![
            ("round_trip_ns".into(), rt),
            ("switch_ns".into(), rt / 2.0),
            ("switches_per_round_trip".into(), sw),
        ];
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Value;
    use nix::errno::Errno;
    use nix::sys::wait::{WaitPidFlag, waitpid};

    fn build_with(
        transport: &'static str,
        unit: &'static str,
        placement: &'static str,
    ) -> Box<dyn Mechanic> {
        let p = Params::from_values([
            ("transport", Value::Choice(transport)),
            ("unit", Value::Choice(unit)),
            ("placement", Value::Choice(placement)),
        ]);
        (PINGPONG.build)(&p, &MechanicEnv::current(None)).unwrap()
    }

    use crate::mechanic::testkit::extra;

    fn check(transport: &'static str, unit: &'static str, placement: &'static str) {
        let mut mech = build_with(transport, unit, placement);
        assert_eq!(mech.iteration(), "round trip");
        let before = allowed_cpus();
        let m = mech
            .measure(2000)
            .unwrap_or_else(|e| panic!("{transport}/{unit}/{placement}: {e}"));
        assert_eq!(m.iters, 2000);
        assert!(m.elapsed > std::time::Duration::ZERO);
        assert!(extra(&m, "round_trip_ns") > 0.0);
        let spr = extra(&m, "switches_per_round_trip");
        if transport != "yield" && placement == "same-core" {
            assert!(
                spr >= 1.0,
                "{transport}/{unit}/{placement}: {spr} switches per round trip"
            );
        }
        // No child left behind, and side A's affinity is back.
        assert_eq!(
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
        assert_eq!(allowed_cpus(), before);
    }

    fn all_placements(transport: &'static str, unit: &'static str) {
        check(transport, unit, "same-core");
        check(transport, unit, "unpinned");
        if allowed_cpus().len() >= 2 {
            check(transport, unit, "cross-core");
        }
    }

    #[test]
    fn pipe_thread() {
        all_placements("pipe", "thread");
    }
    #[test]
    fn pipe_process() {
        all_placements("pipe", "process");
    }
    #[test]
    fn eventfd_thread() {
        all_placements("eventfd", "thread");
    }
    #[test]
    fn eventfd_process() {
        all_placements("eventfd", "process");
    }
    #[test]
    fn futex_thread() {
        all_placements("futex", "thread");
    }
    #[test]
    fn futex_process() {
        all_placements("futex", "process");
    }
    #[test]
    fn yield_thread() {
        all_placements("yield", "thread");
    }
    #[test]
    fn yield_process() {
        all_placements("yield", "process");
    }

    #[test]
    fn defaults_and_zero_iters() {
        let p = Params::resolve(PINGPONG.params, &Default::default()).unwrap();
        assert_eq!(p.choice("transport"), "pipe");
        assert_eq!(p.choice("unit"), "thread");
        assert_eq!(p.choice("placement"), "same-core");
        let mut m = (PINGPONG.build)(&p, &MechanicEnv::current(None)).unwrap();
        let r = m.measure(0).unwrap();
        assert_eq!(r.iters, 0);
    }

    #[test]
    fn partner_that_cannot_pin_is_an_error_and_leaves_nothing() {
        // Core 1000 is a valid cpu_set bit but no machine here has it: sched_setaffinity fails.
        for (transport, process) in [(Transport::Pipe, false), (Transport::Futex, true)] {
            let mut m = PingPong {
                transport,
                process,
                cores: (None, Some(1000)),
            };
            let e = m.measure(100).unwrap_err();
            assert!(e.contains("partner"), "{e}");
            assert_eq!(
                waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
                Err(Errno::ECHILD)
            );
        }
    }

    #[test]
    fn cross_core_on_one_core_is_a_param_error() {
        let p = Params::from_values([
            ("transport", Value::Choice("pipe")),
            ("unit", Value::Choice("thread")),
            ("placement", Value::Choice("cross-core")),
        ]);
        let env = MechanicEnv {
            cores: vec![0],
            self_exe: "/bin/true".into(),
        };
        let e = (PINGPONG.build)(&p, &env).err().unwrap();
        assert!(e.to_string().contains("placement"), "{e}");
    }
}
