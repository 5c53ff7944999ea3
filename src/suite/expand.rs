//! Expanding a suite's tables: parameter lists into their cartesian product, and a
//! `[[matrix]]` table into cells (models × workers × tasks × pin × load), with every value
//! checked and every error pointing at its line and key.

use std::collections::BTreeMap;

use toml::{Spanned, Value};

use super::check::list_ok;
use super::{
    Cell, Ctx, MAX_TASKS, MAX_WORKERS, MatrixFile, ServerCell, ServerFile, SuiteError, TasksSpec,
    cell_id,
};
use crate::model::{self, Load, ModelDef, Pin};
use crate::workload::{self, Params};

pub(super) fn show(v: &Value) -> String {
    v.to_string()
}

/// A value or a list of values, each with its span.
fn items(v: &Spanned<Value>) -> Vec<(Value, std::ops::Range<usize>)> {
    match v.get_ref() {
        Value::Array(a) => a.iter().map(|x| (x.clone(), v.span())).collect(),
        x => vec![(x.clone(), v.span())],
    }
}

/// One combination of parameters: as written, and resolved.
type ParamCombo = (BTreeMap<String, String>, Params);

/// Expands `params` (each a value or a list) into their cartesian product, each resolved
/// against `defs`. Errors point at the offending parameter.
pub(super) fn resolve_params(
    cx: &Ctx<'_>,
    key: &str,
    defs: &'static [crate::workload::ParamDef],
    owner: &str,
    params: &BTreeMap<String, Spanned<Value>>,
    fallback: std::ops::Range<usize>,
    workload: bool,
) -> Result<Vec<ParamCombo>, SuiteError> {
    let k = |p: &str| format!("{key}.{p}");
    let mut param_lists: Vec<(String, Vec<String>, std::ops::Range<usize>)> = Vec::new();
    for (name, v) in params {
        list_ok(cx, v, &k(&format!("params.{name}")))?;
        let mut vals = Vec::new();
        for (x, _) in items(v) {
            let raw =
                match x {
                    Value::String(s) => s,
                    Value::Integer(n) => n.to_string(),
                    Value::Boolean(b) => b.to_string(),
                    Value::Float(f) => f.to_string(),
                    other => return Err(cx.err(
                        v.span(),
                        &k(&format!("params.{name}")),
                        format!(
                            "{} is not a parameter value: use a string like \"4KiB\" or a number",
                            show(&other)
                        ),
                    )),
                };
            vals.push(raw);
        }
        if vals.is_empty() {
            return Err(cx.err(
                v.span(),
                &k(&format!("params.{name}")),
                "the list is empty: give at least one value",
            ));
        }
        param_lists.push((name.clone(), vals, v.span()));
    }
    let mut combos: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (name, vals, _) in &param_lists {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(name.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    let mut out = Vec::new();
    for raw in combos {
        let resolved = if workload {
            Params::resolve_workload(defs, &raw)
        } else {
            Params::resolve(defs, &raw)
        };
        let params = resolved.map_err(|e| {
            let span = param_lists
                .iter()
                .find(|(n, _, _)| e.contains(&format!("`{n}`")))
                .map(|(_, _, s)| s.clone())
                .unwrap_or(fallback.clone());
            cx.err(span, &k("params"), format!("{e} (`{owner}`)"))
        })?;
        out.push((raw, params));
    }
    Ok(out)
}

pub(super) fn expand(cx: &Ctx<'_>, mi: usize, m: &MatrixFile) -> Result<Vec<Cell>, SuiteError> {
    let k = |key: &str| format!("matrix[{mi}].{key}");
    let def = match m.workload.get_ref() {
        Value::String(s) => {
            workload::find(s).map_err(|e| cx.err(m.workload.span(), &k("workload"), e))?
        }
        _ => return Err(cx.err(
            m.workload.span(),
            &k("workload"),
            "must be a workload id string, e.g. workload = \"spin\" (`concbench list` shows them)",
        )),
    };
    let mut resolved = resolve_params(
        cx,
        &format!("matrix[{mi}]"),
        def.params,
        def.id,
        &m.params,
        m.workload.span(),
        true,
    )?;
    for (_, params) in &resolved {
        (def.build)(params).map_err(|e| {
            let named = e.to_string();
            let span = m
                .params
                .iter()
                .find(|(n, _)| named.contains(&format!("`{n}`")))
                .map_or(m.workload.span(), |(_, v)| v.span());
            cx.err(span, &k("params"), format!("{e} (workload `{}`)", def.id))
        })?;
    }
    let resolved = std::mem::take(&mut resolved);

    list_ok(cx, &m.models, &k("models"))?;
    for (key, v) in [
        ("workers", &m.workers),
        ("tasks", &m.tasks),
        ("pin", &m.pin),
        ("load", &m.load),
    ] {
        if let Some(v) = v {
            list_ok(cx, v, &k(key))?;
        }
    }
    let mut models: Vec<&'static ModelDef> = Vec::new();
    for (x, span) in items(&m.models) {
        match x {
            Value::String(s) => models.push(model::find(&s).map_err(|e| cx.err(span, &k("models"), e))?),
            _ => return Err(cx.err(span, &k("models"), "must be a list of model ids, e.g. models = [\"event-loop\", \"threads\", \"processes\"]")),
        }
    }
    if models.is_empty() {
        return Err(cx.err(
            m.models.span(),
            &k("models"),
            "the list is empty: name at least one model",
        ));
    }

    let workers = match &m.workers {
        None => vec![1],
        Some(v) => {
            let mut out = Vec::new();
            for (x, span) in items(v) {
                let n = match &x {
                    Value::Integer(n) => Some(*n),
                    Value::String(s) => cores_expr(s),
                    _ => None,
                };
                match n {
                    Some(n) if n >= 1 && n as usize <= MAX_WORKERS => out.push(n as usize),
                    Some(n) => {
                        return Err(cx.err(
                            span,
                            &k("workers"),
                            format!("{n} workers is out of range: use 1 to {MAX_WORKERS}"),
                        ));
                    }
                    None => {
                        return Err(cx.err(
                            span,
                            &k("workers"),
                            format!(
                                "{} is not a worker count: use whole numbers or \"cores\" / \"N*cores\" (N times this machine's allowed cores), e.g. workers = [1, \"cores\", \"4*cores\"]",
                                show(&x)
                            ),
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(cx.err(
                    v.span(),
                    &k("workers"),
                    "the list is empty: give at least one worker count",
                ));
            }
            out
        }
    };

    let tasks: Vec<(TasksSpec, std::ops::Range<usize>)> = match &m.tasks {
        None => vec![(TasksSpec::PerWorker, 0..0)],
        Some(v) => {
            let mut out = Vec::new();
            for (x, span) in items(v) {
                match x {
                    Value::String(s) if s == "workers" => out.push((TasksSpec::PerWorker, span)),
                    Value::Integer(n) if n >= 1 && n as usize <= MAX_TASKS => out.push((TasksSpec::Fixed(n as usize), span)),
                    Value::Integer(n) => return Err(cx.err(span, &k("tasks"), format!("{n} tasks is out of range: use 1 to {MAX_TASKS}"))),
                    other => return Err(cx.err(span, &k("tasks"), format!("{} is not a task count: use whole numbers or \"workers\" (one task per worker)", show(&other)))),
                }
            }
            if out.is_empty() {
                return Err(cx.err(
                    v.span(),
                    &k("tasks"),
                    "the list is empty: give at least one task count",
                ));
            }
            out
        }
    };

    let pins = match &m.pin {
        None => vec![Pin::Spread],
        Some(v) => {
            let mut out = Vec::new();
            for (x, span) in items(v) {
                match x {
                    Value::String(s) => {
                        out.push(Pin::parse(&s).map_err(|e| cx.err(span, &k("pin"), e))?)
                    }
                    other => {
                        return Err(cx.err(
                            span,
                            &k("pin"),
                            format!(
                                "{} is not a pin: use \"none\", \"spread\" or \"same-core\"",
                                show(&other)
                            ),
                        ));
                    }
                }
            }
            out
        }
    };

    let loads = match &m.load {
        None => vec![Load::Closed],
        Some(v) => {
            let mut out = Vec::new();
            let list: Vec<Value> = match v.get_ref() {
                Value::Array(a) => a.clone(),
                x => vec![x.clone()],
            };
            for x in list {
                out.push(parse_load(&x).map_err(|e| cx.err(v.span(), &k("load"), e))?);
            }
            out
        }
    };

    let mut cells = Vec::new();
    for (raw, params) in &resolved {
        for model in &models {
            let ws: Vec<usize> = if model.single_worker {
                vec![1]
            } else {
                workers.clone()
            };
            for &w in &ws {
                for (tspec, tspan) in &tasks {
                    let t = match tspec {
                        TasksSpec::Fixed(n) => *n,
                        TasksSpec::PerWorker => w,
                    };
                    if t < w {
                        return Err(cx.err(tspan.clone(), &k("tasks"), format!("{t} tasks cannot keep {w} workers busy under model `{}`: give at least as many tasks as workers, or use tasks = \"workers\"", model.id)));
                    }
                    if let Some(mem) = cx.mem {
                        super::limits::check_memory(def.id, params, t, mem).map_err(|e| {
                            let at = m.tasks.as_ref().or(m.workers.as_ref());
                            let (span, key) = match at {
                                Some(v) if m.tasks.is_some() => (v.span(), "tasks"),
                                Some(v) => (v.span(), "workers"),
                                None => (m.workload.span(), "params"),
                            };
                            cx.err(span, &k(key), e)
                        })?;
                    }
                    for &pin in &pins {
                        for load in &loads {
                            let id = cell_id(def.id, params, model.id, w, t, pin, load);
                            cells.push(Cell {
                                id,
                                workload: def,
                                custom: None,
                                params_raw: raw.clone(),
                                params: params.clone(),
                                model,
                                workers: w,
                                tasks: t,
                                tasks_spec: *tspec,
                                pin,
                                load: *load,
                            });
                        }
                    }
                }
            }
        }
    }
    Ok(cells)
}

/// `"cores"` or `"N*cores"`: N × the cores this process may use.
fn cores_expr(s: &str) -> Option<i64> {
    let s = s.replace(' ', "");
    let n: i64 = if s == "cores" {
        1
    } else {
        s.strip_suffix("*cores")?.parse().ok()?
    };
    n.checked_mul(crate::sys::allowed_cpus().len().max(1) as i64)
}

fn parse_load(v: &Value) -> Result<Load, String> {
    const HOW: &str = "use \"closed\" or { rate = OPS_PER_SECOND } (open loop)";
    match v {
        Value::String(s) if s == "closed" => Ok(Load::Closed),
        Value::Table(t) => {
            if let Some(extra) = t.keys().find(|k| *k != "rate") {
                return Err(format!("unknown key `{extra}` in load: {HOW}"));
            }
            let rate = match t.get("rate") {
                Some(Value::Integer(n)) => *n as f64,
                Some(Value::Float(f)) => *f,
                _ => return Err(format!("open-loop load needs a numeric rate: {HOW}")),
            };
            if !(rate.is_finite() && rate > 0.0 && rate <= 1e9) {
                return Err(format!(
                    "rate {rate} is out of range: use a rate above 0 and at most 1e9 ops/s"
                ));
            }
            Ok(Load::Open { rate })
        }
        other => Err(format!("{} is not a load: {HOW}", show(other))),
    }
}

/// Largest connection count a server cell may ask for.
pub const MAX_CONNECTIONS: usize = 100_000;

/// Whole numbers (or `"cores"` expressions when `cores_ok`) from a value or a list, each in
/// `1..=max`.
fn counts(
    cx: &Ctx<'_>,
    v: &Spanned<Value>,
    key: &str,
    what: &str,
    max: usize,
    cores_ok: bool,
) -> Result<Vec<usize>, SuiteError> {
    let mut out = Vec::new();
    for (x, span) in items(v) {
        let n = match &x {
            Value::Integer(n) => Some(*n),
            Value::String(s) if cores_ok => cores_expr(s),
            _ => None,
        };
        match n {
            Some(n) if n >= 1 && n as usize <= max => out.push(n as usize),
            Some(n) => {
                return Err(cx.err(
                    span,
                    key,
                    format!("{n} {what} is out of range: use 1 to {max}"),
                ));
            }
            None => {
                return Err(cx.err(
                    span,
                    key,
                    format!("{} is not a count of {what}: use whole numbers", show(&x)),
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(cx.err(
            v.span(),
            key,
            format!("the list is empty: give at least one count of {what}"),
        ));
    }
    Ok(out)
}

/// Expands a `[[server]]` table: arch × workers × connections × handler × load.
pub(super) fn expand_server(
    cx: &Ctx<'_>,
    si: usize,
    f: &ServerFile,
) -> Result<Vec<ServerCell>, SuiteError> {
    let k = |key: &str| format!("server[{si}].{key}");
    let lists = [
        ("arch", Some(&f.arch)),
        ("workers", f.workers.as_ref()),
        ("connections", Some(&f.connections)),
        ("handler", f.handler.as_ref()),
        ("load", f.load.as_ref()),
        ("helpers", f.helpers.as_ref()),
    ];
    for (key, v) in lists {
        if let Some(v) = v {
            list_ok(cx, v, &k(key))?;
        }
    }
    let mut archs = Vec::new();
    for (x, span) in items(&f.arch) {
        match x {
            Value::String(s) => {
                archs.push(crate::server::find_arch(&s).map_err(|e| cx.err(span, &k("arch"), e))?)
            }
            other => {
                return Err(cx.err(
                    span,
                    &k("arch"),
                    format!(
                        "{} is not an architecture id, e.g. arch = [\"event-loop\", \"prefork\"]",
                        show(&other)
                    ),
                ));
            }
        }
    }
    let workers = match &f.workers {
        None => vec![1],
        Some(v) => counts(cx, v, &k("workers"), "workers", MAX_WORKERS, true)?,
    };
    let connections = counts(
        cx,
        &f.connections,
        &k("connections"),
        "connections",
        MAX_CONNECTIONS,
        false,
    )?;
    let helpers = match &f.helpers {
        None => 2,
        Some(v) => *counts(cx, v, &k("helpers"), "helpers", 256, true)?
            .first()
            .unwrap_or(&2),
    };
    let mut handlers = Vec::new();
    match &f.handler {
        None => {
            handlers.push(crate::server::handler::HandlerSpec::parse("none").expect("none parses"))
        }
        Some(v) => {
            for (x, span) in items(v) {
                match x {
                    Value::String(s) => handlers.push(
                        crate::server::handler::HandlerSpec::parse(&s)
                            .map_err(|e| cx.err(span, &k("handler"), e))?,
                    ),
                    other => {
                        return Err(cx.err(
                            span,
                            &k("handler"),
                            format!(
                                "{} is not a handler: use \"none\" or \"WORKLOAD:k=v\"",
                                show(&other)
                            ),
                        ));
                    }
                }
            }
        }
    }
    let loads = match &f.load {
        None => vec![Load::Closed],
        Some(v) => {
            let list: Vec<Value> = match v.get_ref() {
                Value::Array(a) => a.clone(),
                x => vec![x.clone()],
            };
            let mut out = Vec::new();
            for x in list {
                out.push(parse_load(&x).map_err(|e| cx.err(v.span(), &k("load"), e))?);
            }
            out
        }
    };
    let reuseport = f.reuseport.unwrap_or(false);
    let mut out = Vec::new();
    for arch in &archs {
        let ws: Vec<usize> = if arch.uses_workers {
            workers.clone()
        } else {
            vec![1]
        };
        for &w in &ws {
            for &c in &connections {
                for h in &handlers {
                    for load in &loads {
                        let id = format!("server/{}/w{w}/c{c}/{}/{}", arch.id, h.id(), load.id());
                        if out.iter().any(|x: &ServerCell| x.id == id) {
                            continue;
                        }
                        out.push(ServerCell {
                            id,
                            arch,
                            workers: w,
                            connections: c,
                            handler: h.clone(),
                            load: *load,
                            reuseport,
                            helpers,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}
