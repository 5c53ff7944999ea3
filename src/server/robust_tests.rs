//! Server robustness, checked on every architecture (issue 6, item 5): malformed requests,
//! oversized heads and bodies, clients that trickle bytes, stay idle or vanish mid-request
//! and mid-response, and more connections than the cap, while a well-behaved client keeps
//! making requests on another connection and must get every answer. Afterwards the server's
//! process tree holds the descriptors, threads and processes it held before (read from
//! `/proc`): nothing leaked.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::server::blocking_conn::testkit::*;
use crate::server::http::Limits;

/// Short limits so the timeouts fire within a test.
pub fn test_limits() -> Limits {
    Limits {
        max_head: 1024,
        max_body: 1000,
        header_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

/// What the server's process tree holds: processes, threads, open descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub procs: usize,
    pub threads: usize,
    pub fds: usize,
}

/// Sums processes, threads and descriptors over `pid` and its descendants.
pub fn usage(pid: i32) -> Usage {
    let mut u = Usage {
        procs: 0,
        threads: 0,
        fds: 0,
    };
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        if state_of(p).is_none_or(|s| s == 'Z') {
            continue;
        }
        u.procs += 1;
        u.threads += std::fs::read_dir(format!("/proc/{p}/task")).map_or(0, |d| d.count());
        u.fds += std::fs::read_dir(format!("/proc/{p}/fd")).map_or(0, |d| d.count());
        todo.extend(children_of(p));
    }
    u
}

/// A client that makes keep-alive requests one after another until told to stop; returns
/// (sent, answered with 200). Any other outcome panics the thread (and fails the test).
fn good_client(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    let mut s = connect(addr);
    let mut buf = Vec::new();
    s.write_all(GET).unwrap();
    assert_eq!(read_responses(&mut s, &mut buf, 1)[0].status, 200);
    std::thread::spawn(move || {
        let (mut sent, mut ok) = (1, 1);
        while !stop.load(Ordering::Relaxed) {
            s.write_all(GET).expect("the good client's request");
            sent += 1;
            let r = read_responses(&mut s, &mut buf, 1);
            assert_eq!(r[0].status, 200, "{r:?}");
            ok += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        (sent, ok)
    })
}

/// Sends `req` on a fresh connection: the server must answer `status` and close.
fn refused(addr: SocketAddr, req: &[u8], status: u16) {
    let mut s = connect(addr);
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let r = read_responses(&mut s, &mut buf, 1);
    assert_eq!((r[0].status, r[0].close), (status, true), "{r:?}");
    assert_closed(&mut s, &buf);
}

/// True once the peer closed (EOF, reset) or sent something; reads without blocking.
fn answered_or_closed(s: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 512];
    let r = loop {
        match s.read(&mut b) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&b[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break !got.is_empty(),
            Err(_) => break true,
        }
    };
    s.set_nonblocking(false).unwrap();
    r
}

/// A client trickles a request head, a byte every 50 ms, for up to 3 s: the server must cut
/// it off (408, then close) long before it ends.
fn trickle(addr: SocketAddr) {
    let mut s = connect(addr);
    let mut got = Vec::new();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut sent = 0;
    while sent < 60 {
        std::thread::sleep(Duration::from_millis(50));
        if answered_or_closed(&mut s, &mut got) {
            break;
        }
        if s.write_all(b"a").is_err() {
            break; // reset: the server has closed
        }
        sent += 1;
    }
    assert!(
        sent < 60,
        "a client trickling bytes for 3 s was never cut off"
    );
    // Wait for the whole answer and the close.
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 408 "),
        "expected a 408 before the close, got {text:?}"
    );
}

/// A keep-alive connection left idle after one request is closed by the server.
fn idle(addr: SocketAddr) {
    let mut s = connect(addr);
    s.write_all(GET).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_responses(&mut s, &mut buf, 1)[0].status, 200);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("an idle keep-alive connection was not closed: {other:?}"),
    }
}

/// Clients that vanish: mid-request (half a head, then close), mid-body, and mid-response
/// (a burst of pipelined requests, then close without reading the answers).
fn vanish(addr: SocketAddr) {
    for _ in 0..5 {
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half: ")
            .unwrap();
        drop(s);
        let mut s = connect(addr);
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 900\r\n\r\nabc")
            .unwrap();
        drop(s);
        let mut s = connect(addr);
        let burst: Vec<u8> = GET.repeat(2000);
        let _ = s.write_all(&burst);
        drop(s);
    }
}

/// The whole check for one architecture.
pub fn misbehaving_clients(arch: &str, helpers: usize) {
    let srv = start_with(arch, "none", helpers, 2, test_limits());
    let pid = srv.child.pid();
    let stop = Arc::new(AtomicBool::new(false));
    let good = good_client(srv.addr, Arc::clone(&stop));
    std::thread::sleep(Duration::from_millis(50));
    let before = usage(pid);

    refused(srv.addr, b"NOT HTTP AT ALL\r\n\r\n", 400);
    refused(srv.addr, b"GET / HTTP/1.1\r\nHost: \x01\x02\r\n\r\n", 400);
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000));
    refused(srv.addr, big.as_bytes(), 431);
    let huge_unfinished = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(2000));
    refused(srv.addr, huge_unfinished.as_bytes(), 431);
    refused(
        srv.addr,
        b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n",
        413,
    );
    // The same with the body actually sent: the 413 must survive the unread body.
    let mut with_body = b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n".to_vec();
    with_body.extend_from_slice(&[b'x'; 5000]);
    refused(srv.addr, &with_body, 413);
    trickle(srv.addr);
    idle(srv.addr);
    vanish(srv.addr);

    // Every connection but the good client's is gone again, and with it what it held.
    let end = Instant::now() + Duration::from_secs(10);
    let mut now = usage(pid);
    while now != before && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
        now = usage(pid);
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, ok) = good.join().expect("the good client failed");
    assert_eq!(
        now, before,
        "{arch}: the server's tree holds more than before"
    );
    assert!(ok >= 10, "{arch}: the good client got only {ok} answers");
    assert_eq!(sent, ok, "{arch}: the good client lost answers");
    stop_server(srv);
}

/// `max_conns` connections are served; one more is answered 503 and closed; once one of
/// them closes, a new connection is served again.
pub fn connection_cap(arch: &str, helpers: usize) {
    let limits = Limits {
        max_conns: 3,
        ..Limits::default()
    };
    let srv = start_with(arch, "none", helpers, 1, limits);
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = connect(srv.addr);
            let mut buf = Vec::new();
            s.write_all(GET).unwrap();
            assert_eq!(read_responses(&mut s, &mut buf, 1)[0].status, 200);
            s
        })
        .collect();
    let mut extra = connect(srv.addr);
    let mut buf = Vec::new();
    let r = read_responses(&mut extra, &mut buf, 1);
    assert_eq!((r[0].status, r[0].close), (503, true), "{arch}: {r:?}");
    assert_closed(&mut extra, &buf);
    // The held ones still work.
    for s in held.iter_mut() {
        let mut buf = Vec::new();
        s.write_all(GET).unwrap();
        assert_eq!(read_responses(s, &mut buf, 1)[0].status, 200);
    }
    // One leaves: a newcomer is served (once the server has seen the close).
    held.pop();
    let served = eventually(Duration::from_secs(5), || {
        let mut s = connect(srv.addr);
        let mut buf = Vec::new();
        s.write_all(GET).unwrap();
        read_responses(&mut s, &mut buf, 1)[0].status == 200
    });
    assert!(
        served,
        "{arch}: no connection served after one of the capped ones left"
    );
    drop(held);
    stop_server(srv);
}

fn stop_server(srv: Server) {
    stop(srv);
}

macro_rules! robust_tests {
    ($($name:ident: $arch:literal, $helpers:expr;)*) => {
        $(
            mod $name {
                #[test]
                fn survives_misbehaving_clients_and_keeps_serving() {
                    super::misbehaving_clients($arch, $helpers);
                }

                #[test]
                fn caps_connections_with_503() {
                    super::connection_cap($arch, $helpers);
                }
            }
        )*
    };
}

robust_tests! {
    event_loop: "event-loop", 1;
    prefork: "prefork", 1;
    thread_workers: "thread-workers", 1;
    thread_per_conn: "thread-per-conn", 1;
    process_per_conn: "process-per-conn", 1;
    loop_helpers: "loop-helpers", 2;
    io_threads: "io-threads", 2;
}
