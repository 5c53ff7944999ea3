//! The single-threaded epoll (mio) server loop shared by the `event-loop` (Redis, Node.js),
//! `prefork` (Nginx workers) and `thread-workers` (Envoy workers) architectures: each of them
//! is one or more copies of [`run`], differing only in how many copies run, in processes or
//! threads, and which listening sockets each copy accepts on.
//!
//! # Design
//! - **Accept**: every listener is registered edge-triggered; a readable event accepts until
//!   `WouldBlock`, so one wake-up takes a whole burst of connections. Accepted sockets get
//!   `TCP_NODELAY` and are registered once, edge-triggered, for both readable and writable
//!   (as Nginx does: no `epoll_ctl(MOD)` per request; a writable edge only matters while a
//!   response is still buffered, i.e. after a write came back short).
//! - **Connections** live in a slab (a `Vec` with a free list): slot `s` owns token `2s` for
//!   its socket and `2s + 1` for the fds its handler task waits on; listeners and the timerfd
//!   take the tokens at the top of the range, so no token can collide.
//! - **Reads** go into one scratch buffer per loop and are appended to the connection's own
//!   (small, reused) buffer. A read that returns less than asked for has drained the socket
//!   (epoll(7): for stream sockets a short read detects exhaustion), which saves the
//!   `EAGAIN` read per request; EOF is seen through the RDHUP edge or a read of 0.
//! - **Requests** are framed with [`parse_request`]: pipelined requests of one read are
//!   answered in order, and their responses leave in one `write`. Each request runs one op of
//!   the connection's handler task (built once per connection, on its first request, in
//!   [`Mode::NonBlocking`]): the task is stepped until `Done`; `Wait { fd }` registers that fd
//!   (once per fd) under the connection's task token; `Sleep` goes into a timer heap whose
//!   earliest deadline arms a `timerfd`, as `model::event_loop` does, because epoll's own
//!   timeout has millisecond resolution. While an op runs, later requests of the connection wait
//!   their turn (HTTP/1.1 answers in order); other connections go on.
//! - **Responses**: 200 with a short body when the op is done; a refused request gets its status
//!   with `Connection: close` and the connection closes once it is written. Writes go straight
//!   to the socket until `WouldBlock`; the rest waits for the writable edge. A client that
//!   stops reading stops being served (responses buffered past [`WBUF_CAP`] pause framing),
//!   and one that floods requests while an op runs stops being read (past [`RBUF_CAP`]).
//! - **Counters**: `stats.connection(worker)` per accepted connection and
//!   `stats.request(worker)` per response written (refusals and 500s included).
//! - **Limits** ([`Limits`]): a request that has not fully arrived `header_timeout` after its
//!   first byte (or after the accept) gets 408 and is closed; a connection with no request in
//!   progress and no traffic for `idle_timeout` (an idle keep-alive, or a client that stopped
//!   reading its responses) is closed. A sweep every [`guard::sweep_every`] finds them, so
//!   vanished and trickling clients do not hold slots. Past `max_conns` live connections a new
//!   one is accepted, answered 503 and closed at once.
//!
//! # Timing model
//! Everything a loop does is serialised on its one thread: a request waits while the loop
//! accepts, reads, parses, runs CPU steps and writes for the other connections that became
//! ready in the same wake-up. Waiting ops (a downstream call, a sleep) cost nothing while they
//! wait; CPU ops and disk I/O inside a step stall every connection of the loop.

use crate::loop_timer::LoopTimer;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::guard::{self, ConnClock, Expiry};
use super::handler::Handler;
use super::http::{Limits, Parse, parse_request, write_response};
use super::{ServerCtx, Stats};
use crate::workload::{Mode, Task};

mod slab;
mod task;
#[cfg(test)]
pub(crate) mod testkit;

use slab::Slab;

/// Unanswered request bytes a connection may hold while it cannot be served (an op runs, or
/// its responses are not being read) before the loop stops reading from it.
pub const RBUF_CAP: usize = 64 * 1024;
/// Buffered response bytes past which the loop stops framing a connection's requests.
pub const WBUF_CAP: usize = 64 * 1024;
/// One read's size (the scratch buffer).
const READ_CHUNK: usize = 64 * 1024;
/// The body of every successful response.
pub const OK_BODY: &[u8] = b"ok\n";

const TIMER: Token = Token(usize::MAX);
/// Listener `i` has token `LISTENER_BASE - i`.
const LISTENER_BASE: usize = usize::MAX - 1;
/// Listeners a loop may have (keeps their tokens far above any slot's).
const MAX_LISTENERS: usize = 1024;

/// What one loop needs besides its listeners.
pub struct LoopConfig<'a> {
    /// Builds each connection's task.
    pub handler: &'a Handler,
    /// Request size limits.
    pub limits: Limits,
    /// Counters; this loop counts into slot `worker`.
    pub stats: &'a Stats,
    /// Which worker this loop is (its counter slot, and part of its connections' task ids).
    pub worker: usize,
}

impl<'a> LoopConfig<'a> {
    /// The configuration for worker `worker` of the server in `ctx`.
    pub fn new(ctx: &'a ServerCtx<'a>, worker: usize) -> Self {
        Self {
            handler: ctx.handler,
            limits: ctx.cfg.limits,
            stats: ctx.stats,
            worker,
        }
    }
}

/// Where a connection's handler task is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// No op in progress.
    Idle,
    /// Waiting for one of the task's fds.
    Waiting,
    /// In the timer heap.
    Sleeping,
}

/// One client connection.
struct Conn {
    sock: TcpStream,
    /// Received bytes not yet framed (starting at `rpos`).
    rbuf: Vec<u8>,
    rpos: usize,
    /// Response bytes not yet written (starting at `wpos`).
    wbuf: Vec<u8>,
    wpos: usize,
    /// The socket may have more to read (an edge came and we have not drained it).
    can_read: bool,
    /// The socket had room at the last write.
    can_write: bool,
    /// The peer finished sending (EOF) or the socket failed.
    eof: bool,
    /// epoll reported the peer's FIN (RDHUP): read to EOF, a short read is not the end.
    hup: bool,
    /// Close once the buffered responses are written (refusal or `Connection: close`).
    closing: bool,
    /// The handler task: built on the first request; None inside for the `none` handler.
    task: Option<Option<Box<dyn Task>>>,
    /// Fds of the task registered with epoll.
    task_fds: Vec<RawFd>,
    op: Op,
    /// Keep-alive of the request whose op runs.
    op_keep_alive: bool,
    /// A task fd fired while the task was not waiting: step again before waiting.
    fd_ready: bool,
    /// Header and idle timeouts.
    clock: ConnClock,
    /// Tells this connection from earlier ones in the same slot (stale timers).
    generation: u64,
    /// Task id (unique in the server).
    id: usize,
}

/// The loop's state.
struct Loop<'a> {
    cfg: &'a LoopConfig<'a>,
    poll: Poll,
    conns: Slab<Conn>,
    scratch: Vec<u8>,
    /// (deadline, slot, generation), earliest first.
    timers: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// The responses for a finished op, pre-rendered: keep-alive and close.
    ok_keep_alive: Vec<u8>,
    ok_close: Vec<u8>,
    /// Clock read once per wake-up (idle bookkeeping).
    now: Instant,
    generation: u64,
    next_id: usize,
    /// Live connections (for `max_conns`).
    live: usize,
}

/// Serves the connections of `listeners` on this thread until a fatal error of the loop itself
/// (epoll failing); errors of one connection close that connection.
pub fn run(cfg: &LoopConfig<'_>, listeners: Vec<std::net::TcpListener>) -> Result<(), String> {
    if listeners.len() > MAX_LISTENERS {
        return Err(format!("at most {MAX_LISTENERS} listeners per loop"));
    }
    let poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
    let mut listeners: Vec<TcpListener> = listeners
        .into_iter()
        .map(|l| {
            l.set_nonblocking(true)?;
            Ok(TcpListener::from_std(l))
        })
        .collect::<std::io::Result<_>>()
        .map_err(|e| format!("listener: {e}"))?;
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(l, Token(LISTENER_BASE - i), Interest::READABLE)
            .map_err(|e| format!("epoll_ctl(listener): {e}"))?;
    }
    let mut timer = LoopTimer::new(poll.registry(), TIMER)?;

    let mut ok_keep_alive = Vec::new();
    write_response(&mut ok_keep_alive, 200, OK_BODY, true);
    let mut ok_close = Vec::new();
    write_response(&mut ok_close, 200, OK_BODY, false);
    let mut lp = Loop {
        cfg,
        poll,
        conns: Slab::new(),
        scratch: vec![0; READ_CHUNK],
        timers: BinaryHeap::new(),
        ok_keep_alive,
        ok_close,
        now: Instant::now(),
        generation: 0,
        next_id: cfg.worker << 32,
        live: 0,
    };
    let sweep_every = guard::sweep_every(&cfg.limits);
    let mut events = Events::with_capacity(1024);
    let mut next_sweep = Instant::now() + sweep_every;
    // Set when accept failed for lack of descriptors: retry soon (no new edge may come).
    let mut accept_retry = false;

    loop {
        // The timerfd wakes us for task deadlines; the poll timeout only paces the idle sweep
        // and accept retries.
        if let Some(&Reverse((due, _, _))) = lp.timers.peek() {
            timer.arm(due)?;
        }
        let timeout = if accept_retry {
            Duration::from_millis(10)
        } else {
            next_sweep.saturating_duration_since(lp.now) + Duration::from_millis(1)
        };
        match lp.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        lp.now = Instant::now();
        if accept_retry {
            accept_retry = false;
            for l in &listeners {
                accept_retry |= lp.accept_all(l);
            }
        }
        for ev in events.iter() {
            let t = ev.token().0;
            if t == TIMER.0 {
                timer.fired_and_cleared();
            } else if t > LISTENER_BASE - MAX_LISTENERS {
                if let Some(l) = listeners.get(LISTENER_BASE - t) {
                    accept_retry |= lp.accept_all(l);
                }
            } else if t & 1 == 0 {
                let s = t >> 1;
                let Some(c) = lp.conns.get_mut(s) else {
                    continue;
                };
                if ev.is_read_closed() || ev.is_error() {
                    c.hup = true;
                }
                if ev.is_readable() || c.hup {
                    c.can_read = true;
                }
                if ev.is_writable() || ev.is_write_closed() {
                    c.can_write = true;
                }
                lp.drive(s);
            } else {
                let s = t >> 1;
                let Some(c) = lp.conns.get_mut(s) else {
                    continue;
                };
                if c.op == Op::Waiting {
                    c.op = Op::Idle;
                    lp.step_task(s);
                    lp.drive(s);
                } else {
                    c.fd_ready = true;
                }
            }
        }
        // Sleeping ops whose deadline passed.
        let now = Instant::now();
        while let Some(&Reverse((due, s, g))) = lp.timers.peek() {
            if due > now {
                break;
            }
            lp.timers.pop();
            let Some(c) = lp.conns.get_mut(s) else {
                continue;
            };
            if c.generation != g || c.op != Op::Sleeping {
                continue; // the connection it belonged to has closed
            }
            c.op = Op::Idle;
            lp.step_task(s);
            lp.drive(s);
        }
        if lp.now >= next_sweep {
            lp.sweep_expired();
            next_sweep = lp.now + sweep_every;
        }
    }
}

impl Loop<'_> {
    /// Accepts until `WouldBlock`; true when accepting failed for another reason (out of
    /// descriptors) and should be retried soon.
    fn accept_all(&mut self, l: &TcpListener) -> bool {
        loop {
            match l.accept() {
                Ok((mut sock, _)) => {
                    if self.live >= self.cfg.limits.max_conns {
                        guard::answer_and_close(&sock, 503, "too many connections\n");
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let s = self.conns.vacant();
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut sock,
                            Token(s << 1),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue; // dropping the socket closes it
                    }
                    self.generation += 1;
                    self.next_id += 1;
                    self.cfg.stats.connection(self.cfg.worker);
                    self.live += 1;
                    self.conns.insert(Conn {
                        sock,
                        rbuf: Vec::new(),
                        rpos: 0,
                        wbuf: Vec::new(),
                        wpos: 0,
                        // The first edge (data may already be there) arrives with the event
                        // that registration generates.
                        can_read: false,
                        can_write: true,
                        eof: false,
                        hup: false,
                        closing: false,
                        task: None,
                        task_fds: Vec::new(),
                        op: Op::Idle,
                        op_keep_alive: true,
                        fd_ready: false,
                        clock: ConnClock::accepted(self.now),
                        generation: self.generation,
                        id: self.next_id,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // The peer gave up before we accepted: take the next one.
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: the pending connections stay queued; retry later.
                    crate::sys::limits::warn_throttled("accept", &e);
                    return true;
                }
            }
        }
    }

    /// Reads, frames, runs and writes for connection `s` until nothing more can happen now;
    /// closes it when it is finished.
    fn drive(&mut self, s: usize) {
        loop {
            let Some(c) = self.conns.get_mut(s) else {
                return;
            };
            let mut progress = false;
            // Read what is there, unless the connection cannot be served and already holds
            // plenty.
            let servable = c.op == Op::Idle && !c.closing && c.wbuf.len() - c.wpos < WBUF_CAP;
            if c.can_read && !c.eof && (servable || c.rbuf.len() - c.rpos < RBUF_CAP) {
                match c.sock.read(&mut self.scratch) {
                    Ok(0) => {
                        c.eof = true;
                        c.can_read = false;
                    }
                    Ok(n) => {
                        if n < self.scratch.len() && !c.hup {
                            c.can_read = false; // short read: drained
                        }
                        c.rbuf.extend_from_slice(&self.scratch[..n]);
                        c.clock.last_active = self.now;
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.can_read = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(s);
                        return;
                    }
                }
            }
            if self.serve_requests(s) {
                progress = true;
            }
            let Some(c) = self.conns.get_mut(s) else {
                return;
            };
            if c.wpos < c.wbuf.len() && c.can_write {
                match c.sock.write(&c.wbuf[c.wpos..]) {
                    Ok(n) => {
                        c.wpos += n;
                        c.clock.last_active = self.now;
                        if c.wpos == c.wbuf.len() {
                            c.wbuf.clear();
                            c.wpos = 0;
                        } else {
                            c.can_write = false; // short write: the socket buffer is full
                        }
                        progress = true;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => c.can_write = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.close(s);
                        return;
                    }
                }
            }
            if !progress {
                break;
            }
        }
        let Some(c) = self.conns.get_mut(s) else {
            return;
        };
        // Finished: nothing left to answer (framing stopped at a partial request or a
        // refusal) and everything written.
        if (c.closing || c.eof) && c.op == Op::Idle && c.wpos == c.wbuf.len() {
            if !c.eof {
                // We end it (a refusal, `Connection: close`): a FIN after the response, and
                // what the client still sent is discarded, so the close is no RST that could
                // destroy the response (a refused body may still be arriving).
                super::shut_and_drain(&c.sock);
            }
            self.close(s);
        }
    }

    /// Frames and runs the buffered requests of `s` while it can be served; true when it
    /// consumed any.
    fn serve_requests(&mut self, s: usize) -> bool {
        let mut any = false;
        loop {
            let Some(c) = self.conns.get_mut(s) else {
                return any;
            };
            if c.op != Op::Idle || c.closing || c.wbuf.len() - c.wpos >= WBUF_CAP {
                break;
            }
            if c.rpos == c.rbuf.len() {
                break;
            }
            match parse_request(&c.rbuf[c.rpos..], &self.cfg.limits) {
                Parse::Partial => break,
                Parse::Refused(r) => {
                    write_response(&mut c.wbuf, r.status, r.reason.as_bytes(), false);
                    c.closing = true;
                    c.rbuf.clear();
                    c.rpos = 0;
                    self.cfg.stats.request(self.cfg.worker);
                    return true;
                }
                Parse::Complete(req) => {
                    c.rpos += req.consumed;
                    any = true;
                    c.op_keep_alive = req.keep_alive;
                    if c.task.is_none() {
                        match self.cfg.handler.task(c.id, Mode::NonBlocking) {
                            Ok(t) => c.task = Some(t),
                            Err(e) => {
                                self.fail(s, &e);
                                break;
                            }
                        }
                    }
                    self.step_task(s);
                }
            }
        }
        if let Some(c) = self.conns.get_mut(s) {
            c.clock.framed(c.rpos < c.rbuf.len(), self.now);
        }
        if let Some(c) = self.conns.get_mut(s)
            && c.rpos > 0
        {
            // Keep the unframed tail at the front (usually nothing; capacity is kept).
            let framed = c.rpos;
            c.rbuf.drain(..framed);
            c.rpos = 0;
        }
        any
    }

    /// Deregisters and drops connection `s` (and its task, which closes the task's fds).
    fn close(&mut self, s: usize) {
        if let Some(mut c) = self.conns.remove(s) {
            self.live -= 1;
            let reg = self.poll.registry();
            let _ = reg.deregister(&mut c.sock);
            for fd in &c.task_fds {
                let _ = reg.deregister(&mut SourceFd(fd));
            }
        }
    }

    /// Closes the connections whose header or idle time ran out (those with an op in
    /// progress are the server's business, not the client's, and are left alone); a request
    /// that did not arrive in time gets a 408 first.
    fn sweep_expired(&mut self) {
        let limits = self.cfg.limits;
        let now = self.now;
        let mut expired = Vec::new();
        for (s, c) in self.conns.slots.iter().enumerate() {
            if let Some(c) = c
                && c.op == Op::Idle
                && let Some(why) = c.clock.expired(now, &limits)
            {
                expired.push((s, why));
            }
        }
        for (s, why) in expired {
            if why == Expiry::Header
                && let Some(c) = self.conns.get_mut(s)
                && c.wpos == c.wbuf.len()
            {
                guard::answer_and_close(&c.sock, 408, "request not received in time\n");
            }
            self.close(s);
        }
    }
}
