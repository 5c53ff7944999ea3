//! `thread-workers`: W worker threads in one process, each with its own epoll loop, as Envoy
//! runs its workers (and as Nginx would with threads): a connection stays on the worker that
//! accepted it for its whole life.
//!
//! # Design
//! The calling thread spawns W threads and then only waits on them. Each thread (pinned to
//! `cores[i % len]` with `--pin`) runs [`loop_core::run`] on its own listener:
//! - with `--reuseport`, its own `SO_REUSEPORT` socket on the server's address (worker 0 uses
//!   the server's socket, which is already in the port's group; the others bind theirs here,
//!   before any thread starts, so a failure is reported, not half-started), and the kernel
//!   spreads new connections over them by a hash of the 4-tuple;
//! - without, a `dup` of the one shared listener: every idle worker is woken by a new
//!   connection and all but one find nothing to accept (the thundering herd; Envoy's default
//!   since 1.23 is to let the kernel balance with reuseport for the same reason).
//!
//! Threads share the handler and the counters; a fatal error in one worker ends the process,
//! as a crashed Envoy worker takes Envoy down.
//!
//! # Timing model
//! Up to W cores of work; within a worker, the same serialisation as `event-loop`. Imbalance
//! is possible: a worker whose connections are busy cannot hand them to an idle one.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use crate::server::loop_core::{self, LoopConfig};
use crate::server::{ArchDef, ServerCtx, bind_listener};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "thread-workers",
    who: "Envoy: W worker threads, one epoll loop each, a connection stays on its worker",
    uses_workers: true,
    run,
};

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    let workers = ctx.cfg.workers.max(1);
    let mut listeners = Vec::with_capacity(workers);
    for i in 0..workers {
        let l = if ctx.cfg.reuseport && i > 0 {
            bind_listener(ctx.addr, true).map_err(|e| format!("binding {}: {e}", ctx.addr))?
        } else {
            ctx.listener
                .try_clone()
                .map_err(|e| format!("dup(listener): {e}"))?
        };
        listeners.push(l);
    }
    let (tx, rx) = mpsc::channel::<(usize, String)>();
    std::thread::scope(|scope| {
        for (i, l) in listeners.into_iter().enumerate() {
            let tx = tx.clone();
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn_scoped(scope, move || {
                    let r = catch_unwind(AssertUnwindSafe(|| {
                        if !ctx.cfg.cores.is_empty() {
                            crate::sys::pin_current(ctx.cfg.cores[i % ctx.cfg.cores.len()])?;
                        }
                        loop_core::run(&LoopConfig::new(ctx, i), vec![l])
                    }));
                    let why = match r {
                        Ok(Ok(())) => "returned".to_string(),
                        Ok(Err(e)) => e,
                        Err(_) => "panicked".to_string(),
                    };
                    let _ = tx.send((i, why));
                })
                .map_err(|e| format!("spawning worker {i}: {e}"))?;
        }
        drop(tx);
        // Workers only end on a fatal error; the scope would wait for the others forever, so
        // the first failure ends the process.
        if let Ok((i, why)) = rx.recv() {
            eprintln!("concbench serve: thread-workers: worker {i} failed: {why}");
            crate::sys::process::exit_now(1);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::server::loop_core::testkit::*;

    #[test]
    fn serves_http_on_reuseport_listeners() {
        let srv = start("thread-workers", 2, "none", true);
        http_behaviour(&srv);
        srv.stop();
    }

    #[test]
    fn serves_http_on_a_shared_listener() {
        let srv = start("thread-workers", 2, "none", false);
        http_behaviour(&srv);
        srv.stop();
    }

    #[test]
    fn reuseport_spreads_connections_over_workers() {
        let srv = start("thread-workers", 2, "none", true);
        many(srv.addr, 400, 1);
        let per = srv.stats.requests();
        assert!(per.iter().all(|&n| n >= 40), "unbalanced: {per:?}");
        srv.stop();
    }

    #[test]
    fn multiplexes_sleeping_handlers() {
        let srv = start("thread-workers", 2, "sleep:delay=2ms", true);
        multiplexes(&srv, 100, 5, Duration::from_millis(2));
        srv.stop();
    }

    #[test]
    fn multiplexes_downstream_handlers() {
        let srv = start("thread-workers", 2, "downstream:delay=1ms", true);
        multiplexes(&srv, 200, 5, Duration::from_millis(1));
        srv.stop();
    }

    #[test]
    fn holds_10k_connections() {
        let srv = start("thread-workers", 2, "none", true);
        hold(srv.addr, 10_000);
        srv.stop();
    }
}
