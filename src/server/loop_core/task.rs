//! The loop's handler side: stepping a connection's task through one op (`Wait` registers
//! the fd once in the loop's epoll, `Sleep` goes into the timer heap) and the 500 for a failed
//! handler.

use std::cmp::Reverse;
use std::io::ErrorKind;
use std::time::Instant;

use mio::unix::SourceFd;
use mio::{Interest, Token};

use super::{Loop, Op};
use crate::server::http::write_response;
use crate::workload::Step;

impl Loop<'_> {
    /// Steps the task of `s` (whose op is not waiting) until its op is done or it has to wait;
    /// a finished op queues its response.
    pub(super) fn step_task(&mut self, s: usize) {
        loop {
            let Some(c) = self.conns.get_mut(s) else {
                return;
            };
            let step = match &mut c.task {
                Some(Some(t)) => t.step(),
                // `none`: the op is nothing at all.
                _ => Ok(Step::Done),
            };
            match step {
                Ok(Step::Done) => {
                    c.op = Op::Idle;
                    let resp = if c.op_keep_alive {
                        &self.ok_keep_alive
                    } else {
                        c.closing = true;
                        &self.ok_close
                    };
                    c.wbuf.extend_from_slice(resp);
                    self.cfg.stats.request(self.cfg.worker);
                    return;
                }
                Ok(Step::Wait { fd, .. }) => {
                    if !c.task_fds.contains(&fd) {
                        // Edge-triggered, both directions, once per fd: a task only waits
                        // after its non-blocking call came back with WouldBlock.
                        let reg = self.poll.registry();
                        let interest = Interest::READABLE | Interest::WRITABLE;
                        let r = match reg.register(&mut SourceFd(&fd), Token(s << 1 | 1), interest)
                        {
                            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                                reg.reregister(&mut SourceFd(&fd), Token(s << 1 | 1), interest)
                            }
                            r => r,
                        };
                        if let Err(e) = r {
                            self.fail(s, &format!("epoll_ctl(ADD, task fd {fd}): {e}"));
                            return;
                        }
                        c.task_fds.push(fd);
                    }
                    if c.fd_ready {
                        c.fd_ready = false; // it fired meanwhile: try again first
                        continue;
                    }
                    c.op = Op::Waiting;
                    return;
                }
                Ok(Step::Sleep { until }) => {
                    if until <= Instant::now() {
                        continue;
                    }
                    c.op = Op::Sleeping;
                    self.timers.push(Reverse((until, s, c.generation)));
                    return;
                }
                Err(e) => {
                    self.fail(s, &e.to_string());
                    return;
                }
            }
        }
    }

    /// The handler failed on `s`: answer 500 and close after writing. Its task is dropped (a
    /// failed task's state is unknown).
    pub(super) fn fail(&mut self, s: usize, why: &str) {
        let Some(c) = self.conns.get_mut(s) else {
            return;
        };
        eprintln!("concbench serve: handler failed: {why}");
        for fd in c.task_fds.drain(..) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
        c.task = Some(None);
        c.op = Op::Idle;
        write_response(&mut c.wbuf, 500, b"handler failed\n", false);
        c.closing = true;
        self.cfg.stats.request(self.cfg.worker);
    }
}
