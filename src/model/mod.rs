//! Models: how concurrent tasks are mapped onto the OS.
//!
//! A model is a unit (forked process or OS thread) × a driver (blocking: one task at a time,
//! `step` may block; loop: an epoll loop multiplexing all of the worker's tasks) × W workers.
//! T tasks are spread over the W workers. Every model runs the same workload tasks through the
//! same [`worker::run_worker`] body: only the unit and the driver differ.
//!
//! Adding a model: one entry in [`REGISTRY`] (plus a driver or unit file if it is new).

pub mod blocking;
pub mod event_loop;
pub mod unit;
pub mod worker;

use serde::{Deserialize, Serialize};

/// What carries a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnitKind {
    /// An OS thread of the cell host process.
    Thread,
    /// A process forked from the cell host.
    Process,
}

/// How a worker runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriverKind {
    /// One op at a time, blocking in the kernel when the op waits.
    Blocking,
    /// An epoll loop (mio) over all of the worker's tasks, with a timer heap.
    Loop,
}

/// A registry entry: one model.
#[derive(Debug)]
pub struct ModelDef {
    /// Id used in suites, cell ids and the CLI (kebab-case).
    pub id: &'static str,
    /// Process or thread.
    pub unit: UnitKind,
    /// Blocking or loop.
    pub driver: DriverKind,
    /// True when the model always has exactly one worker (the single event loop).
    pub single_worker: bool,
    /// Who runs a backend this way.
    pub who: &'static str,
}

/// Every model concbench knows. Tests, benches, `list` and reports iterate this.
pub static REGISTRY: &[ModelDef] = &[
    ModelDef {
        id: "event-loop",
        unit: UnitKind::Thread,
        driver: DriverKind::Loop,
        single_worker: true,
        who: "Redis, Node.js: one thread, one epoll loop over every task",
    },
    ModelDef {
        id: "threads",
        unit: UnitKind::Thread,
        driver: DriverKind::Blocking,
        single_worker: false,
        who: "thread per connection (SQL Server, MySQL): W blocking threads",
    },
    ModelDef {
        id: "processes",
        unit: UnitKind::Process,
        driver: DriverKind::Blocking,
        single_worker: false,
        who: "process per connection (PostgreSQL, Apache prefork): W forked blocking workers",
    },
    ModelDef {
        id: "thread-loops",
        unit: UnitKind::Thread,
        driver: DriverKind::Loop,
        single_worker: false,
        who: "Envoy workers: W threads, an epoll loop each",
    },
    ModelDef {
        id: "process-loops",
        unit: UnitKind::Process,
        driver: DriverKind::Loop,
        single_worker: false,
        who: "Nginx workers under a master: W forked processes, an epoll loop each",
    },
];

/// Looks a model up by id; the error lists the known ids.
pub fn find(id: &str) -> Result<&'static ModelDef, String> {
    crate::registry::find(REGISTRY.iter(), |m| m.id, "model", id)
}

/// Where workers are pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pin {
    /// Not pinned: the scheduler places and migrates workers.
    None,
    /// Worker i on allowed core i mod cores.
    Spread,
    /// Every worker on the first allowed core.
    SameCore,
}

impl Pin {
    /// Id used in suites and cell ids.
    pub fn id(self) -> &'static str {
        match self {
            Pin::None => "none",
            Pin::Spread => "spread",
            Pin::SameCore => "same-core",
        }
    }

    /// Parses a suite value.
    pub fn parse(s: &str) -> Result<Pin, String> {
        match s {
            "none" => Ok(Pin::None),
            "spread" => Ok(Pin::Spread),
            "same-core" => Ok(Pin::SameCore),
            _ => Err(format!(
                "unknown pin `{s}`: use \"none\", \"spread\" or \"same-core\""
            )),
        }
    }

    /// The core worker `w` is pinned to, given the allowed cores.
    pub fn core_for(self, w: usize, cores: &[usize]) -> Option<usize> {
        if cores.is_empty() {
            return None;
        }
        match self {
            Pin::None => None,
            Pin::Spread => Some(cores[w % cores.len()]),
            Pin::SameCore => Some(cores[0]),
        }
    }
}

/// The load shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Load {
    /// Each task issues its next op when the last one ends (throughput).
    Closed,
    /// Ops are due at `rate` per second in total, spread evenly over the tasks; latency counts
    /// from when an op was due, so a stalled worker cannot hide its own delay.
    Open {
        /// Total ops per second over all tasks.
        rate: f64,
    },
}

impl Load {
    /// Id used in cell ids: `closed` or `r1000`.
    pub fn id(&self) -> String {
        match self {
            Load::Closed => "closed".into(),
            Load::Open { rate } => format!("r{rate}"),
        }
    }
}

/// The contiguous range of task indices worker `w` of `workers` runs, spreading `tasks` as
/// evenly as possible (the first `tasks % workers` workers get one more).
pub fn tasks_of(w: usize, workers: usize, tasks: usize) -> std::ops::Range<usize> {
    let base = tasks / workers;
    let extra = tasks % workers;
    let start = w * base + w.min(extra);
    let len = base + usize::from(w < extra);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_spread_evenly_and_completely() {
        for workers in 1..9 {
            for tasks in workers..40 {
                let mut next = 0;
                for w in 0..workers {
                    let r = tasks_of(w, workers, tasks);
                    assert_eq!(r.start, next);
                    assert!(r.len() == tasks / workers || r.len() == tasks / workers + 1);
                    next = r.end;
                }
                assert_eq!(next, tasks);
            }
        }
    }

    #[test]
    fn pinning() {
        let cores = [2, 5];
        assert_eq!(Pin::Spread.core_for(3, &cores), Some(5));
        assert_eq!(Pin::SameCore.core_for(3, &cores), Some(2));
        assert_eq!(Pin::None.core_for(3, &cores), None);
        assert!(Pin::parse("spred").unwrap_err().contains("same-core"));
    }

    #[test]
    fn model_ids_are_kebab_case_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in REGISTRY {
            assert!(seen.insert(m.id));
            assert!(m.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        }
        assert!(find("thread").unwrap_err().contains("threads"));
    }
}
