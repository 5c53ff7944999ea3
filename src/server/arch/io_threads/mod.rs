//! `io-threads`: one main thread executes every request while helper threads only move bytes,
//! the way Redis 6 runs with `io-threads N` (threaded I/O): command execution stays
//! single-threaded, socket reads (with request parsing) and reply writes are spread over I/O
//! threads.
//!
//! # Design
//! The main thread runs a mio (epoll, edge-triggered) loop that accepts and owns every
//! connection. Each loop iteration has three phases separated by barriers:
//!
//! 1. **Read.** The connections that became readable are dealt round robin over the
//!    `--helpers N` I/O threads (each connection is moved to its thread with its buffers);
//!    each thread reads until the socket would block and frames the complete requests with
//!    [`parse_request`]; the main thread waits until every batch has come back.
//! 2. **Execute.** The main thread, alone, runs the handler op of every framed request, in
//!    order per connection, and appends each response to the connection's output buffer.
//! 3. **Write.** Connections with output (just answered, or whose socket became writable
//!    again) are dealt over the I/O threads, which write until done or the socket would
//!    block; the main thread waits again, then closes the connections that are finished.
//!
//! Unlike Redis, the main thread does not take a share of the reads and writes itself: with
//! `--helpers N` there are N I/O threads plus the main thread.
//!
//! Handler ops run on the main thread (tasks built in [`Mode::NonBlocking`], see `exec`): CPU
//! steps and disk I/O run there to completion, stalling every connection meanwhile, as a slow
//! command stalls Redis; a step that has to wait (`Wait` on a downstream socket, `Sleep`) does
//! not block: its fd goes into the main loop's epoll, its deadline into a timer heap behind a
//! `timerfd`, and the main thread goes on with other connections, as Redis does with a
//! blocked client (`BLPOP`). So N connections with a sleeping handler have N ops in flight
//! ([`crate::server::Stats::max_in_flight`]).
//!
//! **Limits** ([`Limits`]): reads stop at `RBUF_CAP` unframed bytes or `MAX_PENDING` queued
//! requests (resumed once the queue drains); a sweep closes connections whose request is not
//! whole `header_timeout` after its first byte (408) or that stayed idle for `idle_timeout`;
//! past `max_conns` connections a new one is answered 503 and closed.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, Sender, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::server::conn_io::{
    MAX_PENDING, RBUF_CAP, flush_into, read_and_frame_into, register_listener,
};
use crate::server::guard::{self, Expiry};
use crate::server::http::{Limits, Parse, Refusal};
use crate::server::{ArchDef, ServerCtx};

mod exec;

use exec::{Exec, Ops, TIMER};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "io-threads",
    who: "Redis 6+ (io-threads: threaded reads and writes, single-threaded execution)",
    uses_workers: false,
    run,
};

const LISTENER: Token = Token(usize::MAX);

/// A request framed by an I/O thread, for the main thread to execute.
enum Framed {
    Request { keep_alive: bool },
    Refused(Refusal),
}

/// A connection's socket and buffers: moved to an I/O thread for a phase and back.
struct IoConn {
    slot: usize,
    stream: TcpStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    written: usize,
    framed: Vec<Framed>,
    /// Queued for this iteration's read or write phase.
    want_read: bool,
    want_write: bool,
    eof: bool,
    dead: bool,
    /// A request was refused: frame nothing more.
    refused: bool,
    /// Answer nothing more; close once the output is written.
    closing: bool,
    /// The last read stopped at a cap: the socket may hold more.
    more: bool,
    /// Bytes moved by the last phase (the main thread updates the clock from it).
    bytes: usize,
    limits: Limits,
}

#[derive(Clone, Copy)]
enum Phase {
    Read,
    Write,
}

impl IoConn {
    fn do_read(&mut self) {
        if self.refused {
            self.inbuf.clear();
        }
        let refused = &mut self.refused;
        let framed = &mut self.framed;
        let got = read_and_frame_into(&mut self.stream, &mut self.inbuf, &self.limits, |p| {
            if *refused {
                return false;
            }
            match p {
                Parse::Complete(r) => framed.push(Framed::Request {
                    keep_alive: r.keep_alive,
                }),
                Parse::Refused(r) => {
                    framed.push(Framed::Refused(r));
                    *refused = true;
                }
                Parse::Partial => {}
            }
            !*refused
        });
        if self.refused {
            self.inbuf.clear();
        }
        self.eof |= got.eof;
        self.dead |= got.dead;
        self.more = got.more;
        self.bytes = got.bytes;
    }

    fn do_write(&mut self) {
        let before = self.outbuf.len() - self.written;
        if !flush_into(&mut self.stream, &mut self.outbuf, &mut self.written) {
            self.dead = true;
        }
        self.bytes = before - (self.outbuf.len() - self.written);
    }

    fn run(&mut self, phase: Phase) {
        match phase {
            Phase::Read => self.do_read(),
            Phase::Write => self.do_write(),
        }
    }
}

type Batch = Vec<Box<IoConn>>;

fn io_thread(jobs: Receiver<(Phase, Batch)>, back: Sender<Batch>) {
    for (phase, mut batch) in jobs {
        for c in batch.iter_mut() {
            c.run(phase);
        }
        if back.send(batch).is_err() {
            return;
        }
    }
}

struct Main<'a> {
    ctx: &'a ServerCtx<'a>,
    poll: Poll,
    conns: Vec<Option<Box<IoConn>>>,
    exec: Vec<Exec>,
    free: Vec<usize>,
    accepted: usize,
    threads: Vec<Sender<(Phase, Batch)>>,
    back: Receiver<Batch>,
    ops: Ops<'a>,
}

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    let poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
    let (back_tx, back_rx) = unbounded::<Batch>();
    std::thread::scope(|scope| {
        let mut threads = Vec::new();
        for t in 0..ctx.cfg.helpers {
            let (tx, rx) = unbounded();
            let back = back_tx.clone();
            std::thread::Builder::new()
                .name(format!("io-{t}"))
                .spawn_scoped(scope, move || io_thread(rx, back))
                .map_err(|e| format!("spawning I/O thread {t}: {e}"))?;
            threads.push(tx);
        }
        drop(back_tx);
        let ops = Ops::new(&poll, ctx.handler, ctx.stats)?;
        let mut main = Main {
            ctx,
            poll,
            conns: Vec::new(),
            exec: Vec::new(),
            free: Vec::new(),
            accepted: 0,
            threads,
            back: back_rx,
            ops,
        };
        // Returning drops the job senders: the I/O threads end and the scope joins them.
        main.serve()
    })
}

/// Marks `slot` for a phase list once.
fn mark(flag: &mut bool, list: &mut Vec<usize>, slot: usize) {
    if !*flag {
        *flag = true;
        list.push(slot);
    }
}

impl Main<'_> {
    fn serve(&mut self) -> Result<(), String> {
        let listener = register_listener(&self.ctx.listener, self.poll.registry(), LISTENER)?;
        let limits = self.ctx.cfg.limits;
        let sweep_every = guard::sweep_every(&limits);
        let mut next_sweep = Instant::now() + sweep_every;
        let mut events = Events::with_capacity(1024);
        let mut to_read: Vec<usize> = Vec::new();
        let mut to_write: Vec<usize> = Vec::new();
        let mut to_exec: Vec<usize> = Vec::new();
        // Connections whose reading stopped at a cap, to read again next turn.
        let mut deferred: Vec<usize> = Vec::new();
        loop {
            self.ops.arm_timer()?;
            let timeout = if deferred.is_empty() {
                next_sweep.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("epoll_wait: {e}")),
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => {
                        self.accept_all(&listener)?;
                        continue;
                    }
                    TIMER => {
                        self.ops.timer_fired();
                        continue;
                    }
                    _ => {}
                }
                let t = ev.token().0;
                let slot = t / 2;
                if t % 2 == 1 {
                    if self.exec.get_mut(slot).is_some_and(Exec::fd_ready) {
                        to_exec.push(slot);
                    }
                    continue;
                }
                let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                    continue;
                };
                if ev.is_readable() || ev.is_read_closed() {
                    c.more = true;
                    deferred.push(slot);
                }
                if ev.is_writable() && !c.outbuf.is_empty() {
                    mark(&mut c.want_write, &mut to_write, slot);
                }
            }
            for (slot, g) in self.ops.due() {
                if self.exec.get_mut(slot).is_some_and(|ex| ex.wake(g)) {
                    to_exec.push(slot);
                }
            }
            // Connections with bytes waiting (a new edge, or a read that stopped at a cap) and
            // room in their queue are read this turn.
            for slot in deferred.drain(..) {
                if let Some(c) = self.conns[slot].as_mut()
                    && c.more
                    && !c.closing
                    && !c.eof
                    && self.exec[slot].pending.len() < MAX_PENDING
                    && c.outbuf.len() < RBUF_CAP
                {
                    mark(&mut c.want_read, &mut to_read, slot);
                }
            }

            // 1. Read and frame on the I/O threads.
            self.phase(Phase::Read, &to_read);
            let now = Instant::now();
            for &slot in &to_read {
                if let Some(c) = self.conns[slot].as_mut() {
                    c.want_read = false;
                    let ex = &mut self.exec[slot];
                    ex.pending.extend(c.framed.drain(..));
                    if c.bytes > 0 {
                        ex.clock.last_active = now;
                    }
                    ex.clock.framed(!c.inbuf.is_empty(), now);
                    to_exec.push(slot);
                }
            }
            // 2. Execute on this thread, in order per connection.
            for &slot in &to_exec {
                let Some(c) = self.conns[slot].as_mut() else {
                    continue;
                };
                self.ops.execute(c, &mut self.exec[slot]);
                if !c.outbuf.is_empty() {
                    mark(&mut c.want_write, &mut to_write, slot);
                }
            }
            // 3. Write on the I/O threads.
            self.phase(Phase::Write, &to_write);
            let now = Instant::now();
            for &slot in &to_write {
                if let Some(c) = self.conns[slot].as_mut() {
                    c.want_write = false;
                    if c.bytes > 0 {
                        self.exec[slot].clock.last_active = now;
                    }
                }
            }
            // Close what is finished; read again what stopped at a cap.
            for &slot in to_read.iter().chain(&to_write).chain(&to_exec) {
                let Some(c) = self.conns[slot].as_ref() else {
                    continue;
                };
                let ex = &self.exec[slot];
                let idle = ex.pending.is_empty() && !ex.running;
                if c.dead || (c.outbuf.is_empty() && (c.closing || (c.eof && idle))) {
                    self.close(slot);
                } else if c.more && !c.eof && !c.closing {
                    deferred.push(slot);
                }
            }
            to_read.clear();
            to_write.clear();
            to_exec.clear();
            let now = Instant::now();
            if now >= next_sweep {
                self.sweep(now, &limits);
                next_sweep = now + sweep_every;
            }
        }
    }

    /// Closes connections whose header or idle time ran out (none with an op in progress).
    fn sweep(&mut self, now: Instant, limits: &Limits) {
        for slot in 0..self.conns.len() {
            let Some(c) = self.conns[slot].as_ref() else {
                continue;
            };
            let ex = &self.exec[slot];
            if ex.running || !ex.pending.is_empty() {
                continue;
            }
            if let Some(why) = ex.clock.expired(now, limits) {
                if why == Expiry::Header && c.outbuf.is_empty() {
                    guard::answer_and_close(&c.stream, 408, "request not received in time\n");
                }
                self.close(slot);
            }
        }
    }

    /// Deals the connections in `slots` over the I/O threads for `phase` and waits until all
    /// are back (with no I/O thread, does the phase here).
    fn phase(&mut self, phase: Phase, slots: &[usize]) {
        if slots.is_empty() {
            return;
        }
        if self.threads.is_empty() {
            for &s in slots {
                if let Some(c) = self.conns[s].as_mut() {
                    c.run(phase);
                }
            }
            return;
        }
        let n = self.threads.len();
        let mut batches: Vec<Batch> = (0..n).map(|_| Vec::new()).collect();
        for (i, &s) in slots.iter().enumerate() {
            if let Some(c) = self.conns[s].take() {
                batches[i % n].push(c);
            }
        }
        let mut sent = 0;
        for (t, batch) in batches.into_iter().enumerate() {
            if batch.is_empty() {
                continue;
            }
            match self.threads[t].send((phase, batch)) {
                Ok(()) => sent += 1,
                // The thread is gone (it cannot be: it only ends when we drop the sender);
                // do the work here rather than lose the connections.
                Err(e) => {
                    let (_, mut batch) = e.into_inner();
                    for mut c in batch.drain(..) {
                        c.run(phase);
                        let s = c.slot;
                        self.conns[s] = Some(c);
                    }
                }
            }
        }
        // The barrier: every batch sent comes back before execution goes on.
        for _ in 0..sent {
            let batch = self.back.recv().expect("I/O threads outlive the main loop");
            for c in batch {
                let s = c.slot;
                self.conns[s] = Some(c);
            }
        }
    }

    fn accept_all(&mut self, listener: &TcpListener) -> Result<(), String> {
        loop {
            let mut stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if super::thread_per_conn::is_fd_exhaustion(&e) => {
                    crate::sys::limits::warn_throttled("accept", &e);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    return Ok(());
                }
                Err(e) if super::thread_per_conn::is_transient(&e) => continue,
                Err(e) => return Err(format!("accept: {e}")),
            };
            if self.conns.len() - self.free.len() >= self.ctx.cfg.limits.max_conns {
                guard::answer_and_close(&stream, 503, "too many connections\n");
                continue;
            }
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.exec.push(Exec::new(0, Instant::now()));
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(slot * 2),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.ctx.stats.connection(0);
            self.exec[slot] = Exec::new(self.accepted, Instant::now());
            self.accepted += 1;
            self.conns[slot] = Some(Box::new(IoConn {
                slot,
                stream,
                inbuf: Vec::new(),
                outbuf: Vec::new(),
                written: 0,
                framed: Vec::new(),
                want_read: false,
                want_write: false,
                eof: false,
                dead: false,
                refused: false,
                closing: false,
                more: false,
                bytes: 0,
                limits: self.ctx.cfg.limits,
            }));
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut c) = self.conns[slot].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.ops.forget(&mut self.exec[slot]);
        crate::server::shut_and_drain(&c.stream);
        drop(c);
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::server::blocking_conn::testkit::*;

    crate::server::blocking_conn::shared_arch_tests!("io-threads", 2);

    #[test]
    fn works_with_one_io_thread() {
        let s = start("io-threads", "none", 1);
        basic_behaviour(s.addr);
        concurrent(s.addr, 20, 5);
        stop(s);
    }
    /// N connections each send one request whose op sleeps: the main thread must park each
    /// sleep in its timer heap and take the next, so all N ops are in flight at once (the
    /// server's own count, not a timing). A blocking sleep would keep it at 1.
    #[test]
    fn sleeping_ops_do_not_serialize_the_main_thread() {
        for (handler, n) in [("sleep:delay=300ms", 8usize), ("downstream:delay=300ms", 6)] {
            let s = start("io-threads", handler, 2);
            let mut socks: Vec<_> = (0..n).map(|_| connect(s.addr)).collect();
            for c in socks.iter_mut() {
                c.write_all(GET).unwrap();
            }
            for c in socks.iter_mut() {
                let mut buf = Vec::new();
                assert_eq!(read_responses(c, &mut buf, 1)[0].status, 200);
            }
            assert_eq!(s.stats.requests().iter().sum::<u64>(), n as u64);
            assert_eq!(s.stats.max_in_flight(), n as u64, "{handler}");
            stop(s);
        }
    }
}
