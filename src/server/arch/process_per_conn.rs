//! `process-per-conn`: one forked process per client connection, the way PostgreSQL's
//! postmaster starts a backend process for every client (and Apache's early CGI-style
//! servers, and inetd, did).
//!
//! # Design
//! A single-threaded acceptor (the server's only thread, so forking is safe) waits for the
//! listener with `poll` for at most [`REAP_EVERY`], accepts every pending connection, and for
//! each forks a child with [`fork_child`]: the child closes its copy of the listener, serves
//! the connection with [`serve_connection`] (blocking calls throughout) and `_exit`s; the
//! parent closes its copy of the socket at once. Children die with the server (`PDEATHSIG`).
//!
//! Reaping: the parent keeps a [`Child`] per live connection process (by pid) and, after every
//! accept and at least every [`REAP_EVERY`] when idle, asks the kernel which children ended
//! (`waitid(WNOWAIT)`) and reaps those through their `Child`, so a finished connection leaves
//! a zombie for at most that long and the cost does not grow with the live connections. `--workers` is not used (only to size
//! the request counters, slot `connection % workers`; children count into the shared map).
//! A failed fork (EAGAIN, ENOMEM) is answered `503` and closed, and accepting goes on; so is
//! a connection accepted while `--max-conns` connection processes live (PostgreSQL's
//! `max_connections`: "sorry, too many clients already").

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::thread_per_conn::{is_fd_exhaustion, is_transient};
use crate::server::blocking_conn::{close_gracefully, serve_connection};
use crate::server::http::write_response;
use crate::server::{ArchDef, ServerCtx};
use crate::sys::{Child, fork_child};
use crate::workload::{Interest, wait_fd};
use nix::sys::wait::{Id, WaitPidFlag, waitid};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "process-per-conn",
    who: "PostgreSQL (postmaster forks a backend per connection)",
    uses_workers: false,
    run,
};

/// Longest time a finished connection process stays a zombie.
const REAP_EVERY: Duration = Duration::from_millis(50);

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    // The listener stays non-blocking: the acceptor drains it after each poll.
    let listen_fd = ctx.listener.as_raw_fd();
    let limits = ctx.cfg.limits;
    let mut children: HashMap<i32, Child> = HashMap::new();
    let mut conn = 0usize;
    loop {
        wait_fd(listen_fd, Interest::Read, Some(REAP_EVERY))
            .map_err(|e| format!("poll(listener): {e}"))?;
        loop {
            let stream = match ctx.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if is_fd_exhaustion(&e) => {
                    crate::sys::limits::warn_throttled("accept", &e);
                    reap(&mut children);
                    std::thread::sleep(Duration::from_millis(10));
                    break;
                }
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(format!("accept: {e}")),
            };
            if children.len() >= limits.max_conns {
                reap(&mut children);
            }
            if children.len() >= limits.max_conns {
                crate::server::guard::answer_and_close(&stream, 503, "too many connections\n");
                continue;
            }
            let id = conn;
            conn += 1;
            let _ = stream.set_nodelay(true);
            ctx.stats.connection(id);
            // The child takes the stream out of the slot (its copy of our memory); ours stays.
            let mut slot = Some(stream);
            let forked = fork_child(|| {
                crate::sys::fd::close_inherited(listen_fd);
                if let Some(s) = slot.take() {
                    serve_connection(s, ctx.handler, ctx.stats, id, id, &limits);
                }
                0
            });
            let stream = slot.expect("only the child takes the stream");
            match forked {
                Ok(child) => {
                    children.insert(child.pid(), child);
                }
                Err(_) => {
                    let mut out = Vec::new();
                    write_response(&mut out, 503, b"no process for this connection\n", false);
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                    let _ = (&stream).write_all(&out);
                    close_gracefully(&stream);
                }
            }
            // The parent's copy of the socket closes here (`stream` drops); the child owns
            // the connection now.
            drop(stream);
            reap(&mut children);
        }
        reap(&mut children);
    }
}

/// Reaps every connection process that has ended; keeps the rest. Asks the kernel which
/// children ended (`waitid` with `WNOWAIT`, which reaps nothing) so the cost is per ended
/// child, not per live one; then reaps each through its [`Child`]. A child that is not a
/// connection's (a process the handler started) falls back to a sweep over every `Child`.
fn reap(children: &mut HashMap<i32, Child>) {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    loop {
        let pid = match waitid(Id::All, flags) {
            Ok(status) => match status.pid() {
                Some(pid) => pid.as_raw(),
                None => return,
            },
            Err(_) => return,
        };
        match children.remove(&pid) {
            Some(mut c) => {
                let _ = c.try_wait();
            }
            None => {
                children.retain(|_, c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use crate::server::blocking_conn::testkit::*;

    crate::server::blocking_conn::shared_arch_tests!("process-per-conn", 1);

    #[test]
    fn leaves_no_zombies_after_connections_close() {
        let s = start("process-per-conn", "none", 1);
        let pid = s.child.pid();
        for _ in 0..50 {
            let mut c = connect(s.addr);
            c.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut buf = Vec::new();
            assert_eq!(read_responses(&mut c, &mut buf, 1)[0].status, 200);
            assert_closed(&mut c, &buf);
        }
        // Every connection process has ended; within a short grace the server has reaped
        // them all: no child left, zombie or not.
        let no_children = eventually(Duration::from_secs(3), || children_of(pid).is_empty());
        let zombies: Vec<i32> = children_of(pid)
            .into_iter()
            .filter(|&c| state_of(c) == Some('Z'))
            .collect();
        assert!(no_children, "zombie children left: {zombies:?}");
        // And a process that serves a connection still open is a live child, not a zombie.
        let mut open = connect(s.addr);
        open.write_all(GET).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_responses(&mut open, &mut buf, 1)[0].status, 200);
        let kids = children_of(pid);
        assert_eq!(kids.len(), 1, "{kids:?}");
        assert_ne!(state_of(kids[0]), Some('Z'));
        stop(s);
    }
}
