//! A `timerfd` registered on a mio loop, armed for the loop's earliest deadline.
//!
//! epoll's own timeout is in whole milliseconds (mio rounds up), too coarse for timer heaps
//! of sub-millisecond sleeps and open-loop due times. Every loop in concbench (the event-loop
//! model, the load generator, the server loops) keeps its deadlines in a heap and arms this
//! one-shot timer for the earliest: it wakes the loop through epoll as precisely as a blocking
//! worker's `nanosleep`. It re-arms only when the earliest deadline changed, so a loop with a
//! steady heap makes no `timerfd_settime` per turn.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};

/// A one-shot `timerfd` registered under a token, and the deadline it is armed for.
pub struct LoopTimer {
    fd: TimerFd,
    armed: Option<Instant>,
}

impl LoopTimer {
    /// Creates the timerfd (non-blocking, close-on-exec) and registers it for `token`.
    pub fn new(registry: &Registry, token: Token) -> Result<LoopTimer, String> {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(|e| format!("timerfd_create: {e}"))?;
        registry
            .register(
                &mut SourceFd(&fd.as_fd().as_raw_fd()),
                token,
                Interest::READABLE,
            )
            .map_err(|e| format!("epoll_ctl(timerfd): {e}"))?;
        Ok(LoopTimer { fd, armed: None })
    }

    /// Arms the timer for `due` unless it is already armed for exactly that instant. A due
    /// time already past fires at once (a zero expiration would disarm the timer instead).
    pub fn arm(&mut self, due: Instant) -> Result<(), String> {
        if self.armed == Some(due) {
            return Ok(());
        }
        let left = due
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        self.fd
            .set(
                Expiration::OneShot(TimeSpec::from_duration(left)),
                TimerSetTimeFlags::empty(),
            )
            .map_err(|e| format!("timerfd_settime: {e}"))?;
        self.armed = Some(due);
        Ok(())
    }

    /// The timer's event came: it is no longer armed. Does not read the fd (no syscall):
    /// with edge-triggered epoll a later expiration still raises a new event.
    pub fn fired(&mut self) {
        self.armed = None;
    }

    /// As [`fired`](Self::fired), and clears the expiration count (one non-blocking read).
    pub fn fired_and_cleared(&mut self) {
        let _ = self.fd.wait();
        self.armed = None;
    }
}
