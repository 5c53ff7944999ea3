//! `loop-helpers`: one event loop owns every connection and hands the ops that would stall it
//! to a small pool of helper threads, the way Node.js hands file-system calls and crypto work
//! to libuv's thread pool, and the way the Flash web server's AMPED design (Pai, Druschel and
//! Zwaenepoel, 1999) hands disk reads to helper processes.
//!
//! # Design
//! One thread runs a mio (epoll, edge-triggered) loop: it accepts, reads, frames requests with
//! [`parse_request`], writes responses, and keeps a timer heap (woken through a `timerfd`, as
//! in the loop model). `--helpers N` threads (default 1) take jobs from the loop and send the
//! connection back when the op is done; the loop hears of it through a `mio::Waker`.
//!
//! **Which ops go to the helpers** (decided once per server from the handler's workload):
//! - disk I/O (`fsync`, `file_read`: epoll cannot make it non-blocking): always, whatever it
//!   costs, as libuv always sends file-system calls to its pool;
//! - CPU-bound work (workloads of kind `Cpu`: `spin`, `hash`, `primes`, `matmul`, `json`)
//!   only when it is expensive: at start the server times the handler's op on a probe task
//!   (median of 5, [`Handler::measure_op`]); above `--offload-over` (default 100 µs) ops go
//!   to the helpers, at or below it they run inline on the loop, where the hand-off (a
//!   channel send, a helper wake-up, a `Waker` write and an extra loop turn: tens of µs)
//!   would cost more than the op. Node makes the same call by hand: small computations run
//!   on the JavaScript thread, `crypto.pbkdf2` and friends go to the pool.
//!   [`Stats::offloaded_ops`] counts the ops that went to a helper.
//!
//! Ops whose steps return `Wait`/`Sleep` instead of blocking
//! (`sleep`, `downstream`) stay on the loop: their fds go into the loop's epoll and their
//! deadlines into its timer heap. The mixed `request` op also stays on the loop: its parse and
//! render spins sit inside the same `step` as its downstream exchange, so they cannot be
//! split off without changing the workload (they run on the loop, as they would in a Node
//! handler written without worker threads).
//!
//! **Who owns a task.** [`Task`] is not `Send`, so a task never moves between threads: a
//! connection whose ops go to helpers is bound to one helper (connections are dealt out round
//! robin), which builds the connection's task lazily, in [`Mode::Blocking`], on its own thread
//! and keeps it in a map until the loop says the connection closed. So each helper has its own
//! job channel rather than one shared queue as in libuv; with many connections the load evens
//! out, with few it can be uneven. Loop-side tasks are built in [`Mode::NonBlocking`] on the
//! loop thread.
//!
//! A connection has at most one op in flight; pipelined requests queue behind it and are
//! answered in order (at most [`MAX_PENDING`] framed, at most [`RBUF_CAP`] bytes unframed;
//! past that the loop stops reading the connection until its queue drains). A connection is
//! never freed while a helper works for it.
//!
//! **Limits** ([`Limits`]): as in `loop_core`, a sweep closes connections whose request is not
//! whole `header_timeout` after its first byte (408) or that stayed idle for `idle_timeout`;
//! past `max_conns` connections a new one is answered 503 and closed.

use crate::loop_timer::LoopTimer;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::ErrorKind;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::server::conn_io::{MAX_PENDING, RBUF_CAP, register_listener};
use crate::server::guard::{self, ConnClock, Expiry};
use crate::server::handler::Handler;
use crate::server::http::{Limits, Refusal, write_response};
use crate::server::{ArchDef, ServerCtx, Stats};
use crate::workload::{Kind, Step, Task};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "loop-helpers",
    who: "Node.js (libuv thread pool), Flash (AMPED helpers)",
    uses_workers: false,
    run,
};

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const TIMER: Token = Token(usize::MAX - 2);

/// Token of connection slot `i`'s socket; its task's fds use `sock + 1`.
fn sock_token(i: usize) -> Token {
    Token(i * 2)
}

/// Where a handler's ops run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// `none`: answered at once on the loop.
    Nothing,
    /// Stepped on the loop; `Wait`/`Sleep` integrated in epoll and the timer heap.
    Loop,
    /// Run on a helper thread.
    Helper,
}

fn placement(ctx: &ServerCtx<'_>) -> Result<Placement, String> {
    Ok(match ctx.cfg.handler.workload {
        None => Placement::Nothing,
        Some(d) if matches!(d.id, "fsync" | "file_read") => Placement::Helper,
        Some(d) if d.kind == Kind::Cpu => {
            let cost = ctx.handler.measure_op(5)?.unwrap_or_default();
            if cost > ctx.cfg.limits.offload_over {
                Placement::Helper
            } else {
                Placement::Loop
            }
        }
        Some(_) => Placement::Loop,
    })
}

mod conn;
mod helper;

use conn::{answer, fail, flush, read_and_frame, step_on_loop};

use helper::{Finished, Job, helper};

/// What a queued request needs.
enum Pending {
    /// A framed request; answer 200 after its op.
    Request { keep_alive: bool },
    /// Answer this status and close.
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Idle,
    /// A helper runs the op.
    Helper,
    /// The loop-side task waits for one of its fds.
    Wait,
    /// The loop-side task sleeps (its deadline is in the timer heap).
    Sleep,
}

struct Conn {
    stream: TcpStream,
    serial: u64,
    /// Connection number for the handler (seed, files).
    number: usize,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    written: usize,
    pending: VecDeque<Pending>,
    busy: Busy,
    /// Loop-side task (Placement::Loop).
    task: Option<Box<dyn Task>>,
    task_built: bool,
    task_fds: Vec<RawFd>,
    /// The client sent EOF (answer what is queued, then close).
    eof: bool,
    /// Answer nothing more; close once the output is flushed.
    closing: bool,
    /// Stop framing: a request was refused.
    refused: bool,
    /// The socket may hold more bytes (reading stopped at a cap, not at `WouldBlock`).
    can_read: bool,
    /// Header and idle timeouts.
    clock: ConnClock,
}

struct Server<'a> {
    poll: Poll,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_serial: u64,
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    placement: Placement,
    handler: &'a Handler,
    stats: &'a Stats,
    limits: Limits,
    helpers: Vec<Sender<Job>>,
}

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    let placement = placement(ctx)?;
    let poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
    let waker = Arc::new(
        Waker::new(poll.registry(), WAKER).map_err(|e| format!("creating the waker: {e}"))?,
    );
    let (done_tx, done_rx) = unbounded::<Finished>();
    let n_helpers = if placement == Placement::Helper {
        ctx.cfg.helpers.max(1)
    } else {
        0
    };
    std::thread::scope(|scope| {
        let mut helpers = Vec::with_capacity(n_helpers);
        for h in 0..n_helpers {
            let (tx, rx) = unbounded::<Job>();
            let done = done_tx.clone();
            let waker = Arc::clone(&waker);
            let handler = ctx.handler;
            std::thread::Builder::new()
                .name(format!("helper-{h}"))
                .spawn_scoped(scope, move || helper(handler, rx, done, &waker))
                .map_err(|e| format!("spawning helper {h}: {e}"))?;
            helpers.push(tx);
        }
        drop(done_tx);
        let mut server = Server {
            poll,
            conns: Vec::new(),
            free: Vec::new(),
            next_serial: 0,
            timers: BinaryHeap::new(),
            placement,
            handler: ctx.handler,
            stats: ctx.stats,
            limits: ctx.cfg.limits,
            helpers,
        };
        // Returning drops the job senders, so the helpers end and the scope can join them.
        server.serve(ctx, &done_rx)
    })
}

impl Server<'_> {
    fn serve(&mut self, ctx: &ServerCtx<'_>, done: &Receiver<Finished>) -> Result<(), String> {
        let listener = register_listener(&ctx.listener, self.poll.registry(), LISTENER)?;
        let mut timer = LoopTimer::new(self.poll.registry(), TIMER)?;
        let mut events = Events::with_capacity(1024);
        let mut accepted = 0usize;
        let sweep_every = guard::sweep_every(&self.limits);
        let mut next_sweep = Instant::now() + sweep_every;
        loop {
            if let Some(&Reverse((due, _, _))) = self.timers.peek() {
                timer.arm(due)?;
            }
            let timeout = next_sweep.saturating_duration_since(Instant::now());
            match self
                .poll
                .poll(&mut events, Some(timeout + Duration::from_millis(1)))
            {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("epoll_wait: {e}")),
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(&listener, &mut accepted)?,
                    WAKER => {}
                    TIMER => {
                        timer.fired_and_cleared();
                    }
                    Token(t) => {
                        let slot = t / 2;
                        if t % 2 == 0 {
                            self.on_socket(slot, ev.is_readable() || ev.is_read_closed());
                        } else {
                            self.on_task_fd(slot);
                        }
                    }
                }
            }
            // Ops the helpers finished.
            while let Ok(f) = done.try_recv() {
                self.on_finished(f);
            }
            // Deadlines that passed.
            let now = Instant::now();
            while let Some(&Reverse((due, slot, serial))) = self.timers.peek() {
                if due > now {
                    break;
                }
                self.timers.pop();
                if let Some(c) = self.conn_mut(slot, serial)
                    && c.busy == Busy::Sleep
                {
                    c.busy = Busy::Idle;
                    self.advance(slot);
                }
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + sweep_every;
            }
        }
    }

    /// Closes connections whose header or idle time ran out (none with an op in progress).
    fn sweep(&mut self, now: Instant) {
        let limits = self.limits;
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_ref() else {
                continue;
            };
            if c.busy != Busy::Idle || !c.pending.is_empty() {
                continue;
            }
            match c.clock.expired(now, &limits) {
                None => {}
                Some(why) => {
                    if why == Expiry::Header && c.outbuf.is_empty() {
                        guard::answer_and_close(&c.stream, 408, "request not received in time\n");
                    }
                    self.close(slot);
                }
            }
        }
    }

    fn conn_mut(&mut self, slot: usize, serial: u64) -> Option<&mut Conn> {
        self.conns
            .get_mut(slot)
            .and_then(|c| c.as_mut())
            .filter(|c| c.serial == serial)
    }

    fn accept_all(&mut self, listener: &TcpListener, accepted: &mut usize) -> Result<(), String> {
        loop {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if super::thread_per_conn::is_fd_exhaustion(&e) => {
                    crate::sys::limits::warn_throttled("accept", &e);
                    // Level of the listener stays high; retry on the next event or wake-up.
                    std::thread::sleep(Duration::from_millis(1));
                    return Ok(());
                }
                Err(e) if super::thread_per_conn::is_transient(&e) => continue,
                Err(e) => return Err(format!("accept: {e}")),
            };
            if self.conns.len() - self.free.len() >= self.limits.max_conns {
                guard::answer_and_close(&stream, 503, "too many connections\n");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    sock_token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.stats.connection(0);
            let serial = self.next_serial;
            self.next_serial += 1;
            self.conns[slot] = Some(Conn {
                stream,
                serial,
                number: *accepted,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                written: 0,
                pending: VecDeque::new(),
                busy: Busy::Idle,
                task: None,
                task_built: false,
                task_fds: Vec::new(),
                eof: false,
                closing: false,
                refused: false,
                can_read: false,
                clock: ConnClock::accepted(Instant::now()),
            });
            *accepted += 1;
        }
    }

    /// The socket is readable and/or writable.
    fn on_socket(&mut self, slot: usize, readable: bool) {
        let limits = self.limits;
        let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        if readable {
            c.can_read = true;
        }
        if c.can_read && !c.eof && !c.closing && c.pending.len() < MAX_PENDING {
            read_and_frame(c, &limits);
        }
        self.advance(slot);
    }

    /// One of the loop-side task's fds is ready.
    fn on_task_fd(&mut self, slot: usize) {
        if let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut())
            && c.busy == Busy::Wait
        {
            c.busy = Busy::Idle;
            self.advance(slot);
        }
    }

    fn on_finished(&mut self, f: Finished) {
        let stats = self.stats;
        let Some(c) = self.conn_mut(f.slot, f.serial) else {
            return;
        };
        c.busy = Busy::Idle;
        match f.result {
            Ok(()) => answer(c, stats),
            Err(e) => fail(c, &e),
        }
        self.advance(f.slot);
    }

    /// Starts or continues the connection's ops until one is in flight or none is queued,
    /// then writes what it can and closes the connection if it is done.
    fn advance(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        let mut alive;
        loop {
            // Reading stopped at a cap and the queue has drained since: read on.
            if c.can_read && !c.eof && !c.closing && c.busy == Busy::Idle && c.pending.is_empty() {
                read_and_frame(c, &self.limits);
            }
            while c.busy == Busy::Idle && !c.closing {
                match c.pending.front() {
                    None => break,
                    Some(Pending::Refused(r)) => {
                        write_response(&mut c.outbuf, r.status, r.reason.as_bytes(), false);
                        c.closing = true;
                        c.pending.clear();
                        break;
                    }
                    Some(Pending::Request { .. }) => {}
                }
                match self.placement {
                    Placement::Nothing => answer(c, self.stats),
                    Placement::Helper => {
                        let h = (c.serial % self.helpers.len() as u64) as usize;
                        c.task_built = true;
                        let job = Job::Run {
                            slot,
                            serial: c.serial,
                            conn: c.number,
                        };
                        if self.helpers[h].send(job).is_err() {
                            fail(c, "the helper thread is gone");
                        } else {
                            c.busy = Busy::Helper;
                            self.stats.offloaded();
                        }
                    }
                    Placement::Loop => match step_on_loop(c, self.handler, &self.poll, slot) {
                        Ok(Some(Step::Done)) | Ok(None) => answer(c, self.stats),
                        Ok(Some(Step::Sleep { until })) => {
                            c.busy = Busy::Sleep;
                            self.timers.push(Reverse((until, slot, c.serial)));
                        }
                        Ok(Some(Step::Wait { .. })) => c.busy = Busy::Wait,
                        Err(e) => fail(c, &e),
                    },
                }
            }
            let before = c.outbuf.len() - c.written;
            alive = flush(c);
            if c.outbuf.len() - c.written != before {
                c.clock.last_active = Instant::now();
            }
            // Reading stopped at a cap with more bytes waiting (no edge will come for them):
            // go on while the queue is drained and the client takes its responses.
            let more = alive
                && c.can_read
                && !c.eof
                && !c.closing
                && c.busy == Busy::Idle
                && c.pending.is_empty()
                && c.outbuf.len() < RBUF_CAP;
            if !more {
                break;
            }
        }
        let done = c.outbuf.is_empty()
            && (c.closing || (c.eof && c.pending.is_empty() && c.busy == Busy::Idle));
        if (!alive || done) && c.busy != Busy::Helper {
            self.close(slot);
        } else if !alive {
            // A helper still works for it: drop everything, close when it reports.
            c.closing = true;
            c.pending.clear();
            c.outbuf.clear();
            c.written = 0;
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut c) = self.conns[slot].take() else {
            return;
        };
        let reg = self.poll.registry();
        for fd in &c.task_fds {
            let _ = reg.deregister(&mut SourceFd(fd));
        }
        let _ = reg.deregister(&mut c.stream);
        if self.placement == Placement::Helper && c.task_built {
            let h = (c.serial % self.helpers.len() as u64) as usize;
            let _ = self.helpers[h].send(Job::Forget { serial: c.serial });
        }
        crate::server::shut_and_drain(&c.stream);
        drop(c);
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests;
