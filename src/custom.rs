//! Your own code as a workload: a closure becomes the op of a task, and runs under every model
//! through the same cells, workers and measurements as the built-in workloads.
//!
//! ```no_run
//! use concbench::custom;
//! use concbench::runner::RunOptions;
//!
//! fn my_handler(input: u64) -> u64 {
//!     (0..200).fold(input, |x, i| x.rotate_left(5) ^ i)
//! }
//!
//! let opts = RunOptions {
//!     out_dir: "results/my_handler".into(),
//!     progress: true,
//!     skip_idle_wait: false,
//!     self_exe: None,
//! };
//! let suite = custom::suite("my_handler", |input| my_handler(input));
//! let results = concbench::runner::run_suite(&suite, &opts).unwrap();
//! print!("{}", concbench::report::table::render(&results));
//! ```
//!
//! # Timing model
//! One op = one call of the closure with a pseudo-random `u64` input (a per-task xorshift
//! sequence, the same under every model), its result passed through `black_box`. The harness
//! around it is the same as for built-in workloads: one clock read, one histogram record and one
//! counter store per op.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::measure::noise::NoiseConfig;
use crate::model::{self, Load, ModelDef, Pin};
use crate::suite::{Cell, Suite, TasksSpec, cell_id};
use crate::workload::{Kind, Params, Step, Task, TaskCtx, Workload, WorkloadDef, WorkloadError};

/// Makes a fresh workload instance for each window (in the cell host).
#[derive(Clone)]
pub struct CustomWorkload(Arc<dyn Fn() -> Box<dyn Workload> + Send + Sync>);

impl CustomWorkload {
    /// Builds the workload.
    pub fn build(&self) -> Box<dyn Workload> {
        (self.0)()
    }
}

impl std::fmt::Debug for CustomWorkload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CustomWorkload")
    }
}

struct FnWorkload<F> {
    op: Arc<F>,
}

impl<F, R> Workload for FnWorkload<F>
where
    F: Fn(u64) -> R + Send + Sync + 'static,
{
    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        Ok(Box::new(FnTask {
            op: Arc::clone(&self.op),
            x: ctx.seed | 1,
        }))
    }
}

struct FnTask<F> {
    op: Arc<F>,
    x: u64,
}

impl<F, R> Task for FnTask<F>
where
    F: Fn(u64) -> R,
{
    #[inline]
    fn step(&mut self) -> Result<Step, WorkloadError> {
        // xorshift64: a cheap, deterministic input sequence per task.
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        black_box((self.op)(black_box(self.x)));
        Ok(Step::Done)
    }
}

/// The cells that run `op` as `name` under `models` with each worker count (one task per
/// worker; the event loop always has one worker and gets one task), pinned spread, closed
/// loop.
pub fn cells<F, R>(name: &str, op: F, models: &[&'static ModelDef], workers: &[usize]) -> Vec<Cell>
where
    F: Fn(u64) -> R + Send + Sync + 'static,
{
    // The registry is static; a user workload gets a leaked entry (a few bytes per call).
    let id: &'static str = Box::leak(name.to_string().into_boxed_str());
    let def: &'static WorkloadDef = Box::leak(Box::new(WorkloadDef {
        id,
        kind: Kind::Cpu,
        op: "one call of a user closure",
        params: &[],
        build: |_| {
            Err(WorkloadError::Other(
                "a custom workload is built by its closure".into(),
            ))
        },
    }));
    let op = Arc::new(op);
    let make = CustomWorkload(Arc::new(move || {
        Box::new(FnWorkload {
            op: Arc::clone(&op),
        }) as Box<dyn Workload>
    }));
    let params = Params::default();
    let mut out = Vec::new();
    for &m in models {
        let ws: Vec<usize> = if m.single_worker {
            vec![1]
        } else {
            workers.to_vec()
        };
        for w in ws {
            if out
                .iter()
                .any(|c: &Cell| c.model.id == m.id && c.workers == w)
            {
                continue;
            }
            out.push(Cell {
                id: cell_id(id, &params, m.id, w, w, Pin::Spread, &Load::Closed),
                workload: def,
                custom: Some(make.clone()),
                params_raw: Default::default(),
                params: params.clone(),
                model: m,
                workers: w,
                tasks: w,
                tasks_spec: TasksSpec::PerWorker,
                pin: Pin::Spread,
                load: Load::Closed,
            });
        }
    }
    out
}

/// A suite that runs `op` under every model with 1 worker and with one per core: what
/// `concbench run` would do with a suite file, for code that is not a built-in workload.
pub fn suite<F, R>(name: &str, op: F) -> Suite
where
    F: Fn(u64) -> R + Send + Sync + 'static,
{
    let cores = crate::sys::allowed_cpus().len().max(1);
    let mut workers = vec![1];
    if cores > 1 {
        workers.push(cores);
    }
    let models: Vec<&'static ModelDef> = model::REGISTRY.iter().collect();
    Suite {
        name: name.to_string(),
        path: PathBuf::from(format!("<custom {name}>")),
        description: format!("{name} under every model"),
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        repeats: 3,
        noise: NoiseConfig::default(),
        cells: cells(name, op, &models, &workers),
        mechanics: Vec::new(),
        servers: Vec::new(),
        window_timeout: None,
    }
}
