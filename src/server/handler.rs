//! What a server does per request: nothing (`none`, for raw request rate), or one op of a
//! concbench workload (`spin:op_time=10us`, `downstream:delay=1ms`, `fsync`, …). The workload is
//! built and prepared once in the server's first process, before any worker exists (so spin
//! is calibrated once and a downstream server is forked from a single-threaded process); every
//! connection gets its own task (its own downstream connection, its own file offsets).

use std::collections::BTreeMap;

use crate::workload::{self, Mode, PrepareEnv, Task, TaskCtx, Workload, WorkloadDef};

/// A handler as written on the command line or in a suite: `none` or `WORKLOAD[:k=v,k=v]`.
#[derive(Debug, Clone)]
pub struct HandlerSpec {
    /// The workload run per request; None for `none`.
    pub workload: Option<&'static WorkloadDef>,
    /// Its parameters as written.
    pub params_raw: BTreeMap<String, String>,
}

impl HandlerSpec {
    /// Parses `none` or `WORKLOAD[:k=v,k=v]`; errors name the workload or parameter at fault.
    pub fn parse(s: &str) -> Result<HandlerSpec, String> {
        let s = s.trim();
        if s == "none" || s.is_empty() {
            return Ok(HandlerSpec {
                workload: None,
                params_raw: BTreeMap::new(),
            });
        }
        let (id, rest) = s.split_once(':').unwrap_or((s, ""));
        let def = workload::find(id)?;
        let mut params_raw = BTreeMap::new();
        for kv in rest.split(',').filter(|x| !x.trim().is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                format!("handler parameter `{kv}` is not k=v: write e.g. {id}:op_time=10us")
            })?;
            params_raw.insert(k.trim().to_string(), v.trim().to_string());
        }
        // Check params now, so a bad handler fails before any server starts.
        workload::build(def, &params_raw).map_err(|e| format!("handler {id}: {e}"))?;
        Ok(HandlerSpec {
            workload: Some(def),
            params_raw,
        })
    }

    /// Canonical text: `none` or `workload:k=v,…` with defaults filled in.
    pub fn id(&self) -> String {
        match self.workload {
            None => "none".into(),
            Some(def) => {
                let params = workload::Params::resolve(def.params, &self.params_raw)
                    .map(|p| p.canonical())
                    .unwrap_or_default();
                format!("{}:{params}", def.id)
            }
        }
    }
}

/// A prepared handler, shared by every worker (threads) or inherited by them (processes).
pub struct Handler {
    workload: Option<Box<dyn Workload>>,
    _scratch: Option<tempfile::TempDir>,
}

impl Handler {
    /// Builds and prepares the workload. Call before creating workers.
    pub fn prepare(
        spec: &HandlerSpec,
        connections_hint: usize,
        scratch_root: &std::path::Path,
    ) -> Result<Handler, String> {
        let Some(def) = spec.workload else {
            return Ok(Handler {
                workload: None,
                _scratch: None,
            });
        };
        let (_, mut wl) = workload::build(def, &spec.params_raw)?;
        let scratch = tempfile::Builder::new()
            .prefix("concbench-serve-")
            .tempdir_in(scratch_root)
            .map_err(|e| format!("creating the handler's scratch directory: {e}"))?;
        wl.prepare(&PrepareEnv::new(
            scratch.path().to_path_buf(),
            connections_hint.max(1),
        ))
        .map_err(|e| format!("preparing handler {}: {e}", def.id))?;
        Ok(Handler {
            workload: Some(wl),
            _scratch: Some(scratch),
        })
    }

    /// A task for connection number `conn`, or None for the `none` handler.
    pub fn task(&self, conn: usize, mode: Mode) -> Result<Option<Box<dyn Task>>, String> {
        match &self.workload {
            None => Ok(None),
            Some(w) => w
                .task(&TaskCtx {
                    task: conn,
                    mode,
                    seed: crate::model::worker::task_seed(conn),
                })
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }

    /// What one op costs on this thread, run to completion with blocking calls on a probe
    /// task: the first op's time when it is over 10 ms (long ops are not sensitive to warm
    /// caches, and timing more would delay the start), else the median of `ops` more after
    /// it. loop-helpers uses it to decide whether a CPU op is cheap enough to run inline on
    /// its loop. None for `none`.
    pub fn measure_op(&self, ops: usize) -> Result<Option<std::time::Duration>, String> {
        use crate::server::blocking_conn::run_op_blocking;
        use std::time::{Duration, Instant};
        let Some(mut task) = self.task(usize::MAX >> 1, Mode::Blocking)? else {
            return Ok(None);
        };
        let t0 = Instant::now();
        run_op_blocking(task.as_mut())?;
        let first = t0.elapsed();
        if first > Duration::from_millis(10) {
            return Ok(Some(first));
        }
        let mut times: Vec<Duration> = (0..ops.max(1))
            .map(|_| {
                let t0 = Instant::now();
                run_op_blocking(task.as_mut()).map(|()| t0.elapsed())
            })
            .collect::<Result<_, _>>()?;
        times.sort();
        Ok(Some(times[times.len() / 2]))
    }

    /// Processes the handler started (a downstream server).
    pub fn helper_pids(&self) -> Vec<i32> {
        self.workload
            .as_ref()
            .map(|w| w.helper_pids())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_handlers_and_names_mistakes() {
        assert!(HandlerSpec::parse("none").unwrap().workload.is_none());
        let h = HandlerSpec::parse("spin:op_time=5us").unwrap();
        assert_eq!(h.id(), "spin:iterations=0,op_time=5us");
        assert!(
            HandlerSpec::parse("spinn")
                .unwrap_err()
                .contains("known workloads")
        );
        assert!(
            HandlerSpec::parse("spin:op_time")
                .unwrap_err()
                .contains("k=v")
        );
        assert!(
            HandlerSpec::parse("spin:op_tme=5us")
                .unwrap_err()
                .contains("op_tme")
        );
    }
}
