//! `downstream`: request/response over a loopback TCP socket to a server the harness starts.
//!
//! `prepare` binds a listener on `127.0.0.1:0` (backlog `SOMAXCONN`) in the cell host, then
//! forks the downstream server with [`fork_child`]: a separate, single-threaded process (not a
//! thread: workers are forked later, and the cell host must stay single-threaded at fork time).
//! The address is known before the fork, so nothing has to be reported back; the parent closes
//! its copy of the listener. The server runs a mio (epoll) loop: it accepts any number of
//! connections, counts request bytes per connection (keep-alive, partial reads and pipelined
//! requests all work), and for every complete request of `request` bytes queues a reply of
//! `response` bytes due `delay` later. Due replies sit in a timer heap ([`BinaryHeap`] of
//! deadlines) woken by a `timerfd` (nanosecond precision, not epoll's milliseconds), so
//! thousands of connections wait concurrently in one process; partial writes resume when the
//! socket is writable again.
//!
//! The server dies when the process that forked it dies (`PR_SET_PDEATHSIG`; note that Linux
//! delivers it when the forking *thread* exits, so `prepare` must run on a thread that lives for
//! the whole cell) and when the workload is dropped (its [`Child`] is killed with SIGKILL and
//! reaped). A forked worker that drops an inherited copy of the workload does not kill it: only
//! the process that started the server does.
//!
//! Each task owns one connection, opened in [`Workload::task`] (a blocking `connect`, outside
//! the op) with `TCP_NODELAY` on both ends. In [`Mode::Blocking`] the socket blocks and `step`
//! writes the request and blocks until the whole response has arrived. In
//! [`Mode::NonBlocking`] the socket is non-blocking and `step` is a state machine that returns
//! `Wait { fd, Write }` when the request cannot be written in full and `Wait { fd, Read }` until
//! the whole response has been read. Either way a finished op leaves the connection idle and
//! ready for the next request.
//!
//! # Timing model
//! One op = writing `request` bytes (one or more `write`s) + the server reading them, waiting
//! `delay` on its timer heap and writing `response` bytes + reading those bytes (one or more
//! `read`s). It includes both directions of the loopback TCP stack, the server's scheduling
//! (on a small machine the server process competes with the workers for CPU) and, in
//! non-blocking mode, the driver's time to notice readiness. With `delay` = 0 the op is a pure
//! loopback round trip.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hint::black_box;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener as MioListener;
use mio::unix::SourceFd;
use mio::{Events, Poll, Token};

use super::param::format_size;
use super::{
    Interest, Kind, Mode, ParamDef, Params, PrepareEnv, Step, Task, TaskCtx, Unit, Workload,
    WorkloadDef, WorkloadError,
};
use crate::sys::{Child, fork_child};

/// Largest request or response.
const MAX_MSG: u64 = 1 << 20;
/// Longest server delay.
const MAX_DELAY: Duration = Duration::from_secs(10);
/// Largest buffer used for one read or write.
const IO_CHUNK: usize = 64 * 1024;

/// `downstream`: one request/response exchange with a loopback TCP server.
pub static DOWNSTREAM: WorkloadDef = WorkloadDef {
    id: "downstream",
    kind: Kind::Io,
    op: "send `request` bytes over a kept-alive loopback TCP connection and read the `response` bytes the server sends `delay` later",
    params: &[
        ParamDef {
            name: "request",
            unit: Unit::Size,
            default: "64B",
            help: "bytes the client sends per op (1B..1MiB)",
        },
        ParamDef {
            name: "response",
            unit: Unit::Size,
            default: "64B",
            help: "bytes the server answers per request (1B..1MiB)",
        },
        ParamDef {
            name: "delay",
            unit: Unit::Duration,
            default: "1ms",
            help: "server-side wait between a complete request and its response (0ns..10s; 0 = at once)",
        },
    ],
    build: build_downstream,
};

/// Checks that size parameter `name` is a valid message size (1B..1MiB).
pub(crate) fn check_msg_size(p: &Params, name: &'static str) -> Result<usize, WorkloadError> {
    let v = p.size(name);
    if v == 0 || v > MAX_MSG {
        return Err(WorkloadError::Param {
            name,
            reason: format!(
                "{} is outside 1B..{} (accepted range, inclusive)",
                format_size(v),
                format_size(MAX_MSG)
            ),
        });
    }
    Ok(v as usize)
}

/// Checks that duration parameter `name` is a valid server delay (0ns..10s).
pub(crate) fn check_delay(p: &Params, name: &'static str) -> Result<Duration, WorkloadError> {
    let d = p.duration(name);
    if d > MAX_DELAY {
        return Err(WorkloadError::Param {
            name,
            reason: format!("{d:?} is outside 0ns..10s (accepted range, inclusive)"),
        });
    }
    Ok(d)
}

fn build_downstream(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let cfg = ServerConfig {
        request: check_msg_size(p, "request")?,
        response: check_msg_size(p, "response")?,
        delay: check_delay(p, "delay")?,
    };
    Ok(Box::new(Downstream::new(cfg)))
}

// ---------------------------------------------------------------------------------------------
// server

/// What the downstream server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    /// Bytes that make one complete request.
    pub request: usize,
    /// Bytes of one response.
    pub response: usize,
    /// Wait between a complete request and its response.
    pub delay: Duration,
}

/// A running downstream server process. Dropping it (in the process that started it) kills
/// and reaps the server.
#[derive(Debug)]
pub(crate) struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    /// Pid of the process that forked the server: only it may kill the server.
    owner: u32,
}

impl Server {
    /// Binds `127.0.0.1:0` and forks the server process. Call only while the process is
    /// single-threaded (the cell host), from a thread that outlives the server.
    pub(crate) fn start(cfg: ServerConfig) -> Result<Server, WorkloadError> {
        let listener = bind_loopback().map_err(|e| WorkloadError::io("downstream: bind", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| WorkloadError::io("downstream: local_addr", e))?;
        // The closure owns the listener: the child serves it, the parent drops it (closing its
        // copy) when fork_child returns.
        let child = fork_child(move || match serve(listener, cfg) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("downstream server: {e}");
                1
            }
        })
        .map_err(|e| WorkloadError::io("downstream: fork server", e))?;
        Ok(Server {
            child: Some(child),
            addr,
            owner: std::process::id(),
        })
    }

    /// Where the server listens.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, Child::pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            if std::process::id() == self.owner {
                drop(child); // SIGKILL + waitpid
            } else {
                // A forked worker's inherited copy: the server is not our child; leave it.
                std::mem::forget(child);
            }
        }
    }
}

/// A listening TCP socket on 127.0.0.1 with an ephemeral port and the largest backlog
/// (`SOMAXCONN`), so a burst of thousands of connects is not dropped (std and mio use 128).
fn bind_loopback() -> io::Result<std::net::TcpListener> {
    use nix::sys::socket::{Backlog, listen};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    // Linux lets `listen` on a listening socket change its backlog.
    listen(&listener, Backlog::MAXCONN)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// One accepted connection, server side.
struct ServerConn {
    stream: mio::net::TcpStream,
    /// Bytes received toward the next complete request.
    partial: usize,
    /// Responses whose delay has passed, not yet started.
    ready: u64,
    /// Bytes of the response being written still to go.
    out_left: usize,
    /// Distinguishes this connection from earlier ones in the same slot (for stale timers).
    generation: u64,
}

const LISTENER: Token = Token(0);
const TIMER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// The server's event loop. Only returns on an error of the loop itself; connection errors
/// close that connection.
fn serve(listener: std::net::TcpListener, cfg: ServerConfig) -> io::Result<()> {
    raise_nofile_limit();
    let mut poll = Poll::new()?;
    let mut listener = MioListener::from_std(listener);
    poll.registry()
        .register(&mut listener, LISTENER, mio::Interest::READABLE)?;
    let timer = nix::sys::timerfd::TimerFd::new(
        nix::sys::timerfd::ClockId::CLOCK_MONOTONIC,
        nix::sys::timerfd::TimerFlags::TFD_NONBLOCK | nix::sys::timerfd::TimerFlags::TFD_CLOEXEC,
    )?;
    let timer_fd = timer.as_fd().as_raw_fd();
    poll.registry()
        .register(&mut SourceFd(&timer_fd), TIMER, mio::Interest::READABLE)?;

    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<Option<ServerConn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut generation = 0u64;
    // (deadline, slot, generation), earliest first.
    let mut timers: BinaryHeap<Reverse<(Instant, usize, u64)>> = BinaryHeap::new();
    let mut armed: Option<Instant> = None;
    let mut scratch = vec![0u8; IO_CHUNK];
    let reply = vec![b'r'; cfg.response.min(IO_CHUNK)];

    loop {
        // The timerfd wakes us precisely; the poll timeout is only a safety net.
        let timeout = timers.peek().map(|Reverse((t, _, _))| {
            t.saturating_duration_since(Instant::now()) + Duration::from_millis(1)
        });
        match poll.poll(&mut events, timeout) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => r?,
        }
        for ev in events.iter() {
            match ev.token() {
                LISTENER => loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let slot = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            generation += 1;
                            if poll
                                .registry()
                                .register(
                                    &mut stream,
                                    Token(slot + FIRST_CONN),
                                    mio::Interest::READABLE | mio::Interest::WRITABLE,
                                )
                                .is_err()
                            {
                                free.push(slot);
                                continue;
                            }
                            conns[slot] = Some(ServerConn {
                                stream,
                                partial: 0,
                                ready: 0,
                                out_left: 0,
                                generation,
                            });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        // EMFILE, ECONNABORTED...: drop this attempt, keep serving.
                        Err(_) => break,
                    }
                },
                TIMER => {
                    let _ = timer.wait(); // clear the expiration count (non-blocking)
                    armed = None;
                }
                Token(t) => {
                    let slot = t - FIRST_CONN;
                    let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    let alive = read_requests(c, &cfg, &mut scratch, &mut timers, slot)
                        && flush(c, cfg.response, &reply);
                    if !alive {
                        close(&poll, &mut conns, &mut free, slot);
                    }
                }
            }
        }
        // Replies that are due.
        let now = Instant::now();
        while let Some(&Reverse((t, slot, g))) = timers.peek() {
            if t > now {
                break;
            }
            timers.pop();
            let Some(c) = conns.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if c.generation != g {
                continue; // the connection this timer belonged to has closed
            }
            c.ready += 1;
            if !flush(c, cfg.response, &reply) {
                close(&poll, &mut conns, &mut free, slot);
            }
        }
        // Arm the timerfd for the earliest pending deadline.
        if let Some(&Reverse((t, _, _))) = timers.peek()
            && armed.is_none_or(|a| t < a)
        {
            let wait = t
                .saturating_duration_since(Instant::now())
                .max(Duration::from_nanos(1)); // zero would disarm it
            timer.set(
                nix::sys::timerfd::Expiration::OneShot(wait.into()),
                nix::sys::timerfd::TimerSetTimeFlags::empty(),
            )?;
            armed = Some(t);
        }
    }
}

/// Reads everything available; queues a reply (or a timer) per complete request. False when
/// the connection ended or failed.
fn read_requests(
    c: &mut ServerConn,
    cfg: &ServerConfig,
    scratch: &mut [u8],
    timers: &mut BinaryHeap<Reverse<(Instant, usize, u64)>>,
    slot: usize,
) -> bool {
    loop {
        match c.stream.read(scratch) {
            Ok(0) => return false,
            Ok(n) => {
                c.partial += n;
                let complete = (c.partial / cfg.request) as u64;
                c.partial %= cfg.request;
                if complete > 0 {
                    if cfg.delay.is_zero() {
                        c.ready += complete;
                    } else {
                        let due = Instant::now() + cfg.delay;
                        for _ in 0..complete {
                            timers.push(Reverse((due, slot, c.generation)));
                        }
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Writes due replies until done or the socket is full. False when the connection failed.
fn flush(c: &mut ServerConn, response: usize, reply: &[u8]) -> bool {
    loop {
        if c.out_left == 0 {
            if c.ready == 0 {
                return true;
            }
            c.ready -= 1;
            c.out_left = response;
        }
        let n = c.out_left.min(reply.len());
        match c.stream.write(&reply[..n]) {
            Ok(0) => return false,
            Ok(k) => c.out_left -= k,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

fn close(poll: &Poll, conns: &mut [Option<ServerConn>], free: &mut Vec<usize>, slot: usize) {
    if let Some(mut c) = conns[slot].take() {
        let _ = poll.registry().deregister(&mut c.stream);
        free.push(slot);
    }
}

/// Raises the open-file soft limit to the hard limit so the server can hold as many
/// connections as the system allows.
fn raise_nofile_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

// ---------------------------------------------------------------------------------------------
// client

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// Writing the request; this many bytes already sent.
    Writing(usize),
    /// Reading the response; this many bytes already received.
    Reading(usize),
}

/// One client connection to the downstream server; [`Conn::step`] runs one request/response
/// exchange as a state machine.
pub(crate) struct Conn {
    stream: TcpStream,
    request: Arc<[u8]>,
    response: usize,
    buf: Box<[u8]>,
    state: ConnState,
}

impl Conn {
    /// Connects to `addr` (a blocking connect: loopback completes at once while the backlog has
    /// room), sets `TCP_NODELAY`, and makes the socket non-blocking in [`Mode::NonBlocking`].
    pub(crate) fn connect(
        addr: SocketAddr,
        mode: Mode,
        request: Arc<[u8]>,
        response: usize,
    ) -> Result<Conn, WorkloadError> {
        let ctx = |what: &str| format!("downstream: {what} {addr}");
        let stream = TcpStream::connect(addr).map_err(|e| {
            WorkloadError::io(ctx("connect to the downstream server (did it exit?) at"), e)
        })?;
        stream
            .set_nodelay(true)
            .map_err(|e| WorkloadError::io(ctx("TCP_NODELAY on"), e))?;
        if mode == Mode::NonBlocking {
            stream
                .set_nonblocking(true)
                .map_err(|e| WorkloadError::io(ctx("O_NONBLOCK on"), e))?;
        }
        Ok(Conn {
            stream,
            request,
            response,
            buf: vec![0u8; response.min(IO_CHUNK)].into_boxed_slice(),
            state: ConnState::Writing(0),
        })
    }

    /// The socket's fd (what `Wait` names).
    pub(crate) fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Advances the exchange: `Done` once the whole response has arrived (the connection is
    /// then ready for the next request), `Wait` when the non-blocking socket would block.
    pub(crate) fn step(&mut self) -> Result<Step, WorkloadError> {
        loop {
            match self.state {
                ConnState::Writing(sent) => match self.stream.write(&self.request[sent..]) {
                    Ok(0) => return Err(closed("writing the request")),
                    Ok(n) if sent + n == self.request.len() => {
                        self.state = ConnState::Reading(0);
                    }
                    Ok(n) => self.state = ConnState::Writing(sent + n),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        return Ok(self.wait(Interest::Write));
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(WorkloadError::io("downstream: write request", e)),
                },
                ConnState::Reading(got) => {
                    let want = (self.response - got).min(self.buf.len());
                    match self.stream.read(&mut self.buf[..want]) {
                        Ok(0) => return Err(closed("reading the response")),
                        Ok(n) if got + n == self.response => {
                            black_box(&self.buf);
                            self.state = ConnState::Writing(0);
                            return Ok(Step::Done);
                        }
                        Ok(n) => self.state = ConnState::Reading(got + n),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            return Ok(self.wait(Interest::Read));
                        }
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(WorkloadError::io("downstream: read response", e)),
                    }
                }
            }
        }
    }

    fn wait(&self, interest: Interest) -> Step {
        Step::Wait {
            fd: self.fd(),
            interest,
        }
    }
}

fn closed(what: &str) -> WorkloadError {
    WorkloadError::Other(format!(
        "downstream: the server closed the connection while {what} (did it exit?)"
    ))
}

// ---------------------------------------------------------------------------------------------
// workload

struct Downstream {
    cfg: ServerConfig,
    /// The request bytes, shared by all tasks.
    request: Arc<[u8]>,
    server: Option<Server>,
}

impl Downstream {
    fn new(cfg: ServerConfig) -> Downstream {
        Downstream {
            request: vec![b'q'; cfg.request].into(),
            cfg,
            server: None,
        }
    }
}

impl Workload for Downstream {
    fn prepare(&mut self, _env: &PrepareEnv) -> Result<(), WorkloadError> {
        self.server = None; // a second prepare replaces the server
        self.server = Some(Server::start(self.cfg)?);
        Ok(())
    }

    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let server = self.server.as_ref().ok_or_else(|| {
            WorkloadError::Other(
                "downstream: task() called before prepare() started the server".into(),
            )
        })?;
        let conn = Conn::connect(
            server.addr(),
            ctx.mode,
            self.request.clone(),
            self.cfg.response,
        )?;
        Ok(Box::new(DownstreamTask { conn }))
    }

    fn helper_pids(&self) -> Vec<i32> {
        self.server.iter().map(|s| s.pid()).collect()
    }

    fn resolved(&self) -> Vec<(String, String)> {
        match &self.server {
            Some(s) => vec![("server".into(), s.addr().to_string())],
            None => Vec::new(),
        }
    }
}

impl Drop for Downstream {
    fn drop(&mut self) {
        // Kills and reaps the server process (see `Server`'s Drop).
        self.server.take();
    }
}

struct DownstreamTask {
    conn: Conn,
}

impl Task for DownstreamTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        self.conn.step()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Value, run_ops, wait_fd};
    use nix::errno::Errno;
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;

    fn env() -> PrepareEnv {
        PrepareEnv::new(std::env::temp_dir(), 1)
    }

    fn ctx(task: usize, mode: Mode) -> TaskCtx {
        TaskCtx {
            task,
            mode,
            seed: task as u64,
        }
    }

    fn started(request: usize, response: usize, delay: Duration) -> Downstream {
        let mut w = Downstream::new(ServerConfig {
            request,
            response,
            delay,
        });
        w.prepare(&env()).unwrap();
        w
    }

    #[test]
    fn blocking_mode_round_trips() {
        let w = started(64, 64, Duration::from_millis(1));
        let mut t = w.task(&ctx(0, Mode::Blocking)).unwrap();
        // A blocking task never asks to wait: every step is one whole exchange.
        for _ in 0..20 {
            assert_eq!(t.step().unwrap(), Step::Done);
        }
        assert!(w.resolved()[0].1.starts_with("127.0.0.1:"));
    }

    #[test]
    fn blocking_mode_large_messages_no_delay() {
        let w = started(1 << 20, 1 << 20, Duration::ZERO);
        let mut t = w.task(&ctx(0, Mode::Blocking)).unwrap();
        for _ in 0..3 {
            assert_eq!(t.step().unwrap(), Step::Done);
        }
    }

    #[test]
    fn non_blocking_mode_waits_then_completes() {
        let w = started(64, 64, Duration::from_millis(5));
        let mut t = w.task(&ctx(0, Mode::NonBlocking)).unwrap();
        // The response comes 5 ms later, so the first step has to wait for it.
        match t.step().unwrap() {
            Step::Wait { fd, interest } => {
                assert_eq!(interest, Interest::Read);
                assert!(wait_fd(fd, interest, Some(Duration::from_secs(5))).unwrap());
            }
            other => panic!("expected Wait, got {other:?}"),
        }
        // Drive it through poll to the end of this op and a few more.
        let mut done = 0;
        while done == 0 {
            match t.step().unwrap() {
                Step::Done => done += 1,
                Step::Wait { fd, interest } => {
                    wait_fd(fd, interest, None).unwrap();
                }
                Step::Sleep { .. } => panic!("downstream never sleeps"),
            }
        }
        run_ops(t.as_mut(), 5).unwrap();
    }

    #[test]
    fn non_blocking_mode_large_messages_partial_io() {
        let w = started(1 << 20, 1 << 20, Duration::ZERO);
        let mut t = w.task(&ctx(0, Mode::NonBlocking)).unwrap();
        run_ops(t.as_mut(), 3).unwrap();
    }

    #[test]
    fn server_handles_split_and_pipelined_requests() {
        let w = started(10, 7, Duration::ZERO);
        let mut s = TcpStream::connect(w.server.as_ref().unwrap().addr()).unwrap();
        s.set_nodelay(true).unwrap();
        // Three requests in one write, then one written a byte at a time.
        s.write_all(&[b'q'; 30]).unwrap();
        for _ in 0..10 {
            s.write_all(b"q").unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        let mut got = vec![0u8; 28];
        s.read_exact(&mut got).unwrap();
        assert!(got.iter().all(|&b| b == b'r'));
        // Nothing more: 4 requests, 4 responses (a partial 5th request gets no reply).
        s.write_all(&[b'q'; 5]).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut one = [0u8; 1];
        let e = s.read(&mut one).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "{e}"
        );
    }

    #[test]
    fn two_hundred_concurrent_non_blocking_connections() {
        const N: usize = 200;
        const OPS: u64 = 3;
        let w = started(64, 64, Duration::from_millis(5));
        let mut tasks: Vec<Box<dyn Task>> = (0..N)
            .map(|i| w.task(&ctx(i, Mode::NonBlocking)).unwrap())
            .collect();
        let mut done = [0u64; N];
        let mut registered = [false; N];
        let mut finished = 0;
        let mut poll = Poll::new().unwrap();
        let mut events = Events::with_capacity(256);
        // Steps task `i` until it waits or has done all its ops; registers its fd once
        // (edge-triggered, both directions: a task only waits after draining to WouldBlock).
        let mut drive = |i: usize,
                         tasks: &mut Vec<Box<dyn Task>>,
                         done: &mut [u64; N],
                         poll: &mut Poll|
         -> bool {
            loop {
                match tasks[i].step().unwrap() {
                    Step::Done => {
                        done[i] += 1;
                        if done[i] == OPS {
                            return true;
                        }
                    }
                    Step::Wait { fd, .. } => {
                        if !registered[i] {
                            poll.registry()
                                .register(
                                    &mut SourceFd(&fd),
                                    Token(i),
                                    mio::Interest::READABLE | mio::Interest::WRITABLE,
                                )
                                .unwrap();
                            registered[i] = true;
                        }
                        return false;
                    }
                    Step::Sleep { .. } => panic!("downstream never sleeps"),
                }
            }
        };
        for i in 0..N {
            if drive(i, &mut tasks, &mut done, &mut poll) {
                finished += 1;
            }
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while finished < N {
            assert!(
                Instant::now() < deadline,
                "only {finished}/{N} tasks finished"
            );
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            for ev in events.iter() {
                let i = ev.token().0;
                if done[i] < OPS && drive(i, &mut tasks, &mut done, &mut poll) {
                    finished += 1;
                }
            }
        }
        assert!(done.iter().all(|&d| d == OPS));
    }

    #[test]
    fn dropping_the_workload_kills_and_reaps_the_server() {
        let w = started(64, 64, Duration::from_millis(1));
        let pid = w.server.as_ref().unwrap().pid();
        assert!(pid > 0);
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        // As a trait object, the way the harness holds it.
        let boxed: Box<dyn Workload> = Box::new(w);
        drop(boxed);
        assert_eq!(
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
    }

    #[test]
    fn params_are_validated() {
        let p = |req: u64, resp: u64, delay: Duration| {
            Params::from_values([
                ("request", Value::Size(req)),
                ("response", Value::Size(resp)),
                ("delay", Value::Duration(delay)),
            ])
        };
        let ms = Duration::from_millis(1);
        let e = build_downstream(&p(0, 64, ms)).err().unwrap().to_string();
        assert!(e.contains("`request`") && e.contains("1B..1MiB"), "{e}");
        let e = build_downstream(&p(64, (1 << 20) + 1, ms))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`response`"), "{e}");
        let e = build_downstream(&p(64, 64, Duration::from_secs(11)))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`delay`") && e.contains("0ns..10s"), "{e}");
        assert!(build_downstream(&p(64, 64, Duration::ZERO)).is_ok());
        let w = build_downstream(&p(64, 64, ms)).unwrap();
        assert!(
            w.task(&ctx(0, Mode::Blocking)).is_err(),
            "no server before prepare"
        );
    }
}
