//! `event-loop`: one thread multiplexes every connection on one epoll loop, as Redis (its
//! single command thread) and Node.js (its JavaScript thread) do.
//!
//! # Design
//! The thread that calls `run` runs [`loop_core::run`] on the server's listener: it accepts,
//! reads, frames, steps each connection's handler task and writes, all by itself. With
//! `--pin` it pins itself to the first allowed core. `--workers` means nothing here.
//!
//! # Timing model
//! One core's worth of work at most: requests of all connections queue behind each other's
//! CPU steps and behind any disk I/O a step blocks on, while waiting ops (a downstream call, a
//! sleep) overlap freely. See `loop_core` for the per-request costs.

use crate::server::loop_core::{self, LoopConfig};
use crate::server::{ArchDef, ServerCtx};

/// Registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "event-loop",
    who: "Redis, Node.js: one thread, one epoll loop, every connection",
    uses_workers: false,
    run,
};

fn run(ctx: &ServerCtx<'_>) -> Result<(), String> {
    if let Some(&core) = ctx.cfg.cores.first() {
        crate::sys::pin_current(core)?;
    }
    let listener = ctx
        .listener
        .try_clone()
        .map_err(|e| format!("dup(listener): {e}"))?;
    loop_core::run(&LoopConfig::new(ctx, 0), vec![listener])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::server::loop_core::testkit::*;

    #[test]
    fn serves_http_keep_alive_pipelined_and_refusals() {
        let srv = start("event-loop", 1, "none", false);
        http_behaviour(&srv);
        assert!(srv.stats.requests()[0] >= 1000);
        assert!(srv.stats.connections()[0] >= 200);
        srv.stop();
    }

    #[test]
    fn multiplexes_sleeping_handlers() {
        let srv = start("event-loop", 1, "sleep:delay=2ms", false);
        multiplexes(&srv, 100, 5, Duration::from_millis(2));
        srv.stop();
    }

    #[test]
    fn multiplexes_downstream_handlers() {
        let srv = start("event-loop", 1, "downstream:delay=1ms", false);
        multiplexes(&srv, 200, 5, Duration::from_millis(1));
        srv.stop();
    }

    #[test]
    fn holds_10k_connections() {
        let srv = start("event-loop", 1, "none", false);
        hold(srv.addr, 10_000);
        srv.stop();
    }
}
