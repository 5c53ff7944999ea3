//! `request`: CPU parse → downstream wait → CPU render, composed from the other workloads.
//!
//! The shape of a typical service request: some CPU to parse the request, a call to a
//! downstream service that answers after `delay`, some CPU to render the reply. The CPU parts
//! are the `spin` kernel (`cpu::spin_kernel`), calibrated in `prepare` to `parse` and `render`
//! with the run's spin calibration (`PrepareEnv::spin_ns_per_iter`); the downstream part is the `downstream` workload's server and
//! connection (`downstream::Server`, `downstream::Conn`) with fixed 64-byte requests and
//! responses. `prepare` calibrates both spins and forks the server (see `downstream` for its
//! lifetime rules); each task opens one kept-alive connection in `task()`.
//!
//! In [`Mode::NonBlocking`](super::Mode) the downstream wait returns `Wait`, so an event loop
//! overlaps many requests' waits while running one request's CPU parts at a time; in blocking
//! mode the task blocks on the socket like a thread-per-connection server.
//!
//! # Timing model
//! One op = `parse` of spin + one downstream exchange (write 64 bytes, the server waits
//! `delay`, read 64 bytes; the loopback round trip and the driver's readiness handling are
//! inside) + `render` of spin. The parse spin and the request write happen in the op's first
//! step; the render spin happens in the step that reads the last response byte, which then
//! returns `Done`.

use std::sync::Arc;
use std::time::Duration;

use super::cpu::{iterations_for, spin_kernel};
use super::downstream::{Conn, Server, ServerConfig, check_delay};
use super::{
    Kind, ParamDef, Params, PrepareEnv, Step, Task, TaskCtx, Unit, Workload, WorkloadDef,
    WorkloadError,
};

/// Request and response size of the downstream call.
const MSG: usize = 64;
/// Longest CPU phase.
const MAX_CPU: Duration = Duration::from_secs(1);

/// `request`: parse, downstream call, render.
pub static REQUEST: WorkloadDef = WorkloadDef {
    id: "request",
    kind: Kind::Mixed,
    op: "spin `parse`, then a 64-byte request/response to a loopback server that answers after `delay`, then spin `render`",
    params: &[
        ParamDef {
            name: "parse",
            unit: Unit::Duration,
            default: "20us",
            help: "CPU time before the downstream call (spin, calibrated; 0ns..1s, 0 = none)",
        },
        ParamDef {
            name: "delay",
            unit: Unit::Duration,
            default: "1ms",
            help: "downstream server's wait before it answers (0ns..10s)",
        },
        ParamDef {
            name: "render",
            unit: Unit::Duration,
            default: "50us",
            help: "CPU time after the downstream answer (spin, calibrated; 0ns..1s, 0 = none)",
        },
    ],
    build: build_request,
};

fn check_cpu(p: &Params, name: &'static str) -> Result<Duration, WorkloadError> {
    let d = p.duration(name);
    if d > MAX_CPU {
        return Err(WorkloadError::Param {
            name,
            reason: format!("{d:?} is outside 0ns..1s (accepted range, inclusive)"),
        });
    }
    Ok(d)
}

fn build_request(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    Ok(Box::new(RequestWorkload {
        parse: check_cpu(p, "parse")?,
        render: check_cpu(p, "render")?,
        delay: check_delay(p, "delay")?,
        request: vec![b'q'; MSG].into(),
        prepared: None,
    }))
}

/// Spin iterations for `d` at `ns_per_iter` (0 for a zero duration).
fn spin_iterations(d: Duration, ns_per_iter: f64) -> u64 {
    if d.is_zero() {
        0
    } else {
        iterations_for(d, ns_per_iter)
    }
}

struct Prepared {
    parse_iterations: u64,
    render_iterations: u64,
    server: Server,
}

struct RequestWorkload {
    parse: Duration,
    render: Duration,
    delay: Duration,
    request: Arc<[u8]>,
    prepared: Option<Prepared>,
}

impl Workload for RequestWorkload {
    fn prepare(&mut self, env: &PrepareEnv) -> Result<(), WorkloadError> {
        self.prepared = None; // a second prepare replaces the server
        // The runner calibrated the spin kernel once for the whole run.
        let parse_iterations = spin_iterations(self.parse, env.spin_ns_per_iter);
        let render_iterations = spin_iterations(self.render, env.spin_ns_per_iter);
        let server = Server::start(ServerConfig {
            request: MSG,
            response: MSG,
            delay: self.delay,
        })?;
        self.prepared = Some(Prepared {
            parse_iterations,
            render_iterations,
            server,
        });
        Ok(())
    }

    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let p = self.prepared.as_ref().ok_or_else(|| {
            WorkloadError::Other(
                "request: task() called before prepare() calibrated and started the server".into(),
            )
        })?;
        Ok(Box::new(RequestTask {
            conn: Conn::connect(p.server.addr(), ctx.mode, self.request.clone(), MSG)?,
            parse_iterations: p.parse_iterations,
            render_iterations: p.render_iterations,
            parsed: false,
            x: ctx.seed | 1,
        }))
    }

    fn helper_pids(&self) -> Vec<i32> {
        self.prepared.iter().map(|p| p.server.pid()).collect()
    }

    fn resolved(&self) -> Vec<(String, String)> {
        match &self.prepared {
            Some(p) => vec![
                ("parse_iterations".into(), p.parse_iterations.to_string()),
                ("render_iterations".into(), p.render_iterations.to_string()),
                ("server".into(), p.server.addr().to_string()),
            ],
            None => Vec::new(),
        }
    }
}

struct RequestTask {
    conn: Conn,
    parse_iterations: u64,
    render_iterations: u64,
    /// True once this op's parse ran (the downstream exchange is under way).
    parsed: bool,
    /// Spin state, carried across ops so no run can be folded away.
    x: u64,
}

impl Task for RequestTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        if !self.parsed {
            self.x = spin_kernel(self.parse_iterations, self.x);
            self.parsed = true;
        }
        match self.conn.step()? {
            Step::Done => {
                self.x = spin_kernel(self.render_iterations, self.x);
                self.parsed = false;
                Ok(Step::Done)
            }
            wait => Ok(wait),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Interest, Mode, Value, run_ops};

    fn params(parse: Duration, delay: Duration, render: Duration) -> Params {
        Params::from_values([
            ("parse", Value::Duration(parse)),
            ("delay", Value::Duration(delay)),
            ("render", Value::Duration(render)),
        ])
    }

    fn prepared(delay: Duration) -> Box<dyn Workload> {
        let mut w = build_request(&params(
            Duration::from_micros(20),
            delay,
            Duration::from_micros(50),
        ))
        .unwrap();
        w.prepare(&PrepareEnv::new(std::env::temp_dir(), 2))
            .unwrap();
        w
    }

    fn ctx(task: usize, mode: Mode) -> TaskCtx {
        TaskCtx {
            task,
            mode,
            seed: task as u64,
        }
    }

    #[test]
    fn end_to_end_blocking() {
        let w = prepared(Duration::from_millis(1));
        let r = w.resolved();
        let get = |k: &str| r.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert!(get("parse_iterations").parse::<u64>().unwrap() > 0);
        assert!(get("render_iterations").parse::<u64>().unwrap() > 0);
        assert!(get("server").starts_with("127.0.0.1:"));
        let mut t = w.task(&ctx(0, Mode::Blocking)).unwrap();
        for _ in 0..10 {
            assert_eq!(t.step().unwrap(), Step::Done);
        }
    }

    #[test]
    fn end_to_end_non_blocking() {
        let w = prepared(Duration::from_millis(2));
        let mut t = w.task(&ctx(1, Mode::NonBlocking)).unwrap();
        // First step: parse + request written, then it must wait for the delayed answer.
        assert!(matches!(
            t.step().unwrap(),
            Step::Wait {
                interest: Interest::Read,
                ..
            }
        ));
        run_ops(t.as_mut(), 10).unwrap();
    }

    #[test]
    fn zero_durations_and_validation() {
        let mut w = build_request(&params(Duration::ZERO, Duration::ZERO, Duration::ZERO)).unwrap();
        w.prepare(&PrepareEnv::new(std::env::temp_dir(), 1))
            .unwrap();
        assert_eq!(w.resolved()[0].1, "0");
        run_ops(w.task(&ctx(0, Mode::NonBlocking)).unwrap().as_mut(), 5).unwrap();
        let ms = Duration::from_millis(1);
        let e = build_request(&params(Duration::from_secs(2), ms, ms))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`parse`") && e.contains("0ns..1s"), "{e}");
        let e = build_request(&params(ms, Duration::from_secs(11), ms))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`delay`"), "{e}");
        let w = build_request(&params(ms, ms, ms)).unwrap();
        assert!(
            w.task(&ctx(0, Mode::Blocking)).is_err(),
            "no server before prepare"
        );
    }
}
