//! One generator thread: a mio (epoll, edge-triggered) loop over its share of the keep-alive
//! connections, with a timer heap for open-loop due times and reconnect back-off, woken
//! precisely by a `timerfd` (epoll's own timeout has millisecond resolution), the same pattern
//! as `model::event_loop`.
//!
//! The hot path does not allocate: the request bytes are built once and shared, each
//! connection owns a read buffer sized at setup (it grows only for an oversized response
//! head), responses are framed in place, and the timer heap is reserved for one entry per
//! connection. A request is one `write` (TCP_NODELAY is on); a readable connection is read
//! until `WouldBlock` or until a read comes back short of the space offered (the kernel had no
//! more bytes then; under edge triggering the next byte to arrive raises a fresh event, so the
//! extra `read` that would only return `WouldBlock` is skipped).
//!
//! # Timing model
//! Clock reads: `sent` right before the request's `write`; `done` right after the `read` that
//! returned the response's last byte (one read per batch of bytes, shared by the responses it
//! completes). The *intended* time is the send time in the closed loop and the request's due
//! time in the open loop.
//! - uncorrected latency = `done − sent`: the write, the network stack both ways, the server,
//!   and the wait until this loop got around to reading the connection;
//! - corrected latency = `done − intended`: the same plus, in the open loop, the time the
//!   request waited for its connection (the previous response had not arrived, or the
//!   connection was being re-established) or for this loop to run at all.
//!
//! A request is in the latency histograms when its intended time falls in the window
//! (requests due in the window that get their response during the drain are included); a
//! response counts in the window's throughput when it completes in the window. Connecting
//! happens before the run's start; warmup and drain are outside every figure except the
//! run totals.

use crate::loop_timer::LoopTimer;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::frame::{FrameError, Framer, Step};
use super::{ErrorCounts, ErrorKind as Kind};
use crate::sys::{Rusage, thread_rusage};

const TIMER: Token = Token(usize::MAX);
/// Read buffer per connection at setup; grows (doubling) only for a response head this big.
const BUF_START: usize = 4 * 1024;
/// Largest a connection's buffer may grow to hold one response head.
const BUF_MAX: usize = 64 * 1024;
/// Wait before reconnecting after a failed connect.
const BACKOFF: Duration = Duration::from_millis(10);
/// How often in-flight requests and connects are checked against the timeout.
const SCAN_EVERY: Duration = Duration::from_millis(10);
/// Longest epoll wait (so timeouts are scanned even when nothing happens).
const SLICE: Duration = Duration::from_millis(10);
/// An open-loop request sent later than this after its due time counts as late.
pub const LATE: Duration = Duration::from_millis(1);

/// What one thread is asked to do.
pub struct Plan {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The request bytes, shared by every connection.
    pub request: Arc<[u8]>,
    /// Open loop: the interval between one connection's due times. None: closed loop.
    pub interval: Option<Duration>,
    /// Open loop: spacing of due times across all connections (1 / rate).
    pub stagger: Duration,
    /// Global index of this thread's first connection (staggers the open-loop schedules).
    pub first_conn: usize,
    /// Connections on this thread.
    pub conns: usize,
    /// Per-request and per-connect timeout.
    pub timeout: Duration,
}

/// The run's clock: shared by every thread.
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// Load starts (every connection is already open).
    pub start: Instant,
    /// Window begins (end of warmup).
    pub window_start: Instant,
    /// Window ends; no request is sent from here on.
    pub window_end: Instant,
    /// Give up on responses still outstanding at this time.
    pub drain_until: Instant,
}

/// What one thread measured.
pub struct Output {
    /// Corrected latencies (from intended time), ns.
    pub corrected: Histogram<u64>,
    /// Uncorrected latencies (from actual send), ns.
    pub uncorrected: Histogram<u64>,
    /// Per second of the window: (completed, errors).
    pub per_second: Vec<(u64, u64)>,
    /// Responses completed in the window.
    pub completed: u64,
    /// Errors in the window.
    pub errors: ErrorCounts,
    /// Requests sent over the whole run.
    pub total_sent: u64,
    /// Responses received over the whole run.
    pub total_responses: u64,
    /// Errors over the whole run.
    pub total_errors: ErrorCounts,
    /// Requests still without response when the drain ended.
    pub abandoned: u64,
    /// Open loop: requests due in the window.
    pub due: u64,
    /// Open loop: of those, sent.
    pub sent_due: u64,
    /// Open loop: sent late because the connection was busy (or reconnecting).
    pub late_waiting: u64,
    /// Open loop: sent late although the connection was free (this loop was late).
    pub late_loop: u64,
    /// This thread's CPU over its view of the window: (span ns, rusage difference).
    pub cpu: (u64, Rusage),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum St {
    /// Non-blocking connect in progress.
    Connecting,
    /// Connected.
    Open,
    /// Waiting to reconnect.
    Backoff,
    /// Retired (failed after the window ended).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Sent from its timer: the connection was free at the due time.
    Timer,
    /// Sent when the connection became free (response arrived, or reconnected).
    Waited,
}

struct Conn {
    stream: Option<TcpStream>,
    state: St,
    since: Instant,
    buf: Vec<u8>,
    len: usize,
    framer: Framer,
    in_flight: bool,
    written: usize,
    intended: Instant,
    sent_at: Instant,
    next_due: Instant,
    timer_at: Option<Instant>,
}

/// Opens the thread's connections (blocking connect with the timeout, then non-blocking,
/// TCP_NODELAY). Runs before the load starts.
pub fn connect_all(plan: &Plan) -> Result<Vec<TcpStream>, String> {
    (0..plan.conns)
        .map(|_| {
            let s = std::net::TcpStream::connect_timeout(&plan.addr, plan.timeout)
                .map_err(|e| format!("cannot connect to {}: {e}", plan.addr))?;
            s.set_nodelay(true)
                .and_then(|_| s.set_nonblocking(true))
                .map_err(|e| format!("socket options on {}: {e}", plan.addr))?;
            Ok(TcpStream::from_std(s))
        })
        .collect()
}

/// Runs the load on `streams` from `times.start` until the drain ends.
pub fn run(
    plan: &Plan,
    streams: Vec<TcpStream>,
    times: Times,
    release: &std::sync::atomic::AtomicBool,
) -> Result<Output, String> {
    let mut lp = Loop::new(plan, streams, times)?;
    lp.run()?;
    // Keep the connections open until whoever observes the window has read the server at its
    // end (a server that ends a connection's thread or process on EOF would otherwise lose
    // it from its accounting first); bounded by the drain deadline.
    while !release.load(std::sync::atomic::Ordering::Acquire)
        && Instant::now() < times.drain_until
        && crate::sys::signal::received().is_none()
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok(lp.out)
}

struct Loop<'a> {
    plan: &'a Plan,
    t: Times,
    poll: Poll,
    conns: Vec<Conn>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    in_flight: usize,
    out: Output,
    window_secs: usize,
    cpu_start: Option<(Instant, Rusage)>,
    cpu_end: Option<(Instant, Rusage)>,
}

impl<'a> Loop<'a> {
    fn new(plan: &'a Plan, streams: Vec<TcpStream>, t: Times) -> Result<Self, String> {
        let poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
        let mut conns = Vec::with_capacity(streams.len());
        for (i, mut s) in streams.into_iter().enumerate() {
            poll.registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .map_err(|e| format!("epoll_ctl(ADD): {e}"))?;
            let first = t.start + plan.stagger * (plan.first_conn + i) as u32;
            conns.push(Conn {
                stream: Some(s),
                state: St::Open,
                since: t.start,
                buf: vec![0; BUF_START],
                len: 0,
                framer: Framer::default(),
                in_flight: false,
                written: 0,
                intended: t.start,
                sent_at: t.start,
                next_due: first,
                timer_at: None,
            });
        }
        let window = t.window_end.saturating_duration_since(t.window_start);
        let window_secs = window.as_nanos().div_ceil(1_000_000_000) as usize;
        let due = match plan.interval {
            Some(iv) => conns
                .iter()
                .map(|c| due_between(c.next_due, iv, t.window_start, t.window_end))
                .sum(),
            None => 0,
        };
        let hist = || {
            // Preallocated to a minute so recording never resizes; auto-resize beyond.
            let mut h = Histogram::new_with_bounds(1, 60_000_000_000, super::SIGFIGS)
                .expect("valid histogram bounds");
            h.auto(true);
            h
        };
        let n = conns.len();
        Ok(Loop {
            plan,
            t,
            poll,
            conns,
            timers: BinaryHeap::with_capacity(2 * n + 1),
            in_flight: 0,
            out: Output {
                corrected: hist(),
                uncorrected: hist(),
                per_second: vec![(0, 0); window_secs.max(1)],
                completed: 0,
                errors: ErrorCounts::default(),
                total_sent: 0,
                total_responses: 0,
                total_errors: ErrorCounts::default(),
                abandoned: 0,
                due,
                sent_due: 0,
                late_waiting: 0,
                late_loop: 0,
                cpu: (0, Rusage::default()),
            },
            window_secs,
            cpu_start: None,
            cpu_end: None,
        })
    }

    fn run(&mut self) -> Result<(), String> {
        let mut timer = LoopTimer::new(self.poll.registry(), TIMER)?;
        let mut events = Events::with_capacity(self.conns.len().clamp(16, 1024));

        let now = Instant::now();
        for i in 0..self.conns.len() {
            self.next_request(i, now, Cause::Timer);
        }
        let mut next_scan = now + SCAN_EVERY;
        loop {
            let now = Instant::now();
            // SIGINT/SIGTERM to `concbench load` (sys::signal): stop now, abandon what is out.
            if crate::sys::signal::received().is_some() {
                self.out.abandoned = self.in_flight as u64;
                break;
            }
            if self.cpu_start.is_none() && now >= self.t.window_start {
                self.cpu_start = Some((now, thread_rusage()));
            }
            if now >= self.t.window_end {
                if self.cpu_end.is_none() {
                    self.cpu_end = Some((now, thread_rusage()));
                }
                if self.in_flight == 0 {
                    break;
                }
                if now >= self.t.drain_until {
                    self.out.abandoned = self.in_flight as u64;
                    break;
                }
            }
            self.expire(now);
            if now >= next_scan {
                self.scan_timeouts(now);
                next_scan = now + SCAN_EVERY;
            }

            // Wake precisely for the next timer or window edge; the epoll slice bounds the rest.
            let mut wake = self.timers.peek().map(|Reverse((d, _))| *d);
            for edge in [
                (self.cpu_start.is_none()).then_some(self.t.window_start),
                (self.cpu_end.is_none()).then_some(self.t.window_end),
            ]
            .into_iter()
            .flatten()
            {
                wake = Some(wake.map_or(edge, |w| w.min(edge)));
            }
            if let Some(due) = wake {
                timer.arm(due)?;
            }
            match self.poll.poll(&mut events, Some(SLICE)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("epoll_wait: {e}")),
            }
            for ev in events.iter() {
                if ev.token() == TIMER {
                    timer.fired();
                    continue;
                }
                let i = ev.token().0;
                self.on_event(
                    i,
                    ev.is_readable() || ev.is_read_closed() || ev.is_error(),
                    ev.is_writable(),
                );
            }
        }
        // Both are set: the loop only ends after it saw the window end (and so its start).
        let (t0, r0) = self.cpu_start.unwrap_or((Instant::now(), thread_rusage()));
        let (t1, r1) = self.cpu_end.unwrap_or((Instant::now(), thread_rusage()));
        self.out.cpu = (
            t1.saturating_duration_since(t0).as_nanos() as u64,
            r1.since(&r0),
        );
        Ok(())
    }

    fn on_event(&mut self, i: usize, readable: bool, writable: bool) {
        match self.conns[i].state {
            St::Connecting => self.on_connect(i),
            St::Open => {
                let c = &self.conns[i];
                if writable && c.in_flight && c.written < self.plan.request.len() {
                    self.flush(i);
                }
                if readable && self.conns[i].state == St::Open {
                    self.on_readable(i);
                }
            }
            St::Backoff | St::Done => {}
        }
    }

    fn on_connect(&mut self, i: usize) {
        let now = Instant::now();
        let c = &mut self.conns[i];
        let Some(s) = c.stream.as_ref() else { return };
        let connected = match s.take_error() {
            Ok(Some(_)) | Err(_) => Err(()),
            Ok(None) => match s.peer_addr() {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
                Err(_) => Err(()),
            },
        };
        match connected {
            Ok(false) => {}
            Ok(true) => {
                let _ = s.set_nodelay(true);
                c.state = St::Open;
                self.next_request(i, now, Cause::Waited);
            }
            Err(()) => self.fail(i, Kind::Connect, now),
        }
    }

    fn on_readable(&mut self, i: usize) {
        loop {
            let c = &mut self.conns[i];
            if c.len == c.buf.len() {
                // Only a response head larger than the buffer gets here.
                let grown = (c.buf.len() * 2).min(BUF_MAX);
                c.buf.resize(grown, 0);
            }
            let space = c.buf.len() - c.len;
            let Some(s) = c.stream.as_mut() else { return };
            match s.read(&mut c.buf[c.len..]) {
                Ok(0) => {
                    let now = Instant::now();
                    self.fail(i, Kind::Closed, now);
                    return;
                }
                Ok(n) => {
                    c.len += n;
                    let now = Instant::now();
                    if !self.frame(i, now) {
                        return;
                    }
                    if n < space {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let now = Instant::now();
                    self.fail(i, io_kind(&e), now);
                    return;
                }
            }
        }
    }

    /// Frames every whole response in the connection's buffer. False: the connection was
    /// replaced (error or server close), stop reading it.
    fn frame(&mut self, i: usize, now: Instant) -> bool {
        loop {
            let c = &mut self.conns[i];
            if c.len == 0 {
                return true;
            }
            if !c.in_flight || c.written < self.plan.request.len() {
                // Bytes nobody asked for (or an answer before the request was written).
                self.fail(i, Kind::Protocol, now);
                return false;
            }
            let full = c.len == c.buf.len() && c.buf.len() >= BUF_MAX;
            match c.framer.feed(&c.buf[..c.len], full) {
                Ok(Step::More { used }) => {
                    consume(c, used);
                    return true;
                }
                Ok(Step::Done { used, response }) => {
                    consume(c, used);
                    c.in_flight = false;
                    self.in_flight -= 1;
                    self.record(i, response.status, now);
                    if response.close {
                        // The server said it closes: reconnect, not an error.
                        self.replace(i, now);
                        return false;
                    }
                    self.next_request(i, now, Cause::Waited);
                }
                Err(FrameError::Malformed)
                | Err(FrameError::Chunked)
                | Err(FrameError::NoLength)
                | Err(FrameError::HeadTooLarge) => {
                    self.fail(i, Kind::Protocol, now);
                    return false;
                }
            }
        }
    }

    fn record(&mut self, i: usize, status: u16, now: Instant) {
        let c = &self.conns[i];
        let (ws, we) = (self.t.window_start, self.t.window_end);
        let o = &mut self.out;
        o.total_responses += 1;
        if c.intended >= ws && c.intended < we {
            let ns = |from: Instant| (now.saturating_duration_since(from).as_nanos() as u64).max(1);
            // Auto-resizing beyond the preallocated minute: fails only on allocation failure.
            let _ = o.corrected.record(ns(c.intended));
            let _ = o.uncorrected.record(ns(c.sent_at));
        }
        if now >= ws && now < we {
            o.completed += 1;
            let s = ((now - ws).as_secs() as usize).min(self.window_secs.saturating_sub(1));
            o.per_second[s].0 += 1;
        }
        if !(200..300).contains(&status) {
            self.error(Kind::Status, now);
        }
    }

    fn error(&mut self, kind: Kind, now: Instant) {
        let o = &mut self.out;
        o.total_errors.bump(kind);
        let (ws, we) = (self.t.window_start, self.t.window_end);
        if now >= ws && now < we {
            o.errors.bump(kind);
            let s = ((now - ws).as_secs() as usize).min(self.window_secs.saturating_sub(1));
            o.per_second[s].1 += 1;
        }
    }

    /// Sends the connection's next request if one is due (and the connection is free).
    fn next_request(&mut self, i: usize, now: Instant, cause: Cause) {
        let we = self.t.window_end;
        let c = &mut self.conns[i];
        if c.state != St::Open || c.in_flight || now >= we {
            return;
        }
        match self.plan.interval {
            None => self.send(i, now, now),
            Some(iv) => {
                let due = c.next_due;
                if due >= we {
                    return;
                }
                if due > now {
                    if c.timer_at != Some(due) {
                        c.timer_at = Some(due);
                        self.timers.push(Reverse((due, i)));
                    }
                    return;
                }
                c.next_due = due + iv;
                if due >= self.t.window_start {
                    let o = &mut self.out;
                    o.sent_due += 1;
                    if now.saturating_duration_since(due) > LATE {
                        match cause {
                            Cause::Timer => o.late_loop += 1,
                            Cause::Waited => o.late_waiting += 1,
                        }
                    }
                }
                self.send(i, due, now);
            }
        }
    }

    fn send(&mut self, i: usize, intended: Instant, now: Instant) {
        let c = &mut self.conns[i];
        c.in_flight = true;
        c.intended = intended;
        c.sent_at = now;
        c.written = 0;
        self.in_flight += 1;
        self.out.total_sent += 1;
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let req = &self.plan.request[..];
        loop {
            let c = &mut self.conns[i];
            if c.written >= req.len() {
                return;
            }
            let Some(s) = c.stream.as_mut() else { return };
            match s.write(&req[c.written..]) {
                Ok(n) => c.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    let now = Instant::now();
                    self.fail(i, io_kind(&e), now);
                    return;
                }
            }
        }
    }

    /// Counts an error and replaces the connection (a request in flight on it is lost).
    fn fail(&mut self, i: usize, kind: Kind, now: Instant) {
        self.error(kind, now);
        if kind == Kind::Connect {
            self.close(i);
            let c = &mut self.conns[i];
            if now >= self.t.window_end {
                c.state = St::Done;
                return;
            }
            let at = now + BACKOFF;
            c.state = St::Backoff;
            c.timer_at = Some(at);
            self.timers.push(Reverse((at, i)));
        } else {
            self.replace(i, now);
        }
    }

    fn close(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.in_flight {
            c.in_flight = false;
            self.in_flight -= 1;
        }
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        c.framer.reset();
        c.len = 0;
        c.written = 0;
    }

    /// Closes the connection and opens a new one (unless the window is over).
    fn replace(&mut self, i: usize, now: Instant) {
        self.close(i);
        if now >= self.t.window_end {
            self.conns[i].state = St::Done;
            return;
        }
        self.connect(i, now);
    }

    fn connect(&mut self, i: usize, now: Instant) {
        match TcpStream::connect(self.plan.addr) {
            Ok(mut s) => {
                match self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        let c = &mut self.conns[i];
                        c.stream = Some(s);
                        c.state = St::Connecting;
                        c.since = now;
                    }
                    Err(_) => self.fail(i, Kind::Connect, now),
                }
            }
            Err(_) => self.fail(i, Kind::Connect, now),
        }
    }

    /// Runs every timer due by `now`: open-loop due times and reconnect back-offs.
    fn expire(&mut self, now: Instant) {
        while let Some(&Reverse((due, i))) = self.timers.peek() {
            if due > now {
                break;
            }
            self.timers.pop();
            let c = &mut self.conns[i];
            if c.timer_at != Some(due) {
                continue; // stale: the connection moved on
            }
            c.timer_at = None;
            match c.state {
                St::Backoff => {
                    if now >= self.t.window_end {
                        c.state = St::Done;
                    } else {
                        self.connect(i, now);
                    }
                }
                St::Open => self.next_request(i, now, Cause::Timer),
                St::Connecting | St::Done => {}
            }
        }
    }

    fn scan_timeouts(&mut self, now: Instant) {
        let limit = self.plan.timeout;
        for i in 0..self.conns.len() {
            let c = &self.conns[i];
            match c.state {
                St::Open if c.in_flight && now.saturating_duration_since(c.sent_at) > limit => {
                    self.fail(i, Kind::Timeout, now)
                }
                St::Connecting if now.saturating_duration_since(c.since) > limit => {
                    self.fail(i, Kind::Connect, now)
                }
                _ => {}
            }
        }
    }
}

/// Drops the first `used` bytes of the connection's buffer.
#[inline]
fn consume(c: &mut Conn, used: usize) {
    if used == c.len {
        c.len = 0;
    } else if used > 0 {
        c.buf.copy_within(used..c.len, 0);
        c.len -= used;
    }
}

fn io_kind(e: &std::io::Error) -> Kind {
    match e.kind() {
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof => Kind::Closed,
        _ => Kind::Io,
    }
}

/// How many of `first + k·iv` (k ≥ 0) fall in `[from, to)`.
pub fn due_between(first: Instant, iv: Duration, from: Instant, to: Instant) -> u64 {
    let iv = iv.as_nanos().max(1);
    // Number of due times strictly before `t`.
    let before = |t: Instant| -> u128 {
        if t <= first {
            0
        } else {
            (t - first).as_nanos().div_ceil(iv)
        }
    };
    (before(to).saturating_sub(before(from))) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_in_window() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        // Due at 0, 10, 20, …: [5, 35) holds 10, 20, 30.
        assert_eq!(due_between(t, ms(10), t + ms(5), t + ms(35)), 3);
        // [10, 30) holds 10 and 20: the start is inclusive, the end exclusive.
        assert_eq!(due_between(t, ms(10), t + ms(10), t + ms(30)), 2);
        assert_eq!(due_between(t + ms(100), ms(10), t, t + ms(50)), 0);
    }
}
