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
//! Handler ops run to completion on the main thread with blocking calls (tasks built in
//! [`Mode::Blocking`]): `sleep` sleeps and `downstream` polls its one socket on the main thread,
//! stalling every connection meanwhile, as a blocking command stalls Redis. Integrating their
//! waits in the loop is left undone: it would blur the model (Redis has no such waits).

use std::io::ErrorKind;

use crossbeam::channel::{Receiver, Sender, unbounded};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::loop_helpers::{flush_into, read_and_frame_into};
use crate::server::blocking_conn::{OK_BODY, run_op_blocking};
use crate::server::http::{Limits, Parse, Refusal, write_response};
use crate::server::{ArchDef, ServerCtx};
use crate::workload::{Mode, Task};

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
        let (eof, dead) =
            read_and_frame_into(&mut self.stream, &mut self.inbuf, &self.limits, |p| {
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
        self.eof |= eof;
        self.dead |= dead;
    }

    fn do_write(&mut self) {
        if !flush_into(&mut self.stream, &mut self.outbuf, &mut self.written) {
            self.dead = true;
        }
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

/// The main thread's side of a connection: its handler task (never leaves the main thread).
#[derive(Default)]
struct Exec {
    task: Option<Box<dyn Task>>,
    built: bool,
    number: usize,
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
        let mut main = Main {
            ctx,
            poll,
            conns: Vec::new(),
            exec: Vec::new(),
            free: Vec::new(),
            accepted: 0,
            threads,
            back: back_rx,
        };
        // Returning drops the job senders: the I/O threads end and the scope joins them.
        main.serve()
    })
}

impl Main<'_> {
    fn serve(&mut self) -> Result<(), String> {
        let std_listener = self
            .ctx
            .listener
            .try_clone()
            .map_err(|e| format!("dup(listener): {e}"))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let mut listener = TcpListener::from_std(std_listener);
        self.poll
            .registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("epoll_ctl(listener): {e}"))?;
        let mut events = Events::with_capacity(1024);
        let mut to_read: Vec<usize> = Vec::new();
        let mut to_write: Vec<usize> = Vec::new();
        loop {
            match self.poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("epoll_wait: {e}")),
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    self.accept_all(&listener)?;
                    continue;
                }
                let slot = ev.token().0;
                let Some(c) = self.conns.get_mut(slot).and_then(|c| c.as_mut()) else {
                    continue;
                };
                if (ev.is_readable() || ev.is_read_closed()) && !c.want_read && !c.closing && !c.eof
                {
                    c.want_read = true;
                    to_read.push(slot);
                }
                if ev.is_writable() && !c.outbuf.is_empty() && !c.want_write {
                    c.want_write = true;
                    to_write.push(slot);
                }
            }

            // 1. Read and frame on the I/O threads.
            self.phase(Phase::Read, &to_read);
            // 2. Execute on this thread, in order per connection.
            for &slot in &to_read {
                self.execute(slot);
                if let Some(c) = self.conns[slot].as_mut() {
                    c.want_read = false;
                    if !c.outbuf.is_empty() && !c.want_write {
                        c.want_write = true;
                        to_write.push(slot);
                    }
                }
            }
            // 3. Write on the I/O threads.
            self.phase(Phase::Write, &to_write);
            for &slot in &to_write {
                if let Some(c) = self.conns[slot].as_mut() {
                    c.want_write = false;
                }
            }
            // Close what is finished.
            for &slot in to_read.iter().chain(to_write.iter()) {
                let finished = match self.conns[slot].as_ref() {
                    Some(c) => c.dead || (c.outbuf.is_empty() && (c.closing || c.eof)),
                    None => false,
                };
                if finished {
                    self.close(slot);
                }
            }
            to_read.clear();
            to_write.clear();
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

    /// Runs the handler op of every request framed on `slot`, appending the responses.
    fn execute(&mut self, slot: usize) {
        let Some(c) = self.conns[slot].as_mut() else {
            return;
        };
        let ex = &mut self.exec[slot];
        let handler = self.ctx.handler;
        let stats = self.ctx.stats;
        for f in c.framed.drain(..) {
            if c.closing || c.dead {
                break;
            }
            match f {
                Framed::Refused(r) => {
                    write_response(&mut c.outbuf, r.status, r.reason.as_bytes(), false);
                    c.closing = true;
                }
                Framed::Request { keep_alive } => {
                    if !ex.built {
                        ex.built = true;
                        match handler.task(ex.number, Mode::Blocking) {
                            Ok(t) => ex.task = t,
                            Err(e) => {
                                write_response(&mut c.outbuf, 500, e.as_bytes(), false);
                                c.closing = true;
                                continue;
                            }
                        }
                    }
                    if let Some(t) = ex.task.as_mut()
                        && let Err(e) = run_op_blocking(t.as_mut())
                    {
                        write_response(&mut c.outbuf, 500, e.as_bytes(), false);
                        c.closing = true;
                        continue;
                    }
                    write_response(&mut c.outbuf, 200, OK_BODY, keep_alive);
                    stats.request(0);
                    if !keep_alive {
                        c.closing = true;
                    }
                }
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
            let _ = stream.set_nodelay(true);
            let slot = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.exec.push(Exec::default());
                self.conns.len() - 1
            });
            if self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                self.free.push(slot);
                continue;
            }
            self.ctx.stats.connection(0);
            self.exec[slot] = Exec {
                task: None,
                built: false,
                number: self.accepted,
            };
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
                limits: self.ctx.cfg.limits,
            }));
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut c) = self.conns[slot].take() else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        crate::server::shut_and_drain(&c.stream);
        drop(c);
        self.exec[slot] = Exec::default();
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use crate::server::blocking_conn::testkit::*;

    crate::server::blocking_conn::shared_arch_tests!("io-threads", 2);

    #[test]
    fn works_with_one_io_thread() {
        let s = start("io-threads", "none", 1);
        basic_behaviour(s.addr);
        concurrent(s.addr, 20, 5);
        stop(s);
    }
}
