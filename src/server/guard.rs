//! What every architecture does against clients that misbehave or vanish: the per-connection
//! clock behind the header (request-read) and idle timeouts, how often loops look for expired
//! connections, and the 503 given to a connection past the server's cap.
//!
//! The limits themselves are [`Limits`]; the blocking architectures turn the same clock into
//! socket read timeouts (`blocking_conn`), the loops sweep their connections with it.

use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use super::http::{Limits, write_response};

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request began arriving (or the connection was accepted) more than
    /// `header_timeout` ago and is still not whole: answer 408 and close.
    Header,
    /// No traffic for `idle_timeout` with no request in progress (or responses left unread).
    Idle,
}

/// One connection's clock.
#[derive(Debug, Clone, Copy)]
pub struct ConnClock {
    /// When the request now arriving began (first byte, or the accept for a new connection);
    /// None between requests.
    pub head_since: Option<Instant>,
    /// Last time bytes moved either way.
    pub last_active: Instant,
}

impl ConnClock {
    /// A connection accepted at `now`: its first request's clock starts at once.
    pub fn accepted(now: Instant) -> Self {
        Self {
            head_since: Some(now),
            last_active: now,
        }
    }

    /// After framing: `partial` says whether unframed bytes remain (a request is arriving).
    #[inline]
    pub fn framed(&mut self, partial: bool, now: Instant) {
        if !partial {
            self.head_since = None;
        } else if self.head_since.is_none() {
            self.head_since = Some(now);
        }
    }

    /// Whether this connection (with no op in progress) has run out of time at `now`.
    pub fn expired(&self, now: Instant, limits: &Limits) -> Option<Expiry> {
        match self.head_since {
            Some(t) if now.saturating_duration_since(t) > limits.header_timeout => {
                Some(Expiry::Header)
            }
            _ if now.saturating_duration_since(self.last_active) > limits.idle_timeout => {
                Some(Expiry::Idle)
            }
            _ => None,
        }
    }

    /// The instant this connection expires if nothing happens.
    pub fn deadline(&self, limits: &Limits) -> Instant {
        let idle = self.last_active + limits.idle_timeout;
        match self.head_since {
            Some(t) => idle.min(t + limits.header_timeout),
            None => idle,
        }
    }
}

/// How often a loop looks for expired connections: a quarter of the shorter timeout, between
/// 5 ms and 1 s (so a timeout fires at most 25% late, and 10,000 idle connections cost one
/// pass a second).
pub fn sweep_every(limits: &Limits) -> Duration {
    (limits.header_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(5), Duration::from_secs(1))
}

/// Answers `status` on a socket we are about to drop (best effort and non-blocking whatever
/// the socket's mode: the response is small and the socket's buffer empty or nearly), then
/// shuts it and drains what the client sent so the close is a FIN, not a RST that could
/// destroy the answer.
pub fn answer_and_close(sock: &impl AsFd, status: u16, why: &str) {
    use nix::sys::socket::{MsgFlags, send};
    let mut out = Vec::with_capacity(160);
    write_response(&mut out, status, why.as_bytes(), false);
    let _ = send(
        sock.as_fd().as_raw_fd(),
        &out,
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
    );
    super::shut_and_drain(sock);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_expires_on_header_then_idle() {
        let l = Limits {
            header_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let t0 = Instant::now();
        let mut c = ConnClock::accepted(t0);
        assert_eq!(c.expired(t0 + Duration::from_millis(50), &l), None);
        assert_eq!(
            c.expired(t0 + Duration::from_millis(150), &l),
            Some(Expiry::Header)
        );
        // A whole request arrived: only the idle timeout applies now.
        c.last_active = t0 + Duration::from_millis(50);
        c.framed(false, t0 + Duration::from_millis(50));
        assert_eq!(c.expired(t0 + Duration::from_millis(150), &l), None);
        assert_eq!(
            c.expired(t0 + Duration::from_millis(400), &l),
            Some(Expiry::Idle)
        );
        // A partial one starts the header clock at its first byte; more partial bytes do not
        // restart it (a trickle still expires).
        c.framed(true, t0 + Duration::from_millis(200));
        c.framed(true, t0 + Duration::from_millis(290));
        assert_eq!(c.head_since, Some(t0 + Duration::from_millis(200)));
        assert_eq!(c.deadline(&l), t0 + Duration::from_millis(300));
        assert_eq!(sweep_every(&l), Duration::from_millis(25));
        assert_eq!(sweep_every(&Limits::default()), Duration::from_secs(1));
    }
}

/// The `serve` flags that set [`Limits`].
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// A request must be whole this long after its first byte (or the accept): else 408 and
    /// close.
    #[arg(long, default_value = "10s", value_parser = duration_arg)]
    pub header_timeout: Duration,
    /// A connection with no request in progress and no traffic this long is closed.
    #[arg(long, default_value = "60s", value_parser = duration_arg)]
    pub idle_timeout: Duration,
    /// Most connections at once (per loop; threads for thread-per-conn, processes for
    /// process-per-conn); past it a new connection is answered 503 and closed.
    #[arg(long, default_value_t = 20_000)]
    pub max_conns: usize,
    /// Largest request head, bytes (past it: 431).
    #[arg(long, default_value_t = 8 * 1024)]
    pub max_head: usize,
    /// Largest request body, bytes (past it: 413).
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body: usize,
    /// loop-helpers: CPU ops costing more than this go to a helper, cheaper ones run inline.
    #[arg(long, default_value = "100us", value_parser = duration_arg)]
    pub offload_over: Duration,
}

fn duration_arg(s: &str) -> Result<Duration, String> {
    let d = crate::workload::param::parse_duration(s)
        .ok_or_else(|| format!("\"{s}\" is not a duration: write e.g. 500ms or 2s"))?;
    if d.is_zero() {
        return Err("a timeout of 0 would close every connection: give e.g. 1s".into());
    }
    Ok(d)
}

impl LimitArgs {
    /// The limits these flags set; errors name the flag.
    pub fn limits(&self) -> Result<Limits, String> {
        if self.max_conns == 0 {
            return Err("--max-conns 0 would refuse every connection: use at least 1".into());
        }
        if self.max_head < 64 {
            return Err(format!(
                "--max-head {} cannot hold a request line: use at least 64",
                self.max_head
            ));
        }
        Ok(Limits {
            max_head: self.max_head,
            max_body: self.max_body,
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            max_conns: self.max_conns,
            offload_over: self.offload_over,
            ..Limits::default()
        })
    }
}
