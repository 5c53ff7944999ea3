//! loop-helpers' helper threads: each owns the tasks of the connections dealt to it (tasks
//! are not `Send`), runs one op per job with blocking calls, and sends the connection back
//! through a channel, waking the loop with a `mio::Waker`.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use crossbeam::channel::{Receiver, Sender};
use mio::Waker;

use crate::server::blocking_conn::run_op_blocking;
use crate::server::handler::Handler;
use crate::workload::{Mode, Task};

/// What the loop asks of a helper.
pub(super) enum Job {
    /// Run one op of connection `serial` (building its task on first use).
    Run {
        slot: usize,
        serial: u64,
        conn: usize,
    },
    /// The connection closed: drop its task.
    Forget { serial: u64 },
}

/// A helper's answer: the op of `serial` ended (Err: the handler failed).
pub(super) struct Finished {
    pub(super) slot: usize,
    pub(super) serial: u64,
    pub(super) result: Result<(), String>,
}

pub(super) fn helper(
    handler: &Handler,
    jobs: Receiver<Job>,
    done: Sender<Finished>,
    waker: &Waker,
) {
    let mut tasks: HashMap<u64, Option<Box<dyn Task>>> = HashMap::new();
    for job in jobs {
        match job {
            Job::Run { slot, serial, conn } => {
                let result = match tasks.entry(serial) {
                    Entry::Occupied(e) => Ok(e.into_mut()),
                    Entry::Vacant(v) => handler.task(conn, Mode::Blocking).map(|t| v.insert(t)),
                }
                .and_then(|t| match t {
                    Some(t) => run_op_blocking(t.as_mut()),
                    None => Ok(()),
                });
                if done
                    .send(Finished {
                        slot,
                        serial,
                        result,
                    })
                    .is_err()
                {
                    return;
                }
                let _ = waker.wake();
            }
            Job::Forget { serial } => {
                tasks.remove(&serial);
            }
        }
    }
}
