//! The io-threads main thread's side of a connection: its queue of framed requests and its
//! handler task, stepped without blocking. A step that waits on an fd registers that fd in
//! the main loop's epoll (token `2 * slot + 1`); one that sleeps goes into a timer heap whose
//! earliest deadline arms a `timerfd` (epoll's own timeout has millisecond resolution). The
//! main thread goes on with other connections meanwhile, so waiting ops overlap while CPU
//! steps stay serialised on the one thread, as in Redis.

use crate::loop_timer::LoopTimer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::RawFd;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Registry, Token};

use super::{Framed, IoConn};
use crate::server::Stats;
use crate::server::blocking_conn::OK_BODY;
use crate::server::guard::ConnClock;
use crate::server::handler::Handler;
use crate::server::http::write_response;
use crate::workload::{Mode, Step, Task};

/// The timerfd's token.
pub(super) const TIMER: Token = Token(usize::MAX - 1);

/// Where a connection's op is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    /// Not waiting (no op, or an op ready to step).
    Idle,
    /// Waiting for one of the task's fds.
    Wait,
    /// In the timer heap.
    Sleep,
}

/// The main thread's side of a connection (never leaves the main thread: tasks are not Send).
pub(super) struct Exec {
    task: Option<Box<dyn Task>>,
    built: bool,
    number: usize,
    /// Framed requests not yet answered (the front one's op runs when `running`).
    pub(super) pending: VecDeque<Framed>,
    /// The front request's op has started and not finished.
    pub(super) running: bool,
    keep_alive: bool,
    busy: Busy,
    /// A task fd fired while the task was not waiting: step again before waiting.
    fd_fired: bool,
    task_fds: Vec<RawFd>,
    /// Tells this connection from earlier ones in the same slot (stale timers).
    generation: u64,
    /// Header and idle timeouts.
    pub(super) clock: ConnClock,
}

impl Exec {
    /// A fresh connection number `number`, accepted at `now`.
    pub(super) fn new(number: usize, now: Instant) -> Self {
        Self {
            task: None,
            built: false,
            number,
            pending: VecDeque::new(),
            running: false,
            keep_alive: true,
            busy: Busy::Idle,
            fd_fired: false,
            task_fds: Vec::new(),
            generation: 0,
            clock: ConnClock::accepted(now),
        }
    }

    /// A timer entry of generation `g` came due; true when it is this connection's sleep
    /// (step it now), false for a stale entry of an earlier connection in the slot.
    pub(super) fn wake(&mut self, g: u64) -> bool {
        if self.busy == Busy::Sleep && self.generation == g {
            self.busy = Busy::Idle;
            true
        } else {
            false
        }
    }

    /// One of the task's fds fired; true when the task was waiting for it (step it now).
    pub(super) fn fd_ready(&mut self) -> bool {
        if self.busy == Busy::Wait {
            self.busy = Busy::Idle;
            true
        } else {
            self.fd_fired = true;
            false
        }
    }
}

/// What executes ops: the timer heap, the in-flight count, the handler.
pub(super) struct Ops<'a> {
    registry: Registry,
    timer: LoopTimer,
    /// (deadline, slot, generation), earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    handler: &'a Handler,
    stats: &'a Stats,
    in_flight: usize,
    generation: u64,
}

impl<'a> Ops<'a> {
    /// Creates the timerfd and registers it on `poll`.
    pub(super) fn new(poll: &Poll, handler: &'a Handler, stats: &'a Stats) -> Result<Self, String> {
        let registry = poll
            .registry()
            .try_clone()
            .map_err(|e| format!("dup(epoll): {e}"))?;
        let timer = LoopTimer::new(&registry, TIMER)?;
        Ok(Self {
            registry,
            timer,
            timers: BinaryHeap::new(),
            handler,
            stats,
            in_flight: 0,
            generation: 0,
        })
    }

    /// Arms the timerfd for the earliest deadline (if it changed).
    pub(super) fn arm_timer(&mut self) -> Result<(), String> {
        if let Some(&Reverse((due, _, _))) = self.timers.peek() {
            self.timer.arm(due)?;
        }
        Ok(())
    }

    /// The timerfd fired: clear it.
    pub(super) fn timer_fired(&mut self) {
        self.timer.fired_and_cleared();
    }

    /// Slots whose sleep ended (with their generation), to step again; the caller passes
    /// each to [`Ops::execute`], which ignores stale ones.
    pub(super) fn due(&mut self) -> Vec<(usize, u64)> {
        let now = Instant::now();
        let mut out = Vec::new();
        while let Some(&Reverse((due, slot, g))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            out.push((slot, g));
        }
        out
    }

    /// Answers the connection's queued requests in order until one has to wait or none is
    /// left; responses go to `c.outbuf`.
    pub(super) fn execute(&mut self, c: &mut IoConn, ex: &mut Exec) {
        while ex.busy == Busy::Idle && !c.closing && !c.dead {
            if !ex.running {
                match ex.pending.pop_front() {
                    None => return,
                    Some(Framed::Refused(r)) => {
                        write_response(&mut c.outbuf, r.status, r.reason.as_bytes(), false);
                        self.stats.request(0);
                        c.closing = true;
                        ex.pending.clear();
                        return;
                    }
                    Some(Framed::Request { keep_alive }) => {
                        if !ex.built {
                            ex.built = true;
                            match self.handler.task(ex.number, Mode::NonBlocking) {
                                Ok(t) => ex.task = t,
                                Err(e) => {
                                    fail(c, ex, &e);
                                    return;
                                }
                            }
                        }
                        ex.running = true;
                        ex.keep_alive = keep_alive;
                        self.in_flight += 1;
                        self.stats.in_flight(self.in_flight);
                    }
                }
            }
            let step = match ex.task.as_mut() {
                Some(t) => t.step().map_err(|e| e.to_string()),
                None => Ok(Step::Done),
            };
            match step {
                Ok(Step::Done) => {
                    ex.running = false;
                    self.in_flight -= 1;
                    write_response(&mut c.outbuf, 200, OK_BODY, ex.keep_alive);
                    self.stats.request(0);
                    if !ex.keep_alive {
                        c.closing = true;
                        ex.pending.clear();
                    }
                }
                Ok(Step::Wait { fd, .. }) => {
                    if !ex.task_fds.contains(&fd) {
                        // Edge-triggered, both directions, once per fd.
                        let token = Token(c.slot * 2 + 1);
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        let r = match self.registry.register(&mut SourceFd(&fd), token, interest) {
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                                .registry
                                .reregister(&mut SourceFd(&fd), token, interest),
                            r => r,
                        };
                        if let Err(e) = r {
                            self.end_op(ex);
                            fail(c, ex, &format!("epoll_ctl(ADD, task fd {fd}): {e}"));
                            return;
                        }
                        ex.task_fds.push(fd);
                    }
                    if ex.fd_fired {
                        ex.fd_fired = false; // it fired meanwhile: try again first
                        continue;
                    }
                    ex.busy = Busy::Wait;
                }
                Ok(Step::Sleep { until }) => {
                    if until <= Instant::now() {
                        continue;
                    }
                    if ex.generation == 0 {
                        self.generation += 1;
                        ex.generation = self.generation;
                    }
                    ex.busy = Busy::Sleep;
                    self.timers.push(Reverse((until, c.slot, ex.generation)));
                }
                Err(e) => {
                    self.end_op(ex);
                    fail(c, ex, &e);
                }
            }
        }
    }

    fn end_op(&mut self, ex: &mut Exec) {
        if ex.running {
            ex.running = false;
            self.in_flight -= 1;
        }
    }

    /// The connection closed: its op (if any) ends, its task fds leave epoll, and its
    /// stale timer entries will be ignored.
    pub(super) fn forget(&mut self, ex: &mut Exec) {
        self.end_op(ex);
        for fd in ex.task_fds.drain(..) {
            let _ = self.registry.deregister(&mut SourceFd(&fd));
        }
        *ex = Exec::new(0, Instant::now());
    }
}

/// The handler failed: answer 500 and close after writing.
fn fail(c: &mut IoConn, ex: &mut Exec, why: &str) {
    eprintln!("concbench serve: handler failed: {why}");
    write_response(&mut c.outbuf, 500, why.as_bytes(), false);
    c.closing = true;
    ex.pending.clear();
}
