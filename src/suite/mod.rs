//! Suites: `workloads/*.toml` → the matrix of cells to run, validated with clear errors.
//!
//! A suite file has top-level settings (name, warmup, duration, repeats, noise threshold) and
//! one or more `[[matrix]]` tables; each expands to workload × params × model × workers ×
//! tasks × pin × load. Every value is read with its byte span, so any error names the file,
//! line, column and key, and says how to fix it. The format is documented in
//! `workloads/README.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

mod check;
mod expand;
pub mod limits;

use self::expand::{expand, resolve_params, show};
use crate::measure::noise::NoiseConfig;
use crate::mechanic::{self, MechanicDef};
use crate::model::{self, Load, ModelDef, Pin};
use crate::workload::{self, Params, WorkloadDef};

/// A bad suite file: where, which key, what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {key}: {message}")]
pub struct SuiteError {
    /// The suite file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The key at fault (`matrix[2].workers`).
    pub key: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

/// How many tasks a cell has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TasksSpec {
    /// A fixed number of tasks, whatever the worker count.
    Fixed(usize),
    /// One task per worker (T = W).
    PerWorker,
}

/// One cell of the matrix: everything needed to run it.
#[derive(Debug, Clone)]
pub struct Cell {
    /// `workload/params/model/wN/tN/pin/load`: the same string in CLI, JSON, CSV, reports.
    pub id: String,
    /// The workload kind.
    pub workload: &'static WorkloadDef,
    /// A workload made by user code instead of `workload.build` (the library API); None for
    /// suite cells.
    pub custom: Option<crate::custom::CustomWorkload>,
    /// Parameters as written (name → raw value), for building the workload in the cell host.
    pub params_raw: BTreeMap<String, String>,
    /// Parameters resolved and typed (defaults filled in).
    pub params: Params,
    /// The model.
    pub model: &'static ModelDef,
    /// Workers (W).
    pub workers: usize,
    /// Tasks (T).
    pub tasks: usize,
    /// How T was given (for finding the 1-worker reference of a scaling series).
    pub tasks_spec: TasksSpec,
    /// Pinning.
    pub pin: Pin,
    /// Load shape.
    pub load: Load,
}

/// A parsed suite.
#[derive(Debug, Clone)]
pub struct Suite {
    /// Suite name (defaults to the file stem).
    pub name: String,
    /// The file it came from.
    pub path: PathBuf,
    /// What the suite shows.
    pub description: String,
    /// Warmup before each measured window.
    pub warmup: Duration,
    /// Length of each measured window.
    pub duration: Duration,
    /// Measured windows per cell (interleaved across cells).
    pub repeats: u32,
    /// Noise guard settings.
    pub noise: NoiseConfig,
    /// The expanded matrix, in file order.
    pub cells: Vec<Cell>,
    /// The OS mechanics to measure, in file order.
    pub mechanics: Vec<MechCell>,
    /// Backend servers under load, in file order.
    pub servers: Vec<ServerCell>,
    /// `window_timeout`: how long a window may take beyond warmup + duration (setup and
    /// teardown) before the watchdog kills it and records it timed out. None: the default
    /// (`runner::DEFAULT_WINDOW_TIMEOUT`).
    pub window_timeout: Option<Duration>,
}

/// One server cell: an architecture with W workers and a handler, under a load of C
/// connections (closed loop or at a rate).
#[derive(Debug, Clone)]
pub struct ServerCell {
    /// `server/arch/wW/cC/handler/load`.
    pub id: String,
    /// The architecture.
    pub arch: &'static crate::server::ArchDef,
    /// Workers (1 where the architecture has none).
    pub workers: usize,
    /// Keep-alive connections the load generator opens.
    pub connections: usize,
    /// What each request does.
    pub handler: crate::server::handler::HandlerSpec,
    /// Closed loop or open loop at a rate (requests/s).
    pub load: Load,
    /// One SO_REUSEPORT listener per worker.
    pub reuseport: bool,
    /// Helper or I/O threads (loop-helpers, io-threads).
    pub helpers: usize,
}

/// One OS-mechanic measurement of a suite: a mechanic with fixed parameters.
#[derive(Debug, Clone)]
pub struct MechCell {
    /// `mechanic/params`, the same string in results and criterion.
    pub id: String,
    /// The mechanic.
    pub mechanic: &'static MechanicDef,
    /// Parameters as written.
    pub params_raw: BTreeMap<String, String>,
    /// Parameters resolved.
    pub params: Params,
}

/// Largest worker count accepted (each worker is a thread or process).
pub const MAX_WORKERS: usize = 4096;
/// Largest task count accepted (each task may hold a socket).
pub const MAX_TASKS: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: Option<Spanned<String>>,
    description: Option<String>,
    warmup: Option<Spanned<Value>>,
    duration: Option<Spanned<Value>>,
    repeats: Option<Spanned<Value>>,
    noise_threshold: Option<Spanned<Value>>,
    noise_reruns: Option<Spanned<Value>>,
    window_timeout: Option<Spanned<Value>>,
    #[serde(default)]
    matrix: Vec<Spanned<MatrixFile>>,
    #[serde(default)]
    mechanic: Vec<Spanned<MechanicFile>>,
    #[serde(default)]
    server: Vec<Spanned<ServerFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    arch: Spanned<Value>,
    workers: Option<Spanned<Value>>,
    connections: Spanned<Value>,
    handler: Option<Spanned<Value>>,
    load: Option<Spanned<Value>>,
    reuseport: Option<bool>,
    helpers: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MechanicFile {
    mechanic: Spanned<Value>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    workload: Spanned<Value>,
    #[serde(default)]
    params: BTreeMap<String, Spanned<Value>>,
    models: Spanned<Value>,
    workers: Option<Spanned<Value>>,
    tasks: Option<Spanned<Value>>,
    pin: Option<Spanned<Value>>,
    load: Option<Spanned<Value>>,
}

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Memory the cells may use (see [`limits::machine_memory`]); None: not checked.
    mem: Option<u64>,
}

impl Ctx<'_> {
    fn err(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> SuiteError {
        let (line, column) = line_col(self.text, span.start);
        SuiteError {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

/// 1-based line and column of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(at, |nl| at - nl - 1) + 1;
    (line, column)
}

/// Reads and parses a suite file.
pub fn load(path: &Path) -> Result<Suite, SuiteError> {
    let bytes = std::fs::read(path).map_err(|e| SuiteError {
        file: path.display().to_string(),
        line: 0,
        column: 0,
        key: "file".into(),
        message: format!("cannot read the suite: {e}: check the path (suites are in workloads/)"),
    })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| check::utf8_error(&path.display().to_string(), &bytes, &e))?;
    parse(text, path)
}

/// Parses suite text (`path` names it in errors and sets the default name).
pub fn parse(text: &str, path: &Path) -> Result<Suite, SuiteError> {
    let file = path.display().to_string();
    let cx = Ctx {
        file: &file,
        text,
        mem: limits::machine_memory(),
    };
    let raw: SuiteFile = toml::from_str(text).map_err(|e| check::toml_error(&cx, &e))?;
    let name = match &raw.name {
        Some(n) if n.get_ref().trim().is_empty() => {
            return Err(cx.err(
                n.span(),
                "name",
                "the suite name is empty: give it a short name",
            ));
        }
        Some(n) => n.get_ref().clone(),
        None => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "suite".into()),
    };
    let warmup = opt_duration(&cx, raw.warmup.as_ref(), "warmup", "500ms")?;
    let duration = opt_duration(&cx, raw.duration.as_ref(), "duration", "2s")?;
    if duration.is_zero() {
        let span = raw.duration.as_ref().map(|d| d.span()).unwrap_or(0..0);
        return Err(cx.err(
            span,
            "duration",
            "the measured window must be longer than 0: e.g. \"2s\"",
        ));
    }
    for (key, d, v) in [
        ("duration", duration, &raw.duration),
        ("warmup", warmup, &raw.warmup),
    ] {
        if d > limits::MAX_WINDOW {
            let span = v.as_ref().map(|v| v.span()).unwrap_or(0..0);
            return Err(cx.err(span, key, "is longer than 1 hour: use at most \"1h\""));
        }
    }
    let window_timeout = match &raw.window_timeout {
        None => None,
        Some(v) => {
            let d = opt_duration(&cx, Some(v), "window_timeout", "0s")?;
            if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
                return Err(cx.err(
                    v.span(),
                    "window_timeout",
                    "must be from \"1s\" to \"1h\": how long a window may run beyond warmup + \
                     duration (setup and teardown) before it is killed, e.g. \"30s\"",
                ));
            }
            Some(d)
        }
    };
    let repeats = match &raw.repeats {
        None => 3,
        Some(v) => match v.get_ref() {
            Value::Integer(n) if (1..=1000).contains(n) => *n as u32,
            _ => {
                return Err(cx.err(
                    v.span(),
                    "repeats",
                    "must be a whole number from 1 to 1000, e.g. repeats = 3",
                ));
            }
        },
    };
    let mut noise = NoiseConfig::default();
    if let Some(v) = &raw.noise_threshold {
        noise.threshold = match v.get_ref() {
            Value::String(s) => parse_percent(s),
            Value::Float(f) if (0.0..=1.0).contains(f) => Some(*f),
            _ => None,
        }
        .ok_or_else(|| {
            cx.err(
                v.span(),
                "noise_threshold",
                "must be a percentage such as \"10%\" (0% to 100%)",
            )
        })?;
    }
    if let Some(v) = &raw.noise_reruns {
        noise.max_reruns = match v.get_ref() {
            Value::Integer(n) if (0..=10).contains(n) => *n as u32,
            _ => {
                return Err(cx.err(
                    v.span(),
                    "noise_reruns",
                    "must be a whole number from 0 to 10",
                ));
            }
        };
    }
    if raw.matrix.is_empty() && raw.mechanic.is_empty() && raw.server.is_empty() {
        return Err(cx.err(
            0..0,
            "matrix",
            "the suite has no [[matrix]], [[mechanic]] or [[server]] table: add one (see workloads/README.md)",
        ));
    }
    let mut cells = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (mi, m) in raw.matrix.iter().enumerate() {
        let (line, _) = line_col(text, m.span().start);
        for cell in expand(&cx, mi, m.get_ref())? {
            if let Some(prev) = seen.insert(cell.id.clone(), line) {
                if prev != line {
                    return Err(cx.err(m.span(), &format!("matrix[{mi}]"), format!("cell {} is also produced by the matrix at line {prev}: remove one of them", cell.id)));
                }
                continue;
            }
            cells.push(cell);
        }
    }
    let mut servers = Vec::new();
    for (si, srv) in raw.server.iter().enumerate() {
        for c in expand::expand_server(&cx, si, srv.get_ref())? {
            if servers.iter().any(|x: &ServerCell| x.id == c.id) {
                return Err(cx.err(
                    srv.span(),
                    &format!("server[{si}]"),
                    format!("{} is listed twice: remove one", c.id),
                ));
            }
            servers.push(c);
        }
    }
    let mut mechanics = Vec::new();
    for (mi, m) in raw.mechanic.iter().enumerate() {
        let m = m.get_ref();
        let key = format!("mechanic[{mi}]");
        let def = match m.mechanic.get_ref() {
            Value::String(s) => mechanic::find(s).map_err(|e| cx.err(m.mechanic.span(), &format!("{key}.mechanic"), e))?,
            _ => return Err(cx.err(m.mechanic.span(), &format!("{key}.mechanic"), "must be a mechanic id string, e.g. mechanic = \"pingpong\" (`concbench list` shows them)")),
        };
        let env = mechanic_env();
        for (raw, params) in resolve_params(
            &cx,
            &key,
            def.params,
            def.id,
            &m.params,
            m.mechanic.span(),
            false,
        )? {
            // Build it now (cheap, nothing is allocated) so a value out of range is refused
            // at load, not after the cells before it have run.
            if let Err(e) = (def.build)(&params, &env) {
                let span = m
                    .params
                    .iter()
                    .find(|(n, _)| e.to_string().contains(&format!("`{n}`")))
                    .map_or(m.mechanic.span(), |(_, v)| v.span());
                return Err(cx.err(
                    span,
                    &format!("{key}.params"),
                    format!("{e} (`{}`)", def.id),
                ));
            }
            let id = format!("{}/{}", def.id, params.canonical());
            if mechanics.iter().any(|x: &MechCell| x.id == id) {
                return Err(cx.err(
                    m.mechanic.span(),
                    &key,
                    format!("{id} is listed twice: remove one"),
                ));
            }
            mechanics.push(MechCell {
                id,
                mechanic: def,
                params_raw: raw,
                params,
            });
        }
    }
    Ok(Suite {
        name,
        path: path.to_path_buf(),
        description: raw.description.unwrap_or_default(),
        warmup,
        duration,
        repeats,
        noise,
        cells,
        mechanics,
        servers,
        window_timeout,
    })
}

/// The environment mechanics are built in at load time: this machine's cores, padded to two
/// so a cross-core placement is judged at run time (where it is reported per mechanic), not
/// refused on a one-core machine.
fn mechanic_env() -> crate::mechanic::MechanicEnv {
    let mut env = crate::mechanic::MechanicEnv::current(None);
    while env.cores.len() < 2 {
        env.cores.push(env.cores.last().map_or(0, |c| c + 1));
    }
    env
}

fn parse_percent(s: &str) -> Option<f64> {
    let v: f64 = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (0.0..=100.0).contains(&v).then_some(v / 100.0)
}

fn opt_duration(
    cx: &Ctx<'_>,
    v: Option<&Spanned<Value>>,
    key: &str,
    default: &str,
) -> Result<Duration, SuiteError> {
    match v {
        None => Ok(workload::param::parse_duration(default).expect("valid default")),
        Some(v) => match v.get_ref() {
            Value::String(s) => workload::param::parse_duration(s).ok_or_else(|| {
                let why = workload::param::parse(workload::Unit::Duration, s).err();
                cx.err(v.span(), key, why.unwrap_or_default())
            }),
            other => Err(cx.err(
                v.span(),
                key,
                format!(
                    "{} is not a duration: write it as a string with a unit, such as \"500ms\" or \"2s\"",
                    show(other)
                ),
            )),
        },
    }
}

/// The canonical cell id: `workload/params/model/wN/tN/pin/load`.
pub fn cell_id(
    workload: &str,
    params: &Params,
    model: &str,
    w: usize,
    t: usize,
    pin: Pin,
    load: &Load,
) -> String {
    format!(
        "{workload}/{}/{model}/w{w}/t{t}/{}/{}",
        params.canonical(),
        pin.id(),
        load.id()
    )
}

impl Suite {
    /// Keeps only the cells whose model and workload, and the mechanics whose id, are in the
    /// given lists. Cells are dropped when only mechanics are asked for and vice versa. Errors
    /// name unknown ids, or say when nothing is left.
    pub fn filter(
        &mut self,
        models: &[String],
        workloads: &[String],
        mechanics: &[String],
    ) -> Result<(), String> {
        for m in models {
            model::find(m)?;
        }
        for w in workloads {
            workload::find(w)?;
        }
        for m in mechanics {
            mechanic::find(m)?;
        }
        let cells_asked = !models.is_empty() || !workloads.is_empty();
        if !mechanics.is_empty() && !cells_asked {
            self.cells.clear();
        }
        self.cells.retain(|c| {
            (models.is_empty() || models.iter().any(|m| m == c.model.id))
                && (workloads.is_empty() || workloads.iter().any(|w| w == c.workload.id))
        });
        if cells_asked && mechanics.is_empty() {
            self.mechanics.clear();
        }
        self.mechanics
            .retain(|m| mechanics.is_empty() || mechanics.iter().any(|x| x == m.mechanic.id));
        if cells_asked || !mechanics.is_empty() {
            self.servers.clear();
        }
        if self.cells.is_empty() && self.mechanics.is_empty() && self.servers.is_empty() {
            return Err(format!(
                "nothing in suite `{}` matches the --model/--workload/--mechanic filters",
                self.name
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
