//! Backends over real sockets, through the CLI: every architecture answers HTTP/1.1 (keep-alive
//! and pipelined), wrk gets zero errors from each, the generator's counts match the server's,
//! `concbench load` works against nginx, and no process outlives its server. Loopback only.
//! wrk and nginx come from `.ci/run`'s install step; a test that needs one fails (it does not
//! skip) when it is missing.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use concbench::report::result::Status;

/// A `concbench serve` child and the address it listens on.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(arch: &str, extra: &[&str]) -> Served {
    let mut args = vec![
        "serve",
        "--arch",
        arch,
        "--workers",
        "2",
        "--handler",
        "none",
    ];
    args.extend_from_slice(extra);
    let mut cmd = Command::new(bin());
    cmd.args(&args).stderr(Stdio::null());
    let (child, addr) = spawn_serve(cmd, arch);
    Served { child, addr }
}

fn extra_for(arch: &str) -> Vec<&'static str> {
    match arch {
        "prefork" | "thread-workers" => vec!["--reuseport"],
        _ => vec![],
    }
}

/// Reads `n` complete responses (Content-Length framed) from `s`; returns their status codes.
fn read_responses(s: &mut TcpStream, n: usize) -> Vec<u16> {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let mut codes = Vec::new();
    let mut chunk = [0u8; 4096];
    while codes.len() < n {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut r = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = r.parse(&buf) {
            let len: usize = r
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= head + len {
                codes.push(r.code.unwrap_or(0));
                buf.drain(..head + len);
                continue;
            }
        }
        let k = s.read(&mut chunk).expect("response");
        assert!(k > 0, "connection closed after {} responses", codes.len());
        buf.extend_from_slice(&chunk[..k]);
    }
    codes
}

#[test]
fn every_architecture_answers_keep_alive_and_pipelined_http() {
    become_subreaper();
    for arch in concbench::server::ARCHS {
        let srv = serve(arch.id, &extra_for(arch.id));
        let mut s = TcpStream::connect(&srv.addr).unwrap();
        // Two keep-alive requests, one after the other.
        for _ in 0..2 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            assert_eq!(read_responses(&mut s, 1), vec![200], "{}", arch.id);
        }
        // Three pipelined requests in one write: three responses, in order.
        s.write_all(b"GET /1 HTTP/1.1\r\nHost: t\r\n\r\nGET /2 HTTP/1.1\r\nHost: t\r\n\r\nGET /3 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        assert_eq!(
            read_responses(&mut s, 3),
            vec![200, 200, 200],
            "{}",
            arch.id
        );
        // A malformed request gets 400.
        let mut bad = TcpStream::connect(&srv.addr).unwrap();
        bad.write_all(b"NOT HTTP AT ALL\r\n\r\n").unwrap();
        assert_eq!(read_responses(&mut bad, 1), vec![400], "{}", arch.id);
        drop(srv);
        assert_eq!(
            leftover_children(Duration::from_secs(3)),
            Vec::<i32>::new(),
            "{}: processes outlived the server",
            arch.id
        );
    }
}

fn need(tool: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !path.is_empty(),
        "{tool} is required for this test: `apt-get install {tool}` (.ci/run installs it)"
    );
    path
}

#[test]
fn wrk_gets_zero_errors_from_every_architecture() {
    become_subreaper();
    let wrk = need("wrk");
    for arch in concbench::server::ARCHS {
        let srv = serve(arch.id, &extra_for(arch.id));
        let o = Command::new(&wrk)
            .args(["-t1", "-c20", "-d1s", &format!("http://{}/", srv.addr)])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}: wrk failed: {text}", arch.id);
        assert!(!text.contains("Socket errors"), "{}: {text}", arch.id);
        assert!(!text.contains("Non-2xx"), "{}: {text}", arch.id);
        let requests: u64 = text
            .lines()
            .find(|l| l.contains("requests in"))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        assert!(requests > 0, "{}: {text}", arch.id);
        drop(srv);
    }
    assert_eq!(leftover_children(Duration::from_secs(3)), Vec::<i32>::new());
}

#[test]
fn server_cells_measure_every_architecture_and_counts_match() {
    become_subreaper();
    let (dir, path) = suite(
        r#"
warmup = "100ms"
duration = "300ms"
repeats = 1
[[server]]
arch = ["event-loop", "prefork", "thread-workers", "thread-per-conn", "process-per-conn", "loop-helpers", "io-threads"]
workers = 2
connections = 8
reuseport = true
handler = ["none", "sleep:delay=1ms"]
"#,
    );
    let (o, r) = run_suite(dir.path(), &path, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(r.servers.len(), 14);
    for s in &r.servers {
        assert_eq!(s.status, Status::Ok, "{}: {:?}", s.id, s.error);
        assert_eq!(s.errors, 0, "{}", s.id);
        assert!(
            s.requests_per_sec.median > 0.0 && s.latency_ns.count > 0,
            "{}",
            s.id
        );
        assert!(s.cpu_ns_per_request > 0.0, "{}: {:?}", s.id, s);
        let w = &s.samples[0];
        // The server may have answered requests whose responses the generator stopped waiting
        // for at the very end (in flight), never fewer than the generator received.
        assert!(
            w.server_requests >= w.generator_responses
                && w.server_requests - w.generator_responses <= s.connections as u64,
            "{}: server {} vs generator {}",
            s.id,
            w.server_requests,
            w.generator_responses
        );
        if s.arch == "prefork" || s.arch == "thread-workers" {
            assert_eq!(s.per_worker_requests.len(), 2, "{}", s.id);
        }
        if s.arch == "prefork" || s.arch == "process-per-conn" {
            assert!(
                s.server_processes > 1,
                "{}: {} processes",
                s.id,
                s.server_processes
            );
        }
        if s.handler.starts_with("sleep") {
            // Every request waited 1 ms.
            assert!(s.latency_ns.p50 >= 1_000_000, "{}", s.id);
        }
    }
    assert_eq!(leftover_children(Duration::from_secs(3)), Vec::<i32>::new());
}

#[test]
fn load_generator_works_against_nginx() {
    become_subreaper();
    let nginx = need("nginx");
    let dir = tempfile::tempdir().unwrap();
    // A free port: bind, read it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("nginx.conf");
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\ndaemon off;\nerror_log {0}/logs/error.log;\npid {0}/nginx.pid;\nevents {{}}\nhttp {{\n access_log off;\n client_body_temp_path {0};\n proxy_temp_path {0};\n fastcgi_temp_path {0};\n uwsgi_temp_path {0};\n scgi_temp_path {0};\n server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"ok\"; }} }}\n}}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut ng = Command::new(nginx)
        .args([
            "-c",
            conf.to_str().unwrap(),
            "-p",
            dir.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait (bounded) for it to listen.
    let target = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(&target).is_err() {
        assert!(std::time::Instant::now() < deadline, "nginx never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = run(&[
        "load",
        "--target",
        &target,
        "--connections",
        "10",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--json",
    ]);
    // Stop nginx gracefully (SIGQUIT) so its master takes its worker down, then reap it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ng.id() as i32),
        nix::sys::signal::Signal::SIGQUIT,
    )
    .unwrap();
    ng.wait().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: concbench::load::LoadReport = serde_json::from_slice(&o.stdout).unwrap();
    assert!(report.completed > 0);
    let e = report.errors;
    assert_eq!(
        e.connect + e.io + e.timeout + e.status + e.closed + e.protocol,
        0,
        "{e:?}"
    );
    assert_eq!(leftover_children(Duration::from_secs(3)), Vec::<i32>::new());
}
