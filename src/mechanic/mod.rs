//! OS mechanics: the costs underneath the models, measured directly. A context switch (ping-
//! pong between two threads or two processes), spawning a worker (fork, fork+exec, thread), a
//! message through each IPC channel, a shared counter under each kind of synchronisation, a
//! copy-on-write fork.
//!
//! A mechanic is implemented once, here, behind [`Mechanic::measure`] (run N iterations, return
//! the elapsed time and the kernel's accounting), and used twice: by the suite runner
//! (`[[mechanic]]` tables in `workloads/os.toml`, results in `results.json`) and by criterion
//! (`benches/os.rs`, through `iter_custom`). So `concbench run` and `cargo bench` measure the
//! same code.
//!
//! Adding a mechanic: one file with a [`MechanicDef`] static, plus one line in [`REGISTRY`].

pub mod cow;
pub mod ipc;
pub mod pingpong;
pub mod shared;
pub mod spawn;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::sys::Rusage;
use crate::workload::{ParamDef, Params, WorkloadError};

/// What one call of [`Mechanic::measure`] measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// Iterations run (as asked).
    pub iters: u64,
    /// Time for all of them. Setup and teardown (spawning a partner, mapping memory, reaping)
    /// are outside unless the mechanic measures them on purpose (spawn).
    pub elapsed: Duration,
    /// getrusage of every thread and process that took part, over the timed section
    /// (RUSAGE_SELF for threads of this process, plus RUSAGE_CHILDREN for reaped children).
    pub rusage: Rusage,
    /// Further figures by name, e.g. `lost_updates`, `minor_faults_per_iter`, `bytes_per_sec`,
    /// `switches_per_iter`. Names are snake_case with the unit last.
    pub extra: Vec<(String, f64)>,
}

impl Measured {
    /// Nanoseconds per iteration.
    pub fn ns_per_iter(&self) -> f64 {
        if self.iters == 0 {
            0.0
        } else {
            self.elapsed.as_nanos() as f64 / self.iters as f64
        }
    }

    /// The extra figure called `name`, if the mechanic reported it.
    pub fn figure(&self, name: &str) -> Option<f64> {
        self.extra.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    /// Context switches (voluntary + involuntary) per iteration.
    pub fn switches_per_iter(&self) -> f64 {
        if self.iters == 0 {
            0.0
        } else {
            (self.rusage.voluntary + self.rusage.involuntary) as f64 / self.iters as f64
        }
    }
}

/// What the harness gives a mechanic.
#[derive(Debug, Clone)]
pub struct MechanicEnv {
    /// Cores this process may use, read at start-up before anything was pinned.
    pub cores: Vec<usize>,
    /// The concbench binary, for fork+exec (`concbench __noop` exits at once).
    pub self_exe: PathBuf,
}

impl MechanicEnv {
    /// The environment of the running process (cores now; the current executable, or
    /// `exe` when given, e.g. `env!("CARGO_BIN_EXE_concbench")` in benches and tests).
    pub fn current(exe: Option<PathBuf>) -> Self {
        Self {
            cores: crate::sys::allowed_cpus(),
            self_exe: exe
                .or_else(|| std::env::current_exe().ok())
                .unwrap_or_else(|| PathBuf::from("concbench")),
        }
    }
}

/// One measured mechanism, ready to run.
pub trait Mechanic {
    /// What one iteration is, e.g. "round trip", "fork + _exit + waitpid".
    fn iteration(&self) -> &'static str;

    /// Runs `iters` iterations and reports. Errors say which syscall failed.
    fn measure(&mut self, iters: u64) -> Result<Measured, String>;
}

/// Builds a mechanic from resolved params.
pub type BuildFn = fn(&Params, &MechanicEnv) -> Result<Box<dyn Mechanic>, WorkloadError>;

/// A registry entry: one mechanic.
pub struct MechanicDef {
    /// Id used in suites and reports (snake_case).
    pub id: &'static str,
    /// One line: what it measures.
    pub about: &'static str,
    /// Declared parameters (choices, sizes, counts).
    pub params: &'static [ParamDef],
    /// Builds it from resolved params; checks ranges.
    pub build: BuildFn,
}

impl std::fmt::Debug for MechanicDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MechanicDef").field("id", &self.id).finish()
    }
}

/// Every mechanic concbench knows.
pub static REGISTRY: &[&MechanicDef] = &[
    &pingpong::PINGPONG,
    &spawn::SPAWN,
    &ipc::IPC,
    &shared::COUNTER,
    &cow::COW,
];

/// Looks a mechanic up by id; the error lists the known ids.
pub fn find(id: &str) -> Result<&'static MechanicDef, String> {
    crate::registry::find(REGISTRY.iter().copied(), |d| d.id, "mechanic", id)
}

/// Where the two sides of a pair run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairPlacement {
    /// Both on the first allowed core.
    SameCore,
    /// On the first two allowed cores.
    CrossCore,
    /// Not pinned.
    Unpinned,
}

impl PairPlacement {
    /// The suite words, for a `Unit::Choice` parameter.
    pub const CHOICES: &'static [&'static str] = &["same-core", "cross-core", "unpinned"];

    /// Parses a choice value.
    pub fn parse(s: &str) -> PairPlacement {
        match s {
            "same-core" => PairPlacement::SameCore,
            "cross-core" => PairPlacement::CrossCore,
            _ => PairPlacement::Unpinned,
        }
    }

    /// Cores for side A and side B; errors when cross-core is asked of a 1-core machine.
    pub fn cores(self, cores: &[usize]) -> Result<(Option<usize>, Option<usize>), String> {
        match self {
            PairPlacement::Unpinned => Ok((None, None)),
            PairPlacement::SameCore => {
                let c = *cores.first().ok_or("no allowed core")?;
                Ok((Some(c), Some(c)))
            }
            PairPlacement::CrossCore => match cores {
                [a, b, ..] => Ok((Some(*a), Some(*b))),
                _ => Err("cross-core needs at least 2 allowed cores".into()),
            },
        }
    }
}

/// Shared by the mechanics' unit tests.
#[cfg(test)]
pub(crate) mod testkit {
    use std::collections::BTreeMap;

    use super::{Measured, Mechanic, MechanicDef, MechanicEnv};
    use crate::workload::{Params, WorkloadError};

    /// Builds `def` with the parameters `kv` (defaults for the rest) in this process's env.
    pub fn build(
        def: &MechanicDef,
        kv: &[(&str, &str)],
    ) -> Result<Box<dyn Mechanic>, WorkloadError> {
        let given: BTreeMap<String, String> = kv
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let p = Params::resolve(def.params, &given).unwrap();
        (def.build)(&p, &MechanicEnv::current(None))
    }

    /// The extra figure `name`; panics naming the figures there are.
    pub fn extra(m: &Measured, name: &str) -> f64 {
        m.figure(name)
            .unwrap_or_else(|| panic!("no extra `{name}` in {:?}", m.extra))
    }

    /// Asserts this process has no child left (tests run one per process under nextest).
    pub fn no_children_left() {
        assert_eq!(
            nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(-1),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG)
            ),
            Err(nix::errno::Errno::ECHILD)
        );
    }
}
