//! Helpers for the loop architectures' tests: start a server in a forked child, talk HTTP to it
//! with std sockets, and check that nothing outlives it.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::server::handler::HandlerSpec;
use crate::server::{ServeConfig, Stats, find_arch, serve_with};
use crate::sys::{Child, fork_child};

/// A server running in a forked child.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stats: Stats,
    /// The handler's files: removed after `child` (declared first, dropped first) is killed
    /// and reaped.
    _scratch: tempfile::TempDir,
}

/// Starts `arch` with `workers` and `handler` in a forked child and waits until it listens.
pub fn start(arch: &str, workers: usize, handler: &str, reuseport: bool) -> Server {
    let cfg = ServeConfig {
        arch: find_arch(arch).unwrap(),
        workers,
        addr: "127.0.0.1:0".parse().unwrap(),
        handler: HandlerSpec::parse(handler).unwrap(),
        reuseport,
        cores: Vec::new(),
        helpers: 1,
        limits: Default::default(),
        scratch: std::path::PathBuf::new(),
    };
    let scratch = tempfile::tempdir().unwrap();
    let cfg = ServeConfig {
        scratch: scratch.path().to_path_buf(),
        ..cfg
    };
    let stats = Stats::new(workers).unwrap();
    let (r, w) = std::io::pipe().unwrap();
    let child = fork_child(|| {
        let mut w = &w;
        let r = serve_with(&cfg, &stats, &mut |a| {
            let _ = writeln!(w, "{a}");
        });
        if let Err(e) = r {
            eprintln!("server failed: {e}");
        }
        1
    })
    .unwrap();
    drop(w);
    let mut line = String::new();
    BufReader::new(r).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("server did not start: {line:?}"));
    Server {
        child,
        addr,
        stats,
        _scratch: scratch,
    }
}

/// Pids whose parent is `ppid`, from `/proc/*/stat`.
pub fn children_of(ppid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next();
        if f.next().and_then(|p| p.parse::<i32>().ok()) == Some(ppid)
            && state != Some("Z")
            && state != Some("X")
        {
            out.push(pid);
        }
    }
    out
}

/// Waits (up to 10 s) until `ppid` has exactly `n` live children; returns them.
pub fn wait_children(ppid: i32, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let c = children_of(ppid);
        if c.len() == n {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "{ppid} has children {c:?}, not {n}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl Server {
    /// Kills the server, then checks that every process it started has ended and that this
    /// process has no child left.
    pub fn stop(mut self) {
        let master = self.child.pid();
        let descendants = children_of(master);
        self.child.kill_and_reap().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        for pid in descendants {
            while !crate::sys::procfs::is_dead(pid) {
                assert!(
                    Instant::now() < deadline,
                    "process {pid} outlived its server"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        assert!(children_of(master).is_empty());
        assert_eq!(
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
    }

    /// A fresh client connection.
    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }
}

/// A connection with generous timeouts (a hang fails the test instead of blocking it).
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
pub const GET_CLOSE: &[u8] = b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// One parsed response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub close: bool,
    pub body: Vec<u8>,
}

/// Reads one response from `s`, keeping bytes past it in `buf` for the next call.
pub fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> Resp {
    loop {
        let mut h = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut h);
        if let httparse::Status::Complete(head) = r.parse(buf).unwrap() {
            let mut len = 0usize;
            let mut close = false;
            for h in r.headers.iter() {
                let v = std::str::from_utf8(h.value).unwrap();
                if h.name.eq_ignore_ascii_case("content-length") {
                    len = v.parse().unwrap();
                } else if h.name.eq_ignore_ascii_case("connection") {
                    close = v.eq_ignore_ascii_case("close");
                }
            }
            let status = r.code.unwrap();
            if buf.len() >= head + len {
                let body = buf[head..head + len].to_vec();
                buf.drain(..head + len);
                return Resp {
                    status,
                    close,
                    body,
                };
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("reading a response");
        assert!(n > 0, "connection closed before a whole response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// True when the server closed `s` (EOF) with nothing more to read.
pub fn closed(s: &mut TcpStream, buf: &[u8]) -> bool {
    let mut b = [0u8; 64];
    buf.is_empty() && matches!(s.read(&mut b), Ok(0))
}

/// Sends `req` on `s` and reads one response.
pub fn request(s: &mut TcpStream, req: &[u8]) -> Resp {
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let r = read_response(s, &mut buf);
    assert!(buf.is_empty());
    r
}

/// `conns` concurrent connections each doing `rounds` requests; all must get a 200.
pub fn many(addr: SocketAddr, conns: usize, rounds: usize) {
    let mut socks: Vec<TcpStream> = (0..conns).map(|_| connect(addr)).collect();
    let mut bufs = vec![Vec::new(); conns];
    for _ in 0..rounds {
        for s in socks.iter_mut() {
            s.write_all(GET).unwrap();
        }
        for (s, b) in socks.iter_mut().zip(bufs.iter_mut()) {
            let r = read_response(s, b);
            assert_eq!(r.status, 200);
            assert_eq!(r.body, crate::server::loop_core::OK_BODY);
        }
    }
}

/// The behaviour every architecture must have; `handler` must be `none`.
pub fn http_behaviour(srv: &Server) {
    // A GET answers 200 with a body.
    let mut s = srv.connect();
    let r = request(&mut s, GET);
    assert_eq!(
        (r.status, r.close, r.body.as_slice()),
        (200, false, crate::server::loop_core::OK_BODY)
    );
    // Keep-alive: two more on the same connection.
    for _ in 0..2 {
        assert_eq!(request(&mut s, GET).status, 200);
    }
    // Pipelined: three written at once are answered in order (the last asked to close).
    let mut s = srv.connect();
    let mut three = Vec::new();
    three.extend_from_slice(GET);
    three.extend_from_slice(GET);
    three.extend_from_slice(GET_CLOSE);
    s.write_all(&three).unwrap();
    let mut buf = Vec::new();
    let closes: Vec<bool> = (0..3)
        .map(|_| {
            let r = read_response(&mut s, &mut buf);
            assert_eq!(r.status, 200);
            r.close
        })
        .collect();
    assert_eq!(closes, [false, false, true]);
    assert!(closed(&mut s, &buf));
    // A request split across writes is framed once whole.
    let mut s = srv.connect();
    s.write_all(&GET[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(request(&mut s, &GET[7..]).status, 200);
    // Malformed: 400, then the server closes.
    let mut s = srv.connect();
    let r = request(&mut s, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!((r.status, r.close), (400, true));
    assert!(closed(&mut s, &[]));
    // Connection: close.
    let mut s = srv.connect();
    let r = request(&mut s, GET_CLOSE);
    assert_eq!((r.status, r.close), (200, true));
    assert!(closed(&mut s, &[]));
    // A client that sends and half-closes still gets its answer.
    let mut s = srv.connect();
    s.write_all(GET).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut s, &mut buf).status, 200);
    assert!(closed(&mut s, &buf));
    // 200 concurrent connections, 5 requests each.
    many(srv.addr, 200, 5);
}

/// With a waiting handler (sleep, downstream), `conns` connections doing `rounds` requests
/// must all succeed, and the ops must overlap: the whole takes under a quarter of the sum of the
/// delays, which a server running one op at a time could not do.
pub fn multiplexes(srv: &Server, conns: usize, rounds: usize, delay: Duration) {
    let t0 = Instant::now();
    many(srv.addr, conns, rounds);
    let took = t0.elapsed();
    let serial = delay * (conns * rounds) as u32;
    assert!(
        took < serial / 4,
        "{conns}x{rounds} ops of {delay:?} took {took:?}: not multiplexed (serial {serial:?})"
    );
}

/// Opens `n` connections at once and gets one response on each (the 10k check).
pub fn hold(addr: SocketAddr, n: usize) {
    let want = n as u64 + 1000;
    let got = crate::server::raise_nofile(want).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        got >= want,
        "{n} connections need RLIMIT_NOFILE >= {want} in the client and the server, but the \
         hard limit allows only {got}: raise it (`ulimit -n {want}` as root, or LimitNOFILE= \
         in the service/container settings) and run again"
    );
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect #{i}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        socks.push(s);
    }
    for s in socks.iter_mut() {
        s.write_all(GET).unwrap();
    }
    let mut ok = 0;
    for s in socks.iter_mut() {
        let mut buf = Vec::new();
        if read_response(s, &mut buf).status == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, n);
    // And all of them are still open: a second round on each.
    for s in socks.iter_mut() {
        assert_eq!(request(s, GET).status, 200);
    }
    eprintln!("held {n} concurrent keep-alive connections, two requests each");
}
