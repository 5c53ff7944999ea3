//! `thread-per-conn`: one OS thread per client connection, the way SQL Server (its worker per
//! session, in thread mode) and MySQL (`one-thread-per-connection`, its default) serve clients.
//!
//! # Design
//! The listener is switched to blocking and one acceptor thread loops on `accept`; every
//! accepted connection gets `TCP_NODELAY` and a new scoped thread that runs
//! [`serve_connection`]: blocking reads, the handler op run with blocking calls, blocking
//! writes. The kernel's scheduler is the only multiplexer (`--workers` is not used; it only
//! sizes the request counters, which are kept per `connection % workers`).
//!
//! **Thread cap.** At most `--max-conns` connection threads live at once (SQL Server's
//! `max worker threads`, MySQL's `max_connections`). A connection accepted past the cap is
//! answered `503 Service Unavailable` and closed at once, as MySQL answers "Too many
//! connections", rather than left waiting in the accept backlog, where the client could not
//! tell a full server from a hung one and its connect would succeed (the kernel completes the
//! handshake) without anything being served. When the kernel refuses a new thread (EAGAIN:
//! thread or memory limits) the connection gets the same 503, and accepting goes on.
//! Running out of descriptors on `accept` (EMFILE/ENFILE) backs off 10 ms and retries.

use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::server::blocking_conn::{close_gracefully, serve_connection};
use crate::server::http::write_response;
use crate::server::{ArchDef, ServerCtx};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "thread-per-conn",
    who: "SQL Server, MySQL (one thread per connection)",
    uses_workers: false,
    run,
};

/// Stack of a connection thread: the handlers' ops keep their data on the heap.
const STACK: usize = 512 * 1024;

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    ctx.listener
        .set_nonblocking(false)
        .map_err(|e| format!("making the listener blocking: {e}"))?;
    let limits = ctx.cfg.limits;
    let live = AtomicUsize::new(0);
    let live = &live;
    std::thread::scope(|scope| {
        let mut conn = 0usize;
        loop {
            let stream = match ctx.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if is_fd_exhaustion(&e) => {
                    crate::sys::limits::warn_throttled("accept", &e);
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                // The client gave up before we accepted it, a signal: keep accepting.
                Err(e) if is_transient(&e) => continue,
                Err(e) => return Err(format!("accept: {e}")),
            };
            if live.load(Ordering::Acquire) >= limits.max_conns {
                crate::server::guard::answer_and_close(&stream, 503, "too many connections\n");
                continue;
            }
            let id = conn;
            conn += 1;
            let _ = stream.set_nodelay(true);
            ctx.stats.connection(id);
            // The thread gets its own handle; if spawning fails we still hold one to answer.
            let mine = match stream.try_clone() {
                Ok(s) => s,
                Err(_) => continue,
            };
            // Counted before the spawn, so a thread that ends at once cannot take it below 0.
            live.fetch_add(1, Ordering::AcqRel);
            let spawned = std::thread::Builder::new()
                .name(format!("conn-{id}"))
                .stack_size(STACK)
                .spawn_scoped(scope, move || {
                    serve_connection(mine, ctx.handler, ctx.stats, id, id, &limits);
                    live.fetch_sub(1, Ordering::AcqRel);
                });
            if spawned.is_err() {
                live.fetch_sub(1, Ordering::AcqRel);
                let mut out = Vec::new();
                write_response(&mut out, 503, b"no thread for this connection\n", false);
                let mut s = &stream;
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(&out);
                close_gracefully(&stream);
            }
        }
    })
}

/// Out of descriptors: retry after a pause rather than spin.
pub(crate) fn is_fd_exhaustion(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Errors after which `accept` should simply be called again.
pub(crate) fn is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Interrupted | ErrorKind::ConnectionAborted | ErrorKind::WouldBlock
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EPROTO | libc::ENOBUFS | libc::ENOMEM | libc::EPERM)
    )
}

#[cfg(test)]
mod tests {
    use crate::server::blocking_conn::testkit::*;

    crate::server::blocking_conn::shared_arch_tests!("thread-per-conn", 1);
}
