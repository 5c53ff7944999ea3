//! SIGINT and SIGTERM for the harness: a handler that records the signal in an atomic and
//! writes one byte to a self-pipe, so the harness notices a signal wherever it waits (a
//! `poll` on the pipe beside what it waits for, or a check of [`received`] between steps),
//! stops its children, saves what it has and exits 128 + signal (130 for SIGINT, 143 for
//! SIGTERM).
//!
//! # What children do with the signals
//! A terminal's Ctrl-C signals the whole foreground process group: the harness *and* every
//! cell host, worker, server and generator it forked. Children must not die of it on their
//! own (a host killed by SIGINT would look like a failed cell, a prefork master would log
//! replacements of its dying workers), so every process forked by a process that called
//! [`install`] **ignores SIGINT and SIGTERM** (`SIG_IGN`, inherited by its own children and
//! across `exec`). The harness alone decides: it SIGKILLs its child by PID, and everything
//! below dies by `PR_SET_PDEATHSIG` (see [`super::process::fork_child`]). Signals are blocked
//! around `fork` so a signal arriving between `fork` and `SIG_IGN` cannot run the harness's
//! handler in the child. A process that never called `install` (a library user, a unit test)
//! forks children with the default dispositions, as before.
//!
//! A hand-written handler rather than the `signal-hook` crate: it is twenty lines, needs no
//! new dependency, and the fork-time reset above has to know whether the handler is in place.

use std::io;
use std::os::fd::{BorrowedFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

/// The first SIGINT/SIGTERM received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Read end of the self-pipe (-1: not installed).
static PIPE_R: AtomicI32 = AtomicI32::new(-1);
/// Write end of the self-pipe (-1: not installed).
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
/// True in the process that installed the handler (false again in its forked children).
static INSTALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    let saved = Errno::last_raw();
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let fd = PIPE_W.load(Ordering::SeqCst);
    if fd >= 0 {
        let b = sig as u8;
        // SAFETY: write(2) is async-signal-safe; `b` is a valid one-byte buffer. The pipe is
        // non-blocking, so a full pipe (many signals) drops the byte instead of blocking.
        unsafe {
            libc::write(fd, (&b as *const u8).cast(), 1);
        }
    }
    Errno::set_raw(saved);
}

/// Installs the SIGINT/SIGTERM handler in this process (idempotent). Call it once, early,
/// from the command that owns the run (`run`, `serve`, `load`).
pub fn install() -> io::Result<()> {
    if INSTALLED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    PIPE_R.store(r.into_raw_fd(), Ordering::SeqCst);
    PIPE_W.store(w.into_raw_fd(), Ordering::SeqCst);
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only touches atomics and calls write(2), both async-signal-safe.
        unsafe { nix::sys::signal::sigaction(sig, &act) }?;
    }
    INSTALLED.store(true, Ordering::SeqCst);
    Ok(())
}

/// The signal received since [`install`] (SIGINT or SIGTERM as a number), if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code for dying of `sig` the conventional way: 128 + signal number.
pub fn exit_code(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

/// "SIGINT", "SIGTERM", …
pub fn name(sig: i32) -> &'static str {
    Signal::try_from(sig)
        .map(|s| s.as_str())
        .unwrap_or("signal")
}

/// What ended a [`wait_readable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The fd is readable (or hung up, or in error: the next read says which).
    Ready,
    /// SIGINT or SIGTERM arrived (the number).
    Signal(i32),
    /// The timeout passed.
    Timeout,
}

/// Waits until `fd` is readable, a signal arrives (when [`install`]ed) or `timeout` passes
/// (`None`: no timeout). `fd` may be `None` to wait only for a signal or the timeout.
pub fn wait_readable(fd: Option<RawFd>, timeout: Option<Duration>) -> io::Result<Wake> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let deadline = timeout.map(|t| Instant::now() + t);
    let sig_fd = PIPE_R.load(Ordering::SeqCst);
    loop {
        if let Some(s) = received() {
            return Ok(Wake::Signal(s));
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let ms = match left {
            None => PollTimeout::NONE,
            // Round up so a short timeout never becomes a busy poll.
            Some(d) => {
                PollTimeout::try_from(d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32)
                    .unwrap_or(PollTimeout::MAX)
            }
        };
        // SAFETY: both fds stay open for the duration of the poll: `fd` is the caller's, the
        // pipe's read end is never closed in the process that installed the handler.
        let borrow = |f: RawFd| unsafe { BorrowedFd::borrow_raw(f) };
        let mut fds = Vec::with_capacity(2);
        if let Some(f) = fd {
            fds.push(PollFd::new(borrow(f), PollFlags::POLLIN));
        }
        if sig_fd >= 0 && INSTALLED.load(Ordering::SeqCst) {
            fds.push(PollFd::new(borrow(sig_fd), PollFlags::POLLIN));
        }
        match poll(&mut fds, ms) {
            Ok(0) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Wake::Timeout);
                }
            }
            Ok(_) => {
                if fd.is_some() && fds[0].any().unwrap_or(true) {
                    return Ok(Wake::Ready);
                }
                // Only the self-pipe: the loop head returns the signal.
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sleeps for `d` unless a signal arrives first (when [`install`]ed: then to the millisecond);
/// returns the signal if one did.
pub fn sleep(d: Duration) -> Option<i32> {
    if !INSTALLED.load(Ordering::SeqCst) {
        // No handler: a plain (nanosecond-precise) sleep.
        std::thread::sleep(d);
        return None;
    }
    match wait_readable(None, Some(d)) {
        Ok(Wake::Signal(s)) => Some(s),
        Ok(_) => None,
        Err(_) => {
            std::thread::sleep(d);
            received()
        }
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread while a fork happens, if the handler is
/// installed; the returned mask is given back to [`after_fork_parent`] / [`after_fork_child`].
pub(crate) fn before_fork() -> Option<SigSet> {
    if !INSTALLED.load(Ordering::SeqCst) {
        return None;
    }
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).ok()?;
    Some(old)
}

/// In the parent after a fork: restores the mask (a signal that came meanwhile is delivered
/// to the handler now).
pub(crate) fn after_fork_parent(old: Option<SigSet>) {
    if let Some(old) = old {
        let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// In a child of the installing process, before anything else: ignore SIGINT and SIGTERM
/// (the parent kills its children itself), forget the parent's state, restore the mask (a
/// pending SIGINT/SIGTERM is discarded, being ignored).
pub(crate) fn after_fork_child(old: Option<SigSet>) {
    let Some(old) = old else { return };
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: SIG_IGN installs no code; this process is single-threaded right after fork.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    INSTALLED.store(false, Ordering::SeqCst);
    RECEIVED.store(0, Ordering::SeqCst);
    for fd in [&PIPE_R, &PIPE_W] {
        let f = fd.swap(-1, Ordering::SeqCst);
        if f >= 0 {
            super::fd::close_inherited(f);
        }
    }
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_128_plus_signal() {
        assert_eq!(exit_code(libc::SIGINT), 130);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
    }

    #[test]
    fn a_signal_wakes_a_wait_and_children_ignore_it() {
        install().unwrap();
        // A forked child of the installing process ignores SIGTERM: it survives one.
        let mut child = super::super::fork_child(|| {
            std::thread::sleep(Duration::from_millis(300));
            0
        })
        .unwrap();
        child.signal(Signal::SIGTERM);
        assert_eq!(
            child.wait().unwrap().code,
            Some(0),
            "the child died of SIGTERM"
        );
        assert_eq!(received(), None);
        // A wait with nothing to read times out…
        assert_eq!(
            wait_readable(None, Some(Duration::from_millis(5))).unwrap(),
            Wake::Timeout
        );
        // …and a signal to ourselves ends the next one at once.
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        assert_eq!(
            wait_readable(None, Some(Duration::from_secs(30))).unwrap(),
            Wake::Signal(libc::SIGTERM)
        );
        assert_eq!(sleep(Duration::from_secs(30)), Some(libc::SIGTERM));
    }
}
