//! `spawn`: what it costs to start (and finish) one unit of concurrency in each model.
//!
//! Parameter `what`:
//! - `fork`: [`fork_child`] with a body that returns 0 at once, then [`Child::wait`]: `fork`,
//!   the child's `prctl(PR_SET_PDEATHSIG)` + `getppid` (two cheap syscalls every concbench
//!   child makes), `_exit`, and `wait4` in the parent, which returns once the child's address
//!   space is torn down.
//! - `fork-exec`: the same, but the child `execv`s `env.self_exe` with the single argument
//!   `__noop` (concbench exits at once when given it) and `_exit(127)`s if exec fails. This is
//!   an explicit fork + execv, not `std::process::Command`: Command may use `posix_spawn`
//!   (glibc: `clone(CLONE_VM | CLONE_VFORK)`), which skips copying the page tables and would
//!   measure a cheaper path than a forking server takes. An exit code of 127 becomes an error
//!   naming the path.
//! - `thread`: `std::thread::spawn(|| ()).join()` (std allocates the thread handle and an
//!   mmap'd stack with a guard page on each spawn; glibc caches stacks of joined threads).
//! - `pthread`: a bare `pthread_create` + `pthread_join` with glibc's defaults (via
//!   `sys::thread`): the kernel's and libc's part of `thread`, without std's per-thread set-up
//!   (an 8 KiB signal stack mapped with a guard page, `pthread_getattr_np`, `gettid`), which
//!   measured as about a third of a std spawn here.
//! - `loop-task`: adding one I/O task to an epoll loop and retiring it, the way
//!   `model::event_loop` handles a task's fd: box a task closure and push it onto a `VecDeque`
//!   ready queue, register an fd with the loop's mio [`Poll`] under a fresh [`Token`]
//!   (`epoll_ctl(ADD)`, edge-triggered read+write as the loop does), pop and run the task, then
//!   deregister the fd (`epoll_ctl(DEL)`). The `Poll` and the fd (an eventfd) are created once
//!   outside the timed section: creating the fd is the task's own business (an `accept`), not
//!   the loop's. The user-space part (box + queue) is tens of nanoseconds; the two `epoll_ctl`
//!   calls are most of the figure.
//!
//! Extra figures: `spawn_ns` (per iteration); for `fork` and `fork-exec` also
//! `minor_faults_per_iter` (the children's, from `wait4`) and `parent_minor_faults_per_iter`
//! (the copy-on-write faults the parent takes after each fork).
//!
//! # Checked against
//! A C loop of `fork` + `_exit` + `waitpid` and of `pthread_create` + `pthread_join` on a
//! 2-vCPU VM, both pinned to one core: fork ≈ 106 µs in C, ≈ 103 µs here; thread ≈ 16.5 µs in
//! C, ≈ 23 µs here. The thread gap is std's own per-thread set-up (`pthread_getattr_np`, an
//! 8 KiB `sigaltstack` mapped, guarded and unmapped): the same C loop doing those calls in its
//! thread takes ≈ 23–25 µs. So `thread` is the cost of a Rust std thread, not of a bare
//! `pthread_create`.
//!
//! Nothing is pinned: the child or thread runs wherever the scheduler puts it.
//!
//! # Timing model
//! `elapsed` covers exactly `iters` complete spawn-and-finish cycles, back to back: for fork and
//! fork-exec from just before the first `fork` to the return of the last `wait4`; for thread
//! from before the first `spawn` to the return of the last `join`; for loop-task the box, queue,
//! register, run and deregister of every task. Creating the `Poll`, the eventfd and the exec
//! argument strings happens before the clock starts.
//!
//! `rusage` is this process's `RUSAGE_SELF` delta over the timed section (threads included),
//! plus, for fork and fork-exec, the sum of every child's own rusage as `wait4` reported it
//! (each child's whole life, which here is exactly its part in the iteration).

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use super::{Measured, Mechanic, MechanicDef, MechanicEnv};
use crate::sys::eventfd::eventfd;
use crate::sys::rusage::self_rusage;
use crate::sys::{Child, Rusage, fork_child};
use crate::workload::{ParamDef, Params, Unit, WorkloadError};

/// What is spawned, as written in suites.
pub const WHAT: &[&str] = &["fork", "fork-exec", "thread", "pthread", "loop-task"];

/// Exit code of a child whose exec failed (the shell's convention).
pub const EXEC_FAILED: i32 = 127;

/// Registry entry.
pub static SPAWN: MechanicDef = MechanicDef {
    id: "spawn",
    about: "start and finish one worker: fork, fork+exec, thread, or a task on an epoll loop",
    params: &[ParamDef {
        name: "what",
        unit: Unit::Choice(WHAT),
        default: "fork",
        help: "fork (+_exit+waitpid), fork-exec (+execv `concbench __noop`), thread (std spawn+join), pthread (bare pthread_create+join), loop-task (register+deregister on epoll)",
    }],
    build,
};

fn build(p: &Params, env: &MechanicEnv) -> Result<Box<dyn Mechanic>, WorkloadError> {
    let what = match p.choice("what") {
        "fork" => What::Fork,
        "fork-exec" => What::ForkExec,
        "thread" => What::Thread,
        "pthread" => What::Pthread,
        _ => What::LoopTask,
    };
    Ok(Box::new(Spawn {
        what,
        exe: env.self_exe.clone(),
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Fork,
    ForkExec,
    Thread,
    Pthread,
    LoopTask,
}

/// The built mechanic.
#[derive(Debug)]
pub struct Spawn {
    what: What,
    exe: PathBuf,
}

fn reap(mut c: Child, children: &mut Rusage, exe: Option<&PathBuf>) -> Result<(), String> {
    let exit = c.wait().map_err(|e| format!("waitpid: {e}"))?;
    *children = children.add(&exit.rusage);
    match (exit.code, exe) {
        (Some(0), _) => Ok(()),
        (Some(EXEC_FAILED), Some(exe)) => Err(format!(
            "exec of {} failed (child exited {EXEC_FAILED})",
            exe.display()
        )),
        _ => Err(format!("child ended with {}", exit.describe())),
    }
}

impl Spawn {
    fn forks(&self, iters: u64, exec: bool) -> Result<(Measured, Rusage), String> {
        let path = CString::new(self.exe.as_os_str().as_bytes())
            .map_err(|_| format!("exe path {} contains a NUL byte", self.exe.display()))?;
        let argv = [path.clone(), CString::from(c"__noop")];
        let mut children = Rusage::default();
        let ru0 = self_rusage();
        let t0 = Instant::now();
        for _ in 0..iters {
            let child = if exec {
                fork_child(|| {
                    let _ = nix::unistd::execv(&path, &argv);
                    EXEC_FAILED
                })
            } else {
                fork_child(|| 0)
            }
            .map_err(|e| format!("fork: {e}"))?;
            reap(child, &mut children, exec.then_some(&self.exe))?;
        }
        let elapsed = t0.elapsed();
        let parent = self_rusage().since(&ru0);
        Ok((
            Measured {
                iters,
                elapsed,
                rusage: parent.add(&children),
                extra: Vec::new(),
            },
            children,
        ))
    }

    fn threads(&self, iters: u64, bare: bool) -> Result<Measured, String> {
        let ru0 = self_rusage();
        let t0 = Instant::now();
        for _ in 0..iters {
            if bare {
                crate::sys::thread::spawn_join_bare()
                    .map_err(|e| format!("pthread_create: {e}"))?;
            } else {
                std::thread::spawn(|| ())
                    .join()
                    .map_err(|_| "spawned thread panicked".to_string())?;
            }
        }
        let elapsed = t0.elapsed();
        Ok(Measured {
            iters,
            elapsed,
            rusage: self_rusage().since(&ru0),
            extra: Vec::new(),
        })
    }

    fn loop_tasks(&self, iters: u64) -> Result<Measured, String> {
        let poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
        let efd = eventfd().map_err(|e| format!("eventfd: {e}"))?;
        let fd = efd.as_raw_fd();
        let mut ready: VecDeque<Box<dyn FnOnce() -> u64>> = VecDeque::with_capacity(16);
        let mut sum = 0u64;
        let ru0 = self_rusage();
        let t0 = Instant::now();
        for i in 0..iters {
            ready.push_back(Box::new(move || std::hint::black_box(i)));
            poll.registry()
                .register(
                    &mut SourceFd(&fd),
                    Token(i as usize),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| format!("epoll_ctl(ADD): {e}"))?;
            let task = ready.pop_front().expect("just pushed");
            sum = sum.wrapping_add(task());
            poll.registry()
                .deregister(&mut SourceFd(&fd))
                .map_err(|e| format!("epoll_ctl(DEL): {e}"))?;
        }
        let elapsed = t0.elapsed();
        std::hint::black_box(sum);
        Ok(Measured {
            iters,
            elapsed,
            rusage: self_rusage().since(&ru0),
            extra: Vec::new(),
        })
    }
}

impl Mechanic for Spawn {
    fn iteration(&self) -> &'static str {
        match self.what {
            What::Fork => "fork + _exit + waitpid",
            What::ForkExec => "fork + execv(__noop) + _exit + waitpid",
            What::Thread => "std thread spawn + join",
            What::Pthread => "pthread_create + pthread_join",
            What::LoopTask => "task queued + fd registered + run + deregistered (epoll)",
        }
    }

    fn measure(&mut self, iters: u64) -> Result<Measured, String> {
        let per = |n: u64| {
            if iters == 0 {
                0.0
            } else {
                n as f64 / iters as f64
            }
        };
        let mut m = match self.what {
            What::Fork | What::ForkExec => {
                let (mut m, children) = self.forks(iters, self.what == What::ForkExec)?;
                let parent_faults = m.rusage.minor_faults.saturating_sub(children.minor_faults);
                m.extra
                    .push(("minor_faults_per_iter".into(), per(children.minor_faults)));
                m.extra
                    .push(("parent_minor_faults_per_iter".into(), per(parent_faults)));
                m
            }
            What::Thread => self.threads(iters, false)?,
            What::Pthread => self.threads(iters, true)?,
            What::LoopTask => self.loop_tasks(iters)?,
        };
        let ns = m.ns_per_iter();
        m.extra.insert(0, ("spawn_ns".into(), ns));
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::Value;
    use nix::errno::Errno;
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;

    fn build_with(what: &'static str, exe: &str) -> Box<dyn Mechanic> {
        let p = Params::from_values([("what", Value::Choice(what))]);
        let env = MechanicEnv {
            cores: crate::sys::allowed_cpus(),
            self_exe: exe.into(),
        };
        (SPAWN.build)(&p, &env).unwrap()
    }

    fn extra(m: &Measured, name: &str) -> Option<f64> {
        m.figure(name)
    }

    #[test]
    fn every_kind_runs_20() {
        for what in WHAT {
            let mut mech = build_with(what, "/bin/true");
            let m = mech.measure(20).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(m.iters, 20, "{what}");
            assert!(m.elapsed > std::time::Duration::ZERO, "{what}");
            assert!(extra(&m, "spawn_ns").unwrap() > 0.0, "{what}");
            if matches!(*what, "fork" | "fork-exec") {
                assert!(extra(&m, "minor_faults_per_iter").unwrap() > 0.0, "{what}");
            }
            assert_eq!(
                waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
                Err(Errno::ECHILD),
                "{what} left a child"
            );
        }
    }

    #[test]
    fn fork_exec_of_a_missing_binary_names_it() {
        let bad = "/nonexistent/concbench-missing";
        let e = build_with("fork-exec", bad).measure(3).unwrap_err();
        assert!(e.contains(bad), "{e}");
        assert_eq!(
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
    }

    #[test]
    fn default_is_fork() {
        let p = Params::resolve(SPAWN.params, &Default::default()).unwrap();
        assert_eq!(p.choice("what"), "fork");
    }
}
