//! Backends over real sockets: one HTTP/1.1 keep-alive server per architecture, whose request
//! handler runs a concbench workload op, so the lecture's backends are measured as servers:
//! Redis's single loop, Nginx's master and worker processes, Envoy's worker threads,
//! PostgreSQL's process per connection, SQL Server's threads, Node's loop with its helper pool,
//! Redis 6's I/O threads.
//!
//! Every architecture lives in `arch/` behind one entry point, [`ArchDef::run`], and shares
//! the HTTP framing (`http`), the handler (`handler`), the listener helpers and the per-worker
//! request counters ([`Stats`], in `MAP_SHARED` memory so a parent that forked the server reads
//! the balance across workers). A server runs until it is killed; its workers die with it.
//!
//! Every architecture enforces the same [`http::Limits`] (`serve` flags, `guard::LimitArgs`):
//! malformed requests get 400, oversized heads 431, bodies over the limit 413, each followed
//! by a close; a request not whole `header_timeout` after its first byte gets 408 and a
//! close (slow clients that trickle bytes); idle keep-alive connections close after
//! `idle_timeout`; past `max_conns` a new connection is answered 503 and closed; each
//! connection's buffered input and output are capped. `robust_tests` checks all of it on
//! every architecture while a well-behaved client is served throughout.

pub mod arch;
pub mod blocking_conn;
pub mod conn_io;
pub mod guard;
pub mod handler;
pub mod http;
#[cfg(test)]
mod http_props;
pub mod loop_core;
#[cfg(test)]
mod robust_tests;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use self::handler::{Handler, HandlerSpec};
use self::http::Limits;
use crate::sys::SharedSlice;

/// How the server's workers are organised.
pub struct ArchDef {
    /// Id used on the command line and in suites (kebab-case).
    pub id: &'static str,
    /// Who runs a backend this way.
    pub who: &'static str,
    /// Whether `--workers` means something for it.
    pub uses_workers: bool,
    /// Runs the server on `ctx` until killed (returns only on a fatal error).
    pub run: fn(&ServerCtx<'_>) -> Result<(), String>,
}

impl std::fmt::Debug for ArchDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchDef").field("id", &self.id).finish()
    }
}

/// Every architecture concbench serves with.
pub static ARCHS: &[ArchDef] = &[
    arch::event_loop::ARCH,
    arch::prefork::ARCH,
    arch::thread_workers::ARCH,
    arch::thread_per_conn::ARCH,
    arch::process_per_conn::ARCH,
    arch::loop_helpers::ARCH,
    arch::io_threads::ARCH,
];

/// Looks an architecture up by id; the error lists the known ids.
pub fn find_arch(id: &str) -> Result<&'static ArchDef, String> {
    crate::registry::find(ARCHS.iter(), |a| a.id, "architecture", id)
}

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The architecture.
    pub arch: &'static ArchDef,
    /// Worker processes or threads (where the architecture has them).
    pub workers: usize,
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// What each request does.
    pub handler: HandlerSpec,
    /// One SO_REUSEPORT listener per worker instead of one shared listener (prefork,
    /// thread-workers).
    pub reuseport: bool,
    /// Pin worker i to `cores[i % len]` (empty: do not pin).
    pub cores: Vec<usize>,
    /// Helper threads for blocking steps (loop-helpers) or socket I/O threads (io-threads).
    pub helpers: usize,
    /// Request size limits.
    pub limits: Limits,
    /// Where the handler makes its scratch directory (files of `fsync`, `file_read`). The
    /// process that forks the server owns it and removes it after reaping the server: a
    /// server ended by SIGKILL cannot clean up after itself.
    pub scratch: std::path::PathBuf,
}

/// Per-worker request and connection counts, shared with whoever forked the server, and two
/// server-wide figures: ops handed to helper threads (loop-helpers) and the most handler ops
/// in progress at once (io-threads, loop-helpers), which tests read to see where ops ran and
/// whether they overlapped without relying on timing.
pub struct Stats {
    slots: SharedSlice<CachePadded<AtomicU64>>,
    workers: usize,
}

impl Stats {
    /// Counters for `workers` workers (at least one).
    pub fn new(workers: usize) -> std::io::Result<Stats> {
        let workers = workers.max(1);
        Ok(Stats {
            slots: SharedSlice::new(workers * 2 + EXTRA_SLOTS)?,
            workers,
        })
    }

    /// Number of worker slots.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Counts one answered request for worker `w` (taken modulo the slots).
    #[inline]
    pub fn request(&self, w: usize) {
        self.slots[(w % self.workers) * 2].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one accepted connection for worker `w`.
    #[inline]
    pub fn connection(&self, w: usize) {
        self.slots[(w % self.workers) * 2 + 1].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one op handed to a helper thread.
    #[inline]
    pub fn offloaded(&self) {
        self.slots[self.workers * 2].fetch_add(1, Ordering::Relaxed);
    }

    /// Records that `n` handler ops are in progress at once (keeps the maximum).
    #[inline]
    pub fn in_flight(&self, n: usize) {
        self.slots[self.workers * 2 + 1].fetch_max(n as u64, Ordering::Relaxed);
    }

    /// Ops handed to helper threads so far.
    pub fn offloaded_ops(&self) -> u64 {
        self.slots[self.workers * 2].load(Ordering::Relaxed)
    }

    /// The most handler ops that were in progress at once.
    pub fn max_in_flight(&self) -> u64 {
        self.slots[self.workers * 2 + 1].load(Ordering::Relaxed)
    }

    /// Requests answered per worker.
    pub fn requests(&self) -> Vec<u64> {
        (0..self.workers)
            .map(|w| self.slots[w * 2].load(Ordering::Relaxed))
            .collect()
    }

    /// Connections accepted per worker.
    pub fn connections(&self) -> Vec<u64> {
        (0..self.workers)
            .map(|w| self.slots[w * 2 + 1].load(Ordering::Relaxed))
            .collect()
    }
}

/// Server-wide slots after the per-worker ones: offloaded ops, max in flight.
const EXTRA_SLOTS: usize = 2;

/// What an architecture's `run` gets.
pub struct ServerCtx<'a> {
    /// The configuration.
    pub cfg: &'a ServeConfig,
    /// The listener bound by `serve` (non-blocking; SO_REUSEPORT set when `cfg.reuseport`).
    pub listener: TcpListener,
    /// Its address (the real port when port 0 was asked).
    pub addr: SocketAddr,
    /// The prepared handler.
    pub handler: &'a Handler,
    /// Request counters.
    pub stats: &'a Stats,
}

/// Binds a non-blocking TCP listener with a deep backlog, optionally with SO_REUSEPORT (so
/// several sockets, one per worker, can listen on the same port and the kernel spreads
/// connections over them).
pub fn bind_listener(addr: SocketAddr, reuseport: bool) -> std::io::Result<TcpListener> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, bind, listen, setsockopt,
        socket, sockopt,
    };
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuseport {
        setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    listen(&fd, Backlog::MAXCONN)?;
    Ok(TcpListener::from(fd))
}

/// Shuts our side of a socket, then discards (boundedly, never blocking whatever the socket's
/// mode) what the client still sent, so unread data does not turn the close into a RST that
/// could destroy the response we just wrote. The socket is closed when its owner drops it.
pub fn shut_and_drain(socket: &impl std::os::fd::AsFd) {
    use nix::sys::socket::{MsgFlags, Shutdown, recv, shutdown};
    use std::os::fd::AsRawFd;
    let fd = socket.as_fd().as_raw_fd();
    let _ = shutdown(fd, Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match recv(fd, &mut sink, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n > 0 => continue,
            _ => break,
        }
    }
}

/// Raises RLIMIT_NOFILE's soft limit toward `want` (up to the hard limit); returns the limit
/// now in force. 10,000 connections need more than the usual 1,024 descriptors.
pub fn raise_nofile(want: u64) -> Result<u64, String> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| e.to_string())?;
    if soft >= want {
        return Ok(soft);
    }
    let target = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard)
        .map_err(|e| format!("raising RLIMIT_NOFILE to {target}: {e}"))?;
    Ok(target)
}

/// Starts a server: binds, prepares the handler, calls `on_ready` with the address, then runs
/// the architecture until the process is killed.
pub fn serve(cfg: &ServeConfig, on_ready: &mut dyn FnMut(SocketAddr)) -> Result<(), String> {
    let stats = Stats::new(cfg.workers).map_err(|e| format!("mapping counters: {e}"))?;
    serve_with(cfg, &stats, on_ready)
}

/// As [`serve`], counting into `stats` (created before a fork so the parent can read them).
pub fn serve_with(
    cfg: &ServeConfig,
    stats: &Stats,
    on_ready: &mut dyn FnMut(SocketAddr),
) -> Result<(), String> {
    let _ = raise_nofile(65_536);
    let listener =
        bind_listener(cfg.addr, cfg.reuseport).map_err(|e| format!("binding {}: {e}", cfg.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let handler = Handler::prepare(&cfg.handler, 1024, &cfg.scratch)?;
    on_ready(addr);
    (cfg.arch.run)(&ServerCtx {
        cfg,
        listener,
        addr,
        handler: &handler,
        stats,
    })
}
