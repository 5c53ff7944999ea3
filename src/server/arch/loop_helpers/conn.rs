//! loop-helpers' per-connection steps on the loop: read and frame into the request queue
//! (updating the connection's clock), step a loop-side task once, queue a 200 or a 500, and
//! flush the output.

use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Poll, Token};

use super::{Conn, Pending, sock_token};
use crate::server::Stats;
use crate::server::blocking_conn::OK_BODY;
use crate::server::conn_io::{flush_into, read_and_frame_into};
use crate::server::handler::Handler;
use crate::server::http::{Limits, Parse, write_response};
use crate::workload::{Mode, Step};

/// Reads what the socket holds (up to the caps) and queues every whole request.
pub(super) fn read_and_frame(c: &mut Conn, limits: &Limits) {
    let refused = &mut c.refused;
    let pending = &mut c.pending;
    if *refused {
        c.inbuf.clear();
    }
    let got = read_and_frame_into(&mut c.stream, &mut c.inbuf, limits, |p| {
        if *refused {
            return false;
        }
        match p {
            Parse::Complete(r) => pending.push_back(Pending::Request {
                keep_alive: r.keep_alive,
            }),
            Parse::Refused(r) => {
                pending.push_back(Pending::Refused(r));
                *refused = true;
            }
            Parse::Partial => {}
        }
        !*refused
    });
    if *refused {
        c.inbuf.clear();
    }
    c.can_read = got.more;
    let now = Instant::now();
    if got.bytes > 0 {
        c.clock.last_active = now;
    }
    c.clock.framed(!c.inbuf.is_empty(), now);
    let (eof, dead) = (got.eof, got.dead);
    c.eof |= eof || dead;
    if dead {
        c.pending.clear();
        c.closing = true;
    }
}

/// Steps the connection's loop-side task once (building it on first use). `None`: no task.
pub(super) fn step_on_loop(
    c: &mut Conn,
    handler: &Handler,
    poll: &Poll,
    slot: usize,
) -> Result<Option<Step>, String> {
    if !c.task_built {
        c.task_built = true;
        c.task = handler.task(c.number, Mode::NonBlocking)?;
    }
    let Some(task) = c.task.as_mut() else {
        return Ok(None);
    };
    let step = task.step().map_err(|e| e.to_string())?;
    if let Step::Wait { fd, .. } = step
        && !c.task_fds.contains(&fd)
    {
        poll.registry()
            .register(
                &mut SourceFd(&fd),
                Token(sock_token(slot).0 + 1),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| format!("epoll_ctl(ADD, fd {fd}): {e}"))?;
        c.task_fds.push(fd);
    }
    Ok(Some(step))
}

/// The front request's op finished: queue its 200.
pub(super) fn answer(c: &mut Conn, stats: &Stats) {
    let keep_alive = match c.pending.pop_front() {
        Some(Pending::Request { keep_alive }) => keep_alive,
        _ => false,
    };
    write_response(&mut c.outbuf, 200, OK_BODY, keep_alive);
    stats.request(0);
    if !keep_alive {
        c.closing = true;
        c.pending.clear();
    }
}

/// The handler failed: answer 500 and close.
pub(super) fn fail(c: &mut Conn, why: &str) {
    write_response(&mut c.outbuf, 500, why.as_bytes(), false);
    c.closing = true;
    c.pending.clear();
}

pub(super) fn flush(c: &mut Conn) -> bool {
    flush_into(&mut c.stream, &mut c.outbuf, &mut c.written)
}
