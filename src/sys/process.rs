//! `fork()` done safely enough for a benchmark harness: the child dies with its parent
//! (`PR_SET_PDEATHSIG`), never returns into the caller's code (it ends with `_exit`), and every
//! [`Child`] is reaped: waited for explicitly, or killed and reaped when dropped.
//!
//! Fork only while the process is single-threaded or from a thread that holds no locks: the
//! runner forks from a dedicated single-threaded cell host (see `runner`).

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid};

use super::rusage::Rusage;

/// Exit code a child uses when its body panicked.
pub const PANIC_EXIT: i32 = 101;

/// A forked child process that this process owns. Dropping it without waiting kills it with
/// SIGKILL and reaps it, so no zombie or orphan outlives its owner.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    reaped: bool,
}

/// How a child ended, with the kernel's accounting of its resource use.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Exit code when the child exited normally.
    pub code: Option<i32>,
    /// Signal number when the child was killed by a signal.
    pub signal: Option<i32>,
    /// The child's own rusage (from `wait4`), including its reaped descendants.
    pub rusage: Rusage,
}

impl Exit {
    /// True when the child exited with code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// A short human description: "exit 3", "signal 9 (SIGKILL)".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit {c}"),
            (_, Some(s)) => {
                let name = Signal::try_from(s).map(|s| s.as_str()).unwrap_or("?");
                format!("signal {s} ({name})")
            }
            _ => "unknown".into(),
        }
    }
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Blocks until the child ends and reaps it.
    pub fn wait(&mut self) -> io::Result<Exit> {
        loop {
            match wait4(self.pid, false)? {
                Some(exit) => {
                    self.reaped = true;
                    return Ok(exit);
                }
                None => continue,
            }
        }
    }

    /// Reaps the child if it has ended; `None` while it still runs.
    pub fn try_wait(&mut self) -> io::Result<Option<Exit>> {
        if self.reaped {
            return Err(io::Error::other("child already reaped"));
        }
        let r = wait4(self.pid, true)?;
        if r.is_some() {
            self.reaped = true;
        }
        Ok(r)
    }

    /// Sends `sig` to the child (ignored if it already ended).
    pub fn signal(&self, sig: Signal) {
        if !self.reaped {
            let _ = kill(self.pid, sig);
        }
    }

    /// Kills the child with SIGKILL and reaps it.
    pub fn kill_and_reap(&mut self) -> io::Result<Exit> {
        self.signal(Signal::SIGKILL);
        self.wait()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

fn wait4(pid: Pid, nohang: bool) -> io::Result<Option<Exit>> {
    let mut status: libc::c_int = 0;
    let mut ru = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    let flags = if nohang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: status and ru point to valid writable memory for the duration of the call.
        let r = unsafe { libc::wait4(pid.as_raw(), &mut status, flags, ru.as_mut_ptr()) };
        if r == -1 {
            let e = Errno::last();
            if e == Errno::EINTR {
                continue;
            }
            return Err(e.into());
        }
        if r == 0 {
            return Ok(None);
        }
        // SAFETY: wait4 returned a pid, so the kernel filled in `ru` (it was zeroed anyway).
        let ru = unsafe { ru.assume_init() };
        let exit = if libc::WIFEXITED(status) {
            Exit {
                code: Some(libc::WEXITSTATUS(status)),
                signal: None,
                rusage: Rusage::from_libc(&ru),
            }
        } else if libc::WIFSIGNALED(status) {
            Exit {
                code: None,
                signal: Some(libc::WTERMSIG(status)),
                rusage: Rusage::from_libc(&ru),
            }
        } else {
            // Stopped/continued: only reported with WUNTRACED/WCONTINUED, which we never ask.
            continue;
        };
        return Ok(Some(exit));
    }
}

/// Forks a child that runs `body` and then `_exit`s with its return value (or
/// [`PANIC_EXIT`] if it panicked). The child gets SIGKILL when its parent dies.
///
/// The child never returns into the caller's code, never runs destructors of the parent's
/// objects, and never flushes the parent's buffered I/O.
pub fn fork_child<F: FnOnce() -> i32>(body: F) -> io::Result<Child> {
    let parent = getpid();
    let mask = super::signal::before_fork();
    // SAFETY: the child only runs `body` and then `_exit`s; callers fork from a single-threaded
    // process (the cell host) or accept glibc's fork-safe malloc as the only shared lock state.
    let forked = unsafe { fork() };
    if !matches!(forked, Ok(ForkResult::Child)) {
        super::signal::after_fork_parent(mask);
    }
    match forked.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(Child {
            pid: child,
            reaped: false,
        }),
        ForkResult::Child => {
            super::signal::after_fork_child(mask);
            let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
            // The parent may have died between fork and prctl: then we were re-parented.
            if getppid() != parent {
                exit_now(1);
            }
            let code = catch_unwind(AssertUnwindSafe(body)).unwrap_or(PANIC_EXIT);
            exit_now(code)
        }
    }
}

/// Makes this process the reaper of its orphaned descendants (`PR_SET_CHILD_SUBREAPER`): a
/// worker whose cell host was killed is re-parented here instead of to init, so the harness
/// can reap it and know that nothing of the run is left ([`reap_orphans`]).
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)?;
    SUBREAPER.store(true, std::sync::atomic::Ordering::SeqCst);
    Ok(())
}

static SUBREAPER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// In a subreaper ([`become_subreaper`]) that has no [`Child`] of its own alive: reaps every
/// child it has (orphans dying of `PR_SET_PDEATHSIG` after their parent was killed) until none
/// is left or `timeout` passes, SIGKILLing by PID those still alive after half of it. Returns
/// the PIDs still there at the end (empty: nothing of the run is left). A process that is not
/// a subreaper does nothing (its children may belong to someone else's code).
pub fn reap_orphans(timeout: std::time::Duration) -> Vec<i32> {
    use std::time::{Duration, Instant};
    if !SUBREAPER.load(std::sync::atomic::Ordering::SeqCst) {
        return Vec::new();
    }
    let start = Instant::now();
    loop {
        loop {
            match waitpid(
                Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            ) {
                Ok(nix::sys::wait::WaitStatus::StillAlive) => break,
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                // ECHILD: no child at all.
                Err(_) => return Vec::new(),
            }
        }
        let left: Vec<i32> = super::procfs::process_tree(getpid().as_raw())
            .into_iter()
            .skip(1)
            .collect();
        if left.is_empty() {
            return left;
        }
        if start.elapsed() >= timeout {
            return left;
        }
        if start.elapsed() >= timeout / 2 {
            for &p in &left {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Ends this process at once with `code`: no destructors, no atexit handlers, no flushing of
/// buffers inherited from the parent. The only way a forked child ends.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is async-signal-safe and takes no pointers.
    unsafe { libc::_exit(code) }
}

/// Number of threads in this process, from `/proc/self/status`: fork-safety checks use it.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::wait::{WaitPidFlag, WaitStatus};

    #[test]
    fn child_exit_code_and_reap() {
        let mut c = fork_child(|| 7).unwrap();
        let e = c.wait().unwrap();
        assert_eq!(e.code, Some(7));
        assert!(!e.success());
    }

    #[test]
    fn panicking_child_exits_101() {
        let mut c = fork_child(|| {
            std::panic::set_hook(Box::new(|_| {}));
            panic!("boom")
        })
        .unwrap();
        assert_eq!(c.wait().unwrap().code, Some(PANIC_EXIT));
    }

    #[test]
    fn drop_kills_and_reaps() {
        let c = fork_child(|| {
            std::thread::sleep(std::time::Duration::from_secs(60));
            0
        })
        .unwrap();
        let pid = c.pid();
        drop(c);
        // Reaped: the pid no longer exists as our child.
        let r = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
        assert_eq!(r, Err(Errno::ECHILD));
    }

    #[test]
    fn killed_child_reports_signal() {
        let mut c = fork_child(|| {
            std::thread::sleep(std::time::Duration::from_secs(60));
            0
        })
        .unwrap();
        let e = c.kill_and_reap().unwrap();
        assert_eq!(e.signal, Some(9));
        assert!(e.describe().contains("SIGKILL"));
        let _ = WaitStatus::StillAlive; // keep the import honest for readers of wait states
    }
}
