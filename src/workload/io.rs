//! I/O-bound workloads on timers and the disk: `sleep` (a timer wait, the classic simulated
//! downstream), `file_read` (pread at random offsets), `fsync` (write + fsync).
//!
//! # Timing model
//! One `sleep` op spans from its first step (which returns `Sleep { until: now + delay }`) to
//! the step after the driver woke it: the driver's timer precision (nanosleep for blocking
//! workers, the epoll timeout for loops) is part of the op, as in a real server.

use std::time::{Duration, Instant};

use super::{
    Kind, ParamDef, Params, Step, Task, TaskCtx, Unit, Workload, WorkloadDef, WorkloadError,
};

/// `sleep`: wait on a timer for `delay`.
pub static SLEEP: WorkloadDef = WorkloadDef {
    id: "sleep",
    kind: Kind::Io,
    op: "wait `delay` on a timer (nanosleep when blocking, the loop's timer heap otherwise)",
    params: &[ParamDef {
        name: "delay",
        unit: Unit::Duration,
        default: "10ms",
        help: "how long one op waits",
    }],
    build: build_sleep,
};

fn build_sleep(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let delay = p.duration("delay");
    if delay.is_zero() || delay > Duration::from_secs(60) {
        return Err(WorkloadError::Param {
            name: "delay",
            reason: format!("{delay:?} is outside 1ns..60s"),
        });
    }
    Ok(Box::new(SleepWorkload { delay }))
}

struct SleepWorkload {
    delay: Duration,
}

impl Workload for SleepWorkload {
    fn task(&self, _ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        Ok(Box::new(SleepTask {
            delay: self.delay,
            waiting: false,
        }))
    }
}

struct SleepTask {
    delay: Duration,
    waiting: bool,
}

impl Task for SleepTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        if self.waiting {
            self.waiting = false;
            Ok(Step::Done)
        } else {
            self.waiting = true;
            Ok(Step::Sleep {
                until: Instant::now() + self.delay,
            })
        }
    }
}

macro_rules! pending {
    ($name:ident, $id:literal) => {
        /// Placeholder registry entry.
        pub static $name: WorkloadDef = WorkloadDef {
            id: $id,
            kind: Kind::Io,
            op: "pending",
            params: &[],
            build: |_| Err(WorkloadError::Other(concat!($id, ": pending").into())),
        };
    };
}
pending!(FILE_READ, "file_read");
pending!(FSYNC, "fsync");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Mode, run_ops};

    #[test]
    fn sleep_op_takes_at_least_delay() {
        let w = build_sleep(&Params::from_values([(
            "delay",
            super::super::Value::Duration(Duration::from_millis(2)),
        )]))
        .unwrap();
        let mut t = w
            .task(&TaskCtx {
                task: 0,
                mode: Mode::Blocking,
                seed: 0,
            })
            .unwrap();
        let s = Instant::now();
        run_ops(t.as_mut(), 3).unwrap();
        // Behaviour, not speed: three 2 ms waits cannot finish in under 6 ms.
        assert!(s.elapsed() >= Duration::from_millis(6));
    }
}
