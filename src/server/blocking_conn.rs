//! One connection served with blocking calls from start to end: what a thread of SQL Server or
//! MySQL (thread per connection) and a PostgreSQL backend process (process per connection) do
//! for their client. Used by the `thread-per-conn` and `process-per-conn` architectures.
//!
//! # Design
//! A plain loop over a blocking socket: read, frame every complete request in the buffer with
//! [`parse_request`] (pipelined requests are answered in order), run the handler's op for each
//! with a task built in [`Mode::Blocking`] (stepped until `Done`: `Sleep` sleeps, `Wait` polls
//! the one fd), append each response, and send the whole batch with one `write_all`. The
//! connection closes on `Connection: close`, on a refused request (after its status is written),
//! on EOF, on a handler error (after a 500), when a request is not whole `header_timeout` after
//! its first byte (after a 408: the socket's read timeout is set to what is left of that
//! time before every read, so a client trickling bytes cannot extend it), and when the
//! client stays silent between requests, or leaves our responses unread, for `idle_timeout`
//! ([`Limits`]). So neither a vanished nor a slow client can hold a thread or process forever.
//!
//! The task is created lazily on the first request, inside the thread or process that serves
//! the connection, so a connection that sends nothing costs no downstream connection or file.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use super::Stats;
use super::guard::{ConnClock, Expiry};
use super::handler::Handler;
use super::http::{Limits, Parse, parse_request, write_response};
use crate::workload::{Mode, Step, Task, wait_fd};

/// Body of every successful response.
pub const OK_BODY: &[u8] = b"ok\n";

/// Runs one handler op on `task` to completion, blocking through `Sleep` and `Wait`.
pub fn run_op_blocking(task: &mut dyn Task) -> Result<(), String> {
    loop {
        match task.step().map_err(|e| e.to_string())? {
            Step::Done => return Ok(()),
            Step::Sleep { until } => {
                let now = Instant::now();
                if until > now {
                    std::thread::sleep(until - now);
                }
            }
            Step::Wait { fd, interest } => {
                wait_fd(fd, interest, None).map_err(|e| format!("poll: {e}"))?;
            }
        }
    }
}

/// Closes `stream` politely: shut down our side, then discard what the client may still have
/// sent, so the kernel does not answer unread data with a RST that could destroy the response
/// we just wrote.
pub fn close_gracefully(stream: &TcpStream) {
    if stream.set_nonblocking(true).is_ok() {
        crate::server::shut_and_drain(stream);
    } else {
        let _ = stream.shutdown(Shutdown::Write);
    }
}

/// Serves one connection until the client closes it, asks to close, sends something refused,
/// or runs out of time ([`Limits`]). `worker` picks the [`Stats`] slot; `conn` numbers
/// the connection for the handler's task (seed, file names). Never panics on client errors.
pub fn serve_connection(
    mut stream: TcpStream,
    handler: &Handler,
    stats: &Stats,
    worker: usize,
    conn: usize,
    limits: &Limits,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(limits.idle_timeout));
    let mut clock = ConnClock::accepted(Instant::now());
    let mut timeout_set: Option<Duration> = None;
    let mut task: Option<Box<dyn Task>> = None;
    let mut task_built = false;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        // Answer every complete request already in the buffer, in order.
        let mut start = 0usize;
        let mut close = false;
        loop {
            match parse_request(&buf[start..], limits) {
                Parse::Partial => break,
                Parse::Refused(r) => {
                    write_response(&mut out, r.status, r.reason.as_bytes(), false);
                    close = true;
                    break;
                }
                Parse::Complete(req) => {
                    start += req.consumed;
                    if !task_built {
                        task_built = true;
                        match handler.task(conn, Mode::Blocking) {
                            Ok(t) => task = t,
                            Err(e) => {
                                write_response(&mut out, 500, e.as_bytes(), false);
                                close = true;
                                break;
                            }
                        }
                    }
                    if let Some(t) = task.as_mut()
                        && let Err(e) = run_op_blocking(t.as_mut())
                    {
                        write_response(&mut out, 500, e.as_bytes(), false);
                        close = true;
                        break;
                    }
                    write_response(&mut out, 200, OK_BODY, req.keep_alive);
                    stats.request(worker);
                    if !req.keep_alive {
                        close = true;
                        break;
                    }
                }
            }
        }
        buf.drain(..start);
        clock.framed(!buf.is_empty(), Instant::now());
        if !out.is_empty() {
            if stream.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if close {
            close_gracefully(&stream);
            return;
        }
        // Block at most until this connection's deadline (header or idle).
        let now = Instant::now();
        let left = clock.deadline(limits).saturating_duration_since(now);
        if left.is_zero() {
            expire(&mut stream, &clock, limits);
            return;
        }
        // Re-armed only when the timeout in force would overshoot the deadline by more than
        // an eighth, or is under half of it: a steady keep-alive costs no setsockopt per request.
        if timeout_set.is_none_or(|t| t > left + left / 8 || t < left / 2) {
            let _ = stream.set_read_timeout(Some(left));
            timeout_set = Some(left);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                clock.last_active = Instant::now();
                clock.framed(true, clock.last_active);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if clock.expired(Instant::now(), limits).is_some() {
                    expire(&mut stream, &clock, limits);
                    return;
                }
            }
            // Reset, anything else: the connection is over.
            Err(_) => return,
        }
    }
}

/// The connection ran out of time: a request that did not arrive whole gets 408; an idle
/// one is just closed.
fn expire(stream: &mut TcpStream, clock: &ConnClock, limits: &Limits) {
    if clock.expired(Instant::now(), limits) == Some(Expiry::Header) {
        crate::server::guard::answer_and_close(stream, 408, "request not received in time\n");
    } else {
        close_gracefully(stream);
    }
}

/// The tests every architecture passes, generated into its test module:
/// `shared_arch_tests!("arch-id", helpers);`.
#[cfg(test)]
macro_rules! shared_arch_tests {
    ($arch:literal, $helpers:expr) => {
        #[test]
        fn serves_keep_alive_pipelined_and_refuses_malformed() {
            let s = start($arch, "none", $helpers);
            basic_behaviour(s.addr);
            stop(s);
        }

        #[test]
        fn hundred_concurrent_connections() {
            let s = start($arch, "none", $helpers);
            concurrent(s.addr, 100, 5);
            assert_eq!(s.stats.requests().iter().sum::<u64>(), 500);
            assert_eq!(s.stats.connections().iter().sum::<u64>(), 100);
            stop(s);
        }

        #[test]
        fn runs_spin_sleep_fsync_and_downstream_handlers() {
            for h in [
                "spin:op_time=20us",
                "sleep:delay=1ms",
                "fsync",
                "downstream:delay=1ms",
            ] {
                let s = start($arch, h, $helpers);
                concurrent(s.addr, 8, 3);
                assert_eq!(s.stats.requests().iter().sum::<u64>(), 24, "{h}");
                stop(s);
            }
        }
    };
}
#[cfg(test)]
pub(crate) use shared_arch_tests;

/// Shared by the server architectures' tests: a server in a forked child, HTTP clients over
/// loopback, and checks that nothing is left behind.
#[cfg(test)]
pub(crate) mod testkit {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use crate::server::handler::HandlerSpec;
    use crate::server::http::Limits;
    use crate::server::{ServeConfig, Stats, find_arch, serve_with};
    use crate::sys::{Child, fork_child};

    /// A server running in a forked child.
    pub struct Server {
        pub child: Child,
        pub addr: SocketAddr,
        pub stats: Stats,
        /// The handler's files: removed after `child` (declared first, dropped first) is
        /// killed and reaped.
        _scratch: tempfile::TempDir,
    }

    /// Forks a server for `arch` with `handler` and `helpers`, and waits for its address.
    pub fn start(arch: &str, handler: &str, helpers: usize) -> Server {
        start_with(arch, handler, helpers, 2, Limits::default())
    }

    /// As [`start`], with `workers` and `limits`.
    pub fn start_with(
        arch: &str,
        handler: &str,
        helpers: usize,
        workers: usize,
        limits: Limits,
    ) -> Server {
        let cfg = ServeConfig {
            arch: find_arch(arch).unwrap(),
            workers,
            addr: "127.0.0.1:0".parse().unwrap(),
            handler: HandlerSpec::parse(handler).unwrap(),
            reuseport: false,
            cores: Vec::new(),
            helpers,
            limits,
            scratch: std::path::PathBuf::new(),
        };
        let scratch = tempfile::tempdir().unwrap();
        let cfg = ServeConfig {
            scratch: scratch.path().to_path_buf(),
            ..cfg
        };
        let stats = Stats::new(cfg.workers).unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        let reader_fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        let child = fork_child(|| {
            crate::sys::fd::close_inherited(reader_fd);
            let mut writer = writer;
            let r = serve_with(&cfg, &stats, &mut |a| {
                let _ = writeln!(writer, "{a}");
                let _ = writer.flush();
            });
            eprintln!("server ended: {r:?}");
            1
        })
        .unwrap();
        let mut line = String::new();
        BufReader::new(reader).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("server sent no address ({e}): {line:?}"));
        Server {
            child,
            addr,
            stats,
            _scratch: scratch,
        }
    }

    /// Connects with timeouts so a broken server fails the test instead of hanging it.
    pub fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    /// One response: status, whether the server said it closes, body.
    #[derive(Debug)]
    pub struct Resp {
        pub status: u16,
        pub close: bool,
        pub body: Vec<u8>,
    }

    /// Reads exactly `n` responses from `s` (carrying leftovers in `buf`).
    pub fn read_responses(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> Vec<Resp> {
        let mut out = Vec::new();
        let mut chunk = [0u8; 8192];
        while out.len() < n {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut r = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = r.parse(buf).unwrap() {
                let mut len = 0usize;
                let mut close = false;
                for h in r.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        len = std::str::from_utf8(h.value).unwrap().parse().unwrap();
                    }
                    if h.name.eq_ignore_ascii_case("connection") {
                        close = h.value.eq_ignore_ascii_case(b"close");
                    }
                }
                if buf.len() >= head + len {
                    out.push(Resp {
                        status: r.code.unwrap(),
                        close,
                        body: buf[head..head + len].to_vec(),
                    });
                    buf.drain(..head + len);
                    continue;
                }
            }
            let k = s.read(&mut chunk).expect("reading a response");
            assert!(k > 0, "server closed after {} of {n} responses", out.len());
            buf.extend_from_slice(&chunk[..k]);
        }
        out
    }

    pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

    /// Sends `reqs` keep-alive requests one at a time on one connection; all must be 200.
    pub fn keep_alive(addr: SocketAddr, reqs: usize) {
        let mut s = connect(addr);
        let mut buf = Vec::new();
        for _ in 0..reqs {
            s.write_all(GET).unwrap();
            let r = read_responses(&mut s, &mut buf, 1);
            assert_eq!(r[0].status, 200, "{r:?}");
            assert!(!r[0].close);
        }
    }

    /// Asserts the server is at EOF on `s` (it closed the connection).
    pub fn assert_closed(s: &mut TcpStream, buf: &[u8]) {
        assert!(buf.is_empty(), "unexpected bytes: {buf:?}");
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(0) => {}
            Ok(n) => panic!("expected EOF, got {:?}", &b[..n]),
            // A reset also means closed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// The behaviour every architecture must show with the `none` handler.
    pub fn basic_behaviour(addr: SocketAddr) {
        // One GET.
        let mut s = connect(addr);
        s.write_all(GET).unwrap();
        let mut buf = Vec::new();
        let r = read_responses(&mut s, &mut buf, 1);
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].body, super::OK_BODY);
        drop(s);

        // Three keep-alive requests on one connection.
        keep_alive(addr, 3);

        // Three pipelined requests in one write: three responses in order; the last asks to
        // close, so the server answers it and closes.
        let mut s = connect(addr);
        let mut three = Vec::new();
        three.extend_from_slice(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\n");
        three.extend_from_slice(b"POST /2 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
        three.extend_from_slice(b"GET /3 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(&three).unwrap();
        let mut buf = Vec::new();
        let r = read_responses(&mut s, &mut buf, 3);
        assert!(r.iter().all(|r| r.status == 200), "{r:?}");
        assert_eq!(
            r.iter().map(|r| r.close).collect::<Vec<_>>(),
            [false, false, true]
        );
        assert_closed(&mut s, &buf);

        // A malformed request: 400, then the server closes.
        let mut s = connect(addr);
        s.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        let r = read_responses(&mut s, &mut buf, 1);
        assert_eq!(r[0].status, 400);
        assert!(r[0].close);
        assert_closed(&mut s, &buf);

        // A request split over two writes is framed once whole.
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(b"st: t\r\n\r\n").unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_responses(&mut s, &mut buf, 1)[0].status, 200);
    }

    /// `conns` concurrent connections, `reqs` keep-alive requests each; all must succeed.
    pub fn concurrent(addr: SocketAddr, conns: usize, reqs: usize) {
        let threads: Vec<_> = (0..conns)
            .map(|_| std::thread::spawn(move || keep_alive(addr, reqs)))
            .collect();
        for t in threads {
            t.join().expect("a client failed");
        }
    }

    /// Children of `pid` (every thread's `children` list).
    pub fn children_of(pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                    out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
                }
            }
        }
        out
    }

    /// State letter of `pid` (`Z` for a zombie), None once it is gone.
    pub fn state_of(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .next()?
            .chars()
            .next()
    }

    /// Polls `cond` every 10 ms for up to `limit`.
    pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        loop {
            if cond() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the server and checks that nothing it started survives it and that this process
    /// has no child left.
    pub fn stop(mut server: Server) {
        let pid = server.child.pid();
        let kids = children_of(pid);
        server.child.kill_and_reap().unwrap();
        // Its children die with it (PDEATHSIG) and are reaped by whoever adopted them.
        assert!(
            eventually(Duration::from_secs(5), || kids
                .iter()
                .all(|&k| crate::sys::procfs::is_dead(k))),
            "children of the server outlived it: {kids:?}"
        );
        // Under nextest every test is its own process: it must have no child left at all.
        // (Under `cargo test` sibling tests' servers are our children too, so skip this.)
        if std::env::var_os("NEXTEST").is_some() {
            use nix::errno::Errno;
            use nix::sys::wait::{Id, WaitPidFlag, waitid};
            let flags = WaitPidFlag::WNOHANG | WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
            assert_eq!(waitid(Id::All, flags), Err(Errno::ECHILD));
        }
    }
}
