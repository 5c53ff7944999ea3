//! The blocking driver: one op at a time. A task's `Wait` becomes a blocking `poll(2)` of its
//! fd, `Sleep` a `nanosleep`; tasks built in blocking mode may also block inside `step` (a
//! blocking `read`). With several tasks per worker, the worker serves them in turn, as a
//! thread-per-connection server with fewer threads than connections would.
//!
//! # Timing model
//! Closed loop: task i's op is issued when its previous op ended, so the latency includes the
//! time it queued behind the worker's other tasks. Open loop: the op is issued at its due
//! time; the worker sleeps until the earliest due op, and if it falls behind, the delay is in
//! the latency (no coordinated omission). One clock read per op (two in open loop).

use std::time::{Duration, Instant};

use super::worker::Schedule;
use crate::measure::recorder::Recorder;
use crate::workload::{Step, Task, wait_fd};

/// Longest single sleep or fd wait before the driver rechecks the phase word, so a stop is
/// seen promptly even in long waits.
const SLICE: Duration = Duration::from_millis(20);

/// Runs `tasks` until the recorder says stop. Errors name the failing task.
pub fn run(
    tasks: &mut [Box<dyn Task>],
    schedule: &Schedule,
    rec: &mut Recorder<'_>,
) -> Result<(), String> {
    if tasks.is_empty() {
        while rec.keep_going() {
            std::thread::sleep(SLICE);
        }
        return Ok(());
    }
    let start = Instant::now();
    let interval = schedule.interval();
    let mut issued: Vec<Instant> = (0..tasks.len())
        .map(|i| schedule.first_due(start, i))
        .collect();
    let mut i = 0;
    loop {
        if let Some(interval) = interval {
            // Open loop: tasks' due times interleave evenly, so round-robin order is
            // earliest-due order.
            if !sleep_until(issued[i], rec) {
                return Ok(());
            }
            let now = run_op(tasks[i].as_mut(), rec).map_err(|e| format!("task {i}: {e}"))?;
            let Some(now) = now else { return Ok(()) };
            if !rec.op_done(issued[i], now) {
                return Ok(());
            }
            issued[i] += interval;
        } else {
            let now = run_op(tasks[i].as_mut(), rec).map_err(|e| format!("task {i}: {e}"))?;
            let Some(now) = now else { return Ok(()) };
            if !rec.op_done(issued[i], now) {
                return Ok(());
            }
            issued[i] = now;
        }
        i += 1;
        if i == tasks.len() {
            i = 0;
        }
    }
}

/// Steps one task until its op is done; returns the completion time, or None when the phase
/// moved to stop while the op waited.
#[inline]
fn run_op(task: &mut dyn Task, rec: &mut Recorder<'_>) -> Result<Option<Instant>, String> {
    loop {
        match task.step().map_err(|e| e.to_string())? {
            Step::Done => return Ok(Some(Instant::now())),
            Step::Sleep { until } => {
                if !sleep_until(until, rec) {
                    return Ok(None);
                }
            }
            Step::Wait { fd, interest } => loop {
                if wait_fd(fd, interest, Some(SLICE)).map_err(|e| format!("poll: {e}"))? {
                    break;
                }
                if !rec.keep_going() {
                    return Ok(None);
                }
            },
        }
    }
}

/// Sleeps until `until` in slices; false when the phase moved to stop.
fn sleep_until(until: Instant, rec: &mut Recorder<'_>) -> bool {
    loop {
        let now = Instant::now();
        if now >= until {
            return true;
        }
        let left = until - now;
        if left > SLICE {
            std::thread::sleep(SLICE);
            if !rec.keep_going() {
                return false;
            }
        } else {
            std::thread::sleep(left);
            return true;
        }
    }
}
