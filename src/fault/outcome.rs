//! From the fault board to a [`FaultOutcome`]: ops lost, respawn time, what the other workers
//! saw. One function serves both ends: the cell host (which survived the fault and knows the
//! window's end) and the harness (whose cell host died with the fault, so the window ends at
//! its planned end with nothing counted after the fault).

use std::time::Duration;

use super::{BoardView, FAULT_WORKER, FaultBoard, FaultKind, FaultSpec};
use crate::model::tasks_of;
use crate::report::result::{FaultOutcome, WorkerFaultView};
use crate::runner::cell::{RunSample, WindowEnv, measure_with};
use crate::runner::{WindowError, in_host};
use crate::suite::Cell;

/// What the board alone does not say.
#[derive(Debug, Clone)]
pub struct Context {
    /// The injected fault.
    pub spec: FaultSpec,
    /// Tasks of each worker (ops in flight when a worker is lost).
    pub tasks_per_worker: Vec<usize>,
    /// The whole process holding the workers died.
    pub process_lost: bool,
    /// Where the window ends when the host died before closing it (its planned end).
    pub window: Duration,
    /// How the failed worker or process ended, if known.
    pub exit: Option<String>,
}

/// Computes the outcome (see the field docs of [`FaultOutcome`] for every definition).
pub fn compute(v: &BoardView, cx: &Context) -> FaultOutcome {
    let mut out = FaultOutcome {
        kind: cx.spec.kind.id().into(),
        at_op: cx.spec.at,
        worker: FAULT_WORKER,
        fired: v.fired,
        effect: "not-fired".into(),
        exit: cx.exit.clone(),
        ..FaultOutcome::default()
    };
    if !v.fired {
        return out;
    }
    let w = v.at_fault.len();
    // A fault right as the window opened (K = 1) can beat the host's start snapshot.
    let (t0, c0) = if v.t0 == 0 || v.t0 > v.t_fault {
        (v.t_fault, v.at_fault.clone())
    } else {
        (v.t0, v.c0.clone())
    };
    let process_lost = cx.process_lost;
    let (t_end, c_end) = if v.t1 > 0 && !process_lost {
        (v.t1, v.c1.clone())
    } else {
        (t0 + cx.window.as_nanos() as u64, v.at_fault.clone())
    };
    let t_end = t_end.max(v.t_fault);
    let before_s = (v.t_fault - t0) as f64 / 1e9;
    let after_s = (t_end - v.t_fault) as f64 / 1e9;
    let rate = |ops: u64, s: f64| if s > 0.0 { ops as f64 / s } else { 0.0 };
    let replaced = !process_lost && v.first_op > 0;
    let down_end = if replaced {
        v.first_op.min(t_end)
    } else {
        t_end
    };
    out.downtime_ns = down_end.saturating_sub(v.t_fault);
    for (i, (&at, &start)) in v.at_fault.iter().zip(&c0).enumerate() {
        let before = at.saturating_sub(start);
        let after = c_end.get(i).map_or(0, |e| e.saturating_sub(v.at_fault[i]));
        out.ops_before += before;
        out.ops_after += after;
        let lost = process_lost || i == FAULT_WORKER;
        if lost {
            let tasks = cx.tasks_per_worker.get(i).copied().unwrap_or(1) as u64;
            let down = if i == FAULT_WORKER {
                out.downtime_ns
            } else {
                t_end - v.t_fault
            };
            out.ops_in_flight_lost += tasks;
            out.ops_lost += tasks as f64 + rate(before, before_s) * down as f64 / 1e9;
        }
        out.workers.push(WorkerFaultView {
            worker: i,
            failed: i == FAULT_WORKER,
            ops_per_sec_before: rate(before, before_s),
            ops_per_sec_after: rate(after, after_s),
            kept_running: after > 0,
        });
    }
    out.process_lost = process_lost;
    out.run_continued = out.ops_after > 0;
    out.others_kept_running = (w > 1).then(|| out.workers.iter().skip(1).all(|x| x.kept_running));
    let since = |t: u64| (t > 0 && !process_lost).then(|| t.saturating_sub(v.t_fault));
    out.reaped_after_ns = since(v.reaped);
    out.forked_after_ns = since(v.forked);
    out.respawn_ns = since(v.first_op);
    out.replacement_pid = (v.new_pid > 0 && !process_lost).then_some(v.new_pid);
    if replaced {
        out.replacement_ops = c_end[FAULT_WORKER].saturating_sub(v.at_fault[FAULT_WORKER]);
    }
    out.effect = if process_lost {
        "process-lost"
    } else if cx.spec.kind == FaultKind::Hang {
        "worker-hung"
    } else if v.forked > 0 {
        "worker-replaced"
    } else {
        "worker-lost"
    }
    .into();
    out
}

/// Runs one window of fault cell `c` (see `runner::run_window`): maps the board before the
/// cell host is forked, so a fault that kills the whole host (a thread model's abort) is still
/// measured: the window is recorded as `process-lost` with the ops counted before the fault,
/// not as a failure. A host that hung until the watchdog killed it is recorded the same way.
pub fn run_fault_window(
    c: &Cell,
    env: &WindowEnv,
    spec: FaultSpec,
    budget: Duration,
) -> Result<RunSample, WindowError> {
    let board = FaultBoard::new(c.workers)
        .map_err(|e| WindowError::Failed(format!("mapping the fault board: {e}")))?;
    match in_host(budget, || measure_with(c, env, Some(&board))) {
        Err(e) if board.fired() => {
            let how = match e {
                WindowError::TimedOut(d) => format!("hung: killed by the watchdog after {d:?}"),
                WindowError::Failed(m) => m,
                // A SIGINT/SIGTERM of the harness is not the fault's doing: the run stops.
                WindowError::Interrupted(sig) => return Err(WindowError::Interrupted(sig)),
            };
            let tasks = (0..c.workers)
                .map(|w| tasks_of(w, c.workers, c.tasks).len())
                .collect();
            Ok(host_lost_sample(
                &board,
                spec,
                tasks,
                env.timing.duration,
                how,
            ))
        }
        r => r,
    }
}

/// The sample of a window whose cell host died of the fault (or hung until the watchdog
/// killed it): the counts at the fault instant are all that was delivered in the window, over
/// the window's planned length; latency, CPU and memory were lost with the host.
pub fn host_lost_sample(
    board: &FaultBoard,
    spec: FaultSpec,
    tasks_per_worker: Vec<usize>,
    window: Duration,
    how: String,
) -> RunSample {
    let v = board.view();
    let c0 = if v.t0 == 0 || v.t0 > v.t_fault {
        v.at_fault.clone()
    } else {
        v.c0.clone()
    };
    let fault = compute(
        &v,
        &Context {
            spec,
            tasks_per_worker,
            process_lost: true,
            window,
            exit: Some(how),
        },
    );
    RunSample {
        window_ns: window.as_nanos() as u64,
        per_worker_ops: v
            .at_fault
            .iter()
            .zip(&c0)
            .map(|(a, b)| a.saturating_sub(*b))
            .collect(),
        fault: Some(fault),
        ..RunSample::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(first_op: u64, t1: u64) -> BoardView {
        // Two workers, 1 s before the fault at 1000 ops/s each; window of 2 s.
        BoardView {
            fired: true,
            t_fault: 2_000_000_000,
            t0: 1_000_000_000,
            t1,
            reaped: if first_op > 0 { 2_001_000_000 } else { 0 },
            forked: if first_op > 0 { 2_002_000_000 } else { 0 },
            new_pid: if first_op > 0 { 42 } else { 0 },
            first_op,
            first_op_count: 0,
            c0: vec![0, 0],
            at_fault: vec![1000, 1000],
            c1: if t1 > 0 { vec![1900, 2000] } else { vec![] },
        }
    }

    fn cx(kind: FaultKind, process_lost: bool) -> Context {
        Context {
            spec: FaultSpec { kind, at: 1001 },
            tasks_per_worker: vec![1, 1],
            process_lost,
            window: Duration::from_secs(2),
            exit: None,
        }
    }

    #[test]
    fn a_replaced_worker_loses_its_in_flight_op_and_its_downtime() {
        // Replacement's first op 100 ms after the fault.
        let o = compute(
            &view(2_100_000_000, 3_000_000_000),
            &cx(FaultKind::Kill9, false),
        );
        assert_eq!(o.effect, "worker-replaced");
        assert_eq!(o.respawn_ns, Some(100_000_000));
        assert_eq!(o.ops_in_flight_lost, 1);
        assert!((o.ops_lost - 101.0).abs() < 1e-6, "{}", o.ops_lost);
        assert_eq!(o.replacement_ops, 900);
        assert_eq!((o.ops_before, o.ops_after), (2000, 1900));
        assert_eq!(o.others_kept_running, Some(true));
        assert!(o.run_continued && !o.process_lost);
    }

    #[test]
    fn a_lost_process_loses_every_worker_until_the_window_ends() {
        let o = compute(&view(0, 0), &cx(FaultKind::Abort, true));
        assert_eq!(o.effect, "process-lost");
        assert_eq!((o.ops_before, o.ops_after), (2000, 0));
        // 1 in flight + 1000/s × 1 s left, for each of the two workers.
        assert!((o.ops_lost - 2002.0).abs() < 1e-6, "{}", o.ops_lost);
        assert_eq!(o.others_kept_running, Some(false));
        assert!(!o.run_continued && o.respawn_ns.is_none());
    }

    #[test]
    fn a_lost_thread_is_not_replaced_and_not_fired_says_so() {
        let o = compute(&view(0, 3_000_000_000), &cx(FaultKind::Panic, false));
        assert_eq!(o.effect, "worker-lost");
        assert_eq!(o.downtime_ns, 1_000_000_000);
        let mut v = view(0, 3_000_000_000);
        v.fired = false;
        let o = compute(&v, &cx(FaultKind::Panic, false));
        assert_eq!((o.effect.as_str(), o.ops_lost), ("not-fired", 0.0));
    }
}
