//! Behaviour tests of the load generator against tiny in-test HTTP servers on 127.0.0.1 (a std
//! listener, a thread per connection). They check counts, error accounting and the
//! open-loop latency correction, never speed.
//!
//! # Timing model
//! The servers here count a response right before writing it, so once the generator's run
//! has drained, the server's count and the generator's run total must agree exactly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::*;

#[derive(Debug, Clone, Copy)]
enum Behave {
    /// 200 keep-alive, at once.
    Ok,
    /// 500 keep-alive, at once.
    Fail,
    /// 200, then close the connection (without saying so) after every `n` responses.
    CloseEvery(u64),
    /// 200 after sleeping this long.
    Slow(Duration),
    /// Read requests, never answer.
    Silent,
}

/// Starts a server; returns its address and the count of responses it wrote.
fn server(b: Behave) -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let c = c.clone();
            std::thread::spawn(move || serve_conn(s, b, &c));
        }
    });
    (addr, count)
}

fn serve_conn(mut s: TcpStream, b: Behave, count: &AtomicU64) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    let mut served = 0u64;
    let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok";
    let fail = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops";
    loop {
        // One request ends at its blank line (the generator sends bodiless GETs).
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            let resp: &[u8] = match b {
                Behave::Fail => fail,
                Behave::Silent => continue,
                Behave::Slow(d) => {
                    std::thread::sleep(d);
                    ok
                }
                Behave::Ok | Behave::CloseEvery(_) => ok,
            };
            count.fetch_add(1, Ordering::SeqCst);
            if s.write_all(resp).is_err() {
                return;
            }
            served += 1;
            if let Behave::CloseEvery(n) = b
                && served.is_multiple_of(n)
            {
                return;
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn cfg(addr: SocketAddr, conns: usize, threads: usize) -> LoadConfig {
    LoadConfig {
        warmup: Duration::from_millis(100),
        threads,
        ..LoadConfig::new(addr.to_string(), conns, Duration::from_millis(400))
    }
}

#[test]
fn closed_loop_counts_match_the_server() {
    let (addr, served) = server(Behave::Ok);
    let r = run(&cfg(addr, 6, 2)).unwrap();
    assert_eq!(r.mode, "closed");
    assert!(r.completed > 0, "{r:?}");
    assert!(r.requests_per_sec > 0.0);
    assert_eq!(r.errors.total(), 0, "{:?}", r.errors);
    assert_eq!(r.totals.abandoned, 0);
    // Every response the server wrote, in warmup, window and drain, was received, and every
    // request sent was answered.
    assert_eq!(r.totals.responses, served.load(Ordering::SeqCst));
    assert_eq!(r.totals.sent, r.totals.responses);
    assert!(
        r.totals.responses > r.completed,
        "warmup responses are outside the window"
    );
    // Closed loop: intended = actual send, so both histograms hold the same values.
    assert_eq!(r.latency_corrected, r.latency_uncorrected);
    assert!(r.latency_corrected.count > 0);
    assert_eq!(
        r.per_second.iter().map(|s| s.completed).sum::<u64>(),
        r.completed
    );
    assert_eq!(r.cpu.threads.len(), 2);
    assert!(r.cpu.threads.iter().all(|t| t.span_ns > 0));
    assert!(r.schedule.is_none());
    // The JSON form round-trips.
    let j = serde_json::to_string(&r).unwrap();
    let back: LoadReport = serde_json::from_str(&j).unwrap();
    assert_eq!(back.completed, r.completed);
    assert!(render(&r).contains("req/s"));
}

#[test]
fn non_2xx_responses_are_errors() {
    let (addr, _) = server(Behave::Fail);
    let r = run(&cfg(addr, 2, 1)).unwrap();
    assert!(r.completed > 0);
    assert_eq!(
        r.errors.status, r.completed,
        "every response in the window is a 500"
    );
    assert_eq!(r.errors.total(), r.errors.status);
}

#[test]
fn closed_connections_are_counted_and_replaced() {
    let (addr, served) = server(Behave::CloseEvery(5));
    let r = run(&cfg(addr, 2, 1)).unwrap();
    assert!(r.errors.closed > 0, "{:?}", r.errors);
    // Reconnected: far more responses than the 5 per connection before the first close.
    assert!(r.completed > 20, "{r:?}");
    assert_eq!(r.totals.responses, served.load(Ordering::SeqCst));
}

#[test]
fn unanswered_requests_time_out() {
    let (addr, _) = server(Behave::Silent);
    let c = LoadConfig {
        timeout: Duration::from_millis(50),
        ..cfg(addr, 1, 1)
    };
    let r = run(&c).unwrap();
    assert!(r.errors.timeout >= 3, "{:?}", r.errors);
    assert_eq!(r.completed, 0);
    assert!(r.warnings.iter().any(|w| w.contains("no response")));
}

#[test]
fn open_loop_shows_coordinated_omission() {
    // 2 connections, 20 ms per response: the server answers at most 100 req/s; ask for 400.
    let (addr, _) = server(Behave::Slow(Duration::from_millis(20)));
    let c = LoadConfig {
        rate: Some(400.0),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(600),
        ..cfg(addr, 2, 1)
    };
    let r = run(&c).unwrap();
    assert_eq!(r.mode, "open");
    let (cor, unc) = (&r.latency_corrected, &r.latency_uncorrected);
    assert!(unc.count > 0);
    assert_eq!(cor.count, unc.count);
    // Uncorrected sees the server's 20 ms; corrected adds the growing wait behind it.
    assert!(
        unc.p99_ns >= 19_000_000 && unc.p99_ns < 200_000_000,
        "{unc:?}"
    );
    assert!(
        cor.p99_ns > 2 * unc.p99_ns,
        "corrected {cor:?} vs uncorrected {unc:?}"
    );
    let s = r.schedule.unwrap();
    // 400 req/s over 600 ms.
    assert!((235..=245).contains(&s.due), "{s:?}");
    assert!(s.sent < s.due);
    assert!(s.late_waiting > s.late_generator, "{s:?}");
    assert!(
        r.warnings.iter().any(|w| w.contains("fell behind")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn open_loop_keeps_an_easy_schedule() {
    let (addr, served) = server(Behave::Ok);
    let c = LoadConfig {
        rate: Some(500.0),
        ..cfg(addr, 4, 2)
    };
    let r = run(&c).unwrap();
    let s = r.schedule.unwrap();
    assert_eq!(s.due, 200, "500 req/s over 400 ms");
    assert_eq!(s.sent, s.due);
    // Intended in the window = the requests due in it.
    assert_eq!(r.latency_corrected.count, s.due);
    assert!(
        (190..=210).contains(&r.completed),
        "completed {} vs 200 due",
        r.completed
    );
    assert_eq!(r.totals.responses, served.load(Ordering::SeqCst));
}

#[test]
fn non_loopback_target_is_refused() {
    let c = LoadConfig::new("192.0.2.1:80", 1, Duration::from_millis(10));
    let e = run(&c).unwrap_err();
    assert!(e.contains("--allow-remote"), "{e}");
    let args = LoadArgs {
        target: "192.0.2.1:80".into(),
        connections: 1,
        rate: None,
        duration: Duration::from_millis(10),
        warmup: Duration::ZERO,
        threads: 1,
        path: "/".into(),
        pin_cores: Vec::new(),
        timeout: Duration::from_secs(1),
        allow_remote: false,
        json: false,
    };
    assert_eq!(main(args), ExitCode::from(2));
    // Loopback in either family is accepted by validation.
    assert!(
        LoadConfig::new("[::1]:80", 1, Duration::from_secs(1))
            .validate()
            .is_ok()
    );
    assert!(
        LoadConfig::new("localhost:80", 1, Duration::from_secs(1))
            .validate()
            .is_ok()
    );
}

#[test]
fn bad_input_is_refused() {
    let ok = LoadConfig::new("127.0.0.1:80", 2, Duration::from_secs(1));
    assert!(ok.validate().is_ok());
    for bad in [
        LoadConfig {
            connections: 0,
            ..ok.clone()
        },
        LoadConfig {
            threads: 3,
            ..ok.clone()
        },
        LoadConfig {
            rate: Some(0.0),
            ..ok.clone()
        },
        LoadConfig {
            path: "x".into(),
            ..ok.clone()
        },
        LoadConfig {
            target: "nohost".into(),
            ..ok.clone()
        },
        LoadConfig {
            duration: Duration::ZERO,
            ..ok.clone()
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn refused_connection_fails_the_run() {
    // Bind then drop: nothing listens on the port.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = run(&cfg(addr, 1, 1)).unwrap_err();
    assert!(e.contains("cannot connect"), "{e}");
}
