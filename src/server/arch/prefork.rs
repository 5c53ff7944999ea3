//! `prefork`: a master process and W forked worker processes, each with its own epoll loop,
//! as Nginx runs (`worker_processes W`); Apache's prefork MPM and PHP-FPM share the shape with
//! one connection per process instead of a loop.
//!
//! # Design
//! The process that calls `run` is the master. It forks W workers with `fork_child` while it
//! is still single-threaded; worker `i` pins itself to `cores[i % len]` (with `--pin`) and runs
//! [`loop_core::run`], counting into `stats` slot `i`. Listening sockets:
//! - with `--reuseport`, one `SO_REUSEPORT` socket per worker, all created by the master (the
//!   server's own socket is worker 0's) and inherited by the workers, as Nginx's
//!   `listen … reuseport` does: the kernel spreads new connections over the sockets by a hash
//!   of the 4-tuple, and because the master keeps every socket open, a worker's death loses
//!   nothing queued on its socket: the replacement inherits the same socket and drains it.
//!   (Binding the sockets in the workers instead would leave the master's own socket in the
//!   port's group with nobody accepting on it, and would reset a dead worker's queue.)
//! - without, every worker accepts on the one inherited socket. Each worker's epoll holds it,
//!   so a new connection wakes every idle worker and all but one find nothing to accept: the
//!   thundering herd (Nginx answers it with `accept_mutex` or `EPOLLEXCLUSIVE`; mio offers
//!   neither, so here it is real and measurable).
//!
//! The master then supervises: it polls its workers (`try_wait` every few milliseconds) and
//! when one dies it logs to stderr and forks a replacement with the same index, as Nginx's
//! master does. The master never returns while the server runs; workers get SIGKILL when the
//! master dies (`PR_SET_PDEATHSIG`).
//!
//! # Timing model
//! Up to W cores of work with no shared memory between workers but the counters; within a
//! worker, the same serialisation as `event-loop`. A connection stays in the process that
//! accepted it, so load can be unbalanced when a few connections are busy.

use std::net::TcpListener;
use std::time::Duration;

use crate::server::loop_core::{self, LoopConfig};
use crate::server::{ArchDef, ServerCtx, bind_listener};
use crate::sys::{Child, fork_child};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "prefork",
    who: "Nginx: a master and W forked worker processes, one epoll loop each",
    uses_workers: true,
    run,
};

/// How often the master checks on its workers.
const SUPERVISE_EVERY: Duration = Duration::from_millis(10);

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    let workers = ctx.cfg.workers.max(1);
    let mut listeners: Vec<TcpListener> = Vec::new();
    if ctx.cfg.reuseport {
        for _ in 1..workers {
            listeners.push(
                bind_listener(ctx.addr, true).map_err(|e| format!("binding {}: {e}", ctx.addr))?,
            );
        }
    }
    // Worker i accepts on `socket(i)`: the server's socket for worker 0 (and for every worker
    // when the listener is shared).
    let socket = |i: usize| -> &TcpListener {
        if ctx.cfg.reuseport && i > 0 {
            &listeners[i - 1]
        } else {
            &ctx.listener
        }
    };
    let spawn = |i: usize| fork_child(|| worker(ctx, i, socket(i)));
    let mut children: Vec<Option<Child>> = Vec::with_capacity(workers);
    for i in 0..workers {
        children.push(Some(
            spawn(i).map_err(|e| format!("fork (worker {i}): {e}"))?,
        ));
    }
    loop {
        std::thread::sleep(SUPERVISE_EVERY);
        for (i, slot) in children.iter_mut().enumerate() {
            if let Some(child) = slot {
                match child.try_wait() {
                    Ok(None) => continue,
                    Ok(Some(exit)) => eprintln!(
                        "concbench serve: prefork: worker {i} (pid {}) ended ({}); starting a replacement",
                        child.pid(),
                        exit.describe()
                    ),
                    Err(e) => eprintln!(
                        "concbench serve: prefork: waiting for worker {i} (pid {}): {e}; replacing it",
                        child.pid()
                    ),
                }
            }
            // Dropping a child that is still there kills and reaps it.
            *slot = None;
            match spawn(i) {
                Ok(c) => *slot = Some(c),
                Err(e) => eprintln!("concbench serve: prefork: fork (worker {i}): {e}; retrying"),
            }
        }
    }
}

/// Body of worker process `i`: pin, then serve on `listener` until killed.
fn worker(ctx: &ServerCtx<'_>, i: usize, listener: &TcpListener) -> i32 {
    if !ctx.cfg.cores.is_empty()
        && let Err(e) = crate::sys::pin_current(ctx.cfg.cores[i % ctx.cfg.cores.len()])
    {
        eprintln!("concbench serve: prefork worker {i}: {e}");
        return 1;
    }
    let r = listener
        .try_clone()
        .map_err(|e| format!("dup(listener): {e}"))
        .and_then(|l| loop_core::run(&LoopConfig::new(ctx, i), vec![l]));
    if let Err(e) = r {
        eprintln!("concbench serve: prefork worker {i}: {e}");
    }
    1
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;

    use crate::server::loop_core::testkit::*;

    #[test]
    fn serves_http_on_reuseport_listeners() {
        let srv = start("prefork", 2, "none", true);
        wait_children(srv.child.pid(), 2);
        http_behaviour(&srv);
        srv.stop();
    }

    #[test]
    fn serves_http_on_a_shared_listener() {
        let srv = start("prefork", 2, "none", false);
        http_behaviour(&srv);
        srv.stop();
    }

    #[test]
    fn reuseport_spreads_connections_over_workers() {
        let srv = start("prefork", 2, "none", true);
        many(srv.addr, 400, 1);
        let per = srv.stats.requests();
        assert!(per.iter().all(|&n| n >= 40), "unbalanced: {per:?}");
        srv.stop();
    }

    #[test]
    fn multiplexes_sleeping_handlers() {
        let srv = start("prefork", 2, "sleep:delay=2ms", true);
        multiplexes(&srv, 100, 5, Duration::from_millis(2));
        srv.stop();
    }

    #[test]
    fn multiplexes_downstream_handlers() {
        let srv = start("prefork", 2, "downstream:delay=1ms", true);
        multiplexes(&srv, 200, 5, Duration::from_millis(1));
        srv.stop();
    }

    #[test]
    fn master_replaces_a_killed_worker() {
        let srv = start("prefork", 2, "none", true);
        let master = srv.child.pid();
        many(srv.addr, 50, 2);
        let before = wait_children(master, 2);
        kill(Pid::from_raw(before[0]), Signal::SIGKILL).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = children_of(master);
            if now.len() == 2 && !now.contains(&before[0]) {
                break;
            }
            assert!(Instant::now() < deadline, "no replacement: {now:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Both workers serve again: both counters move over 400 new connections.
        let counts = srv.stats.requests();
        many(srv.addr, 400, 1);
        let after = srv.stats.requests();
        assert!(
            after.iter().zip(&counts).all(|(a, b)| a - b >= 40),
            "{counts:?} -> {after:?}"
        );
        srv.stop();
    }
}
