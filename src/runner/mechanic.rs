//! Runs an OS mechanic for one window in a forked host, the way cells run.
//!
//! # Timing model
//! The host builds the mechanic, then finds an iteration count whose `measure` takes about a
//! twentieth of the window (starting at 1 and growing ×4), runs a warmup call sized to the
//! warmup, and reports one measured call sized to the window. What is inside each call's
//! `elapsed` is the mechanic's own timing model (see `src/mechanic/`).

use std::time::Duration;

use super::cell::WindowEnv;
use super::{WindowError, in_host, window_budget};
use crate::mechanic::{Measured, MechanicEnv};
use crate::report::result::{MechanicResult, MechanicSample, Spread, Status};
use crate::suite::MechCell;

/// Most iterations one call may be sized to.
const MAX_ITERS: u64 = 1 << 34;

/// What one window of a mechanic sends back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MechWindow {
    /// What one iteration is, in the mechanic's words.
    pub iteration: String,
    /// The measured call.
    pub measured: Measured,
}

/// Runs one window of `m` in a fresh forked host, under the same watchdog as cells.
pub fn run_mechanic_window(
    m: &MechCell,
    env: &WindowEnv,
    mech_env: &MechanicEnv,
) -> Result<MechWindow, WindowError> {
    in_host(window_budget(env.timing, env.window_timeout) * 2, || {
        measure_window(m, env, mech_env)
    })
}

fn measure_window(
    m: &MechCell,
    env: &WindowEnv,
    mech_env: &MechanicEnv,
) -> Result<MechWindow, String> {
    let mut mech = (m.mechanic.build)(&m.params, mech_env).map_err(|e| e.to_string())?;
    let target = env.timing.duration;
    let mut iters = 1u64;
    let per_iter = loop {
        let r = mech.measure(iters)?;
        if r.elapsed >= target / 20 || iters >= MAX_ITERS {
            break r.elapsed.as_secs_f64() / iters as f64;
        }
        iters = (iters * 4).min(MAX_ITERS);
    };
    let sized = |d: Duration| -> u64 {
        if per_iter <= 0.0 {
            return iters;
        }
        ((d.as_secs_f64() / per_iter).round() as u64).clamp(1, MAX_ITERS)
    };
    if !env.timing.warmup.is_zero() {
        mech.measure(sized(env.timing.warmup))?;
    }
    Ok(MechWindow {
        iteration: mech.iteration().to_string(),
        measured: mech.measure(sized(target))?,
    })
}

/// Per-mechanic accumulation over repeats.
#[derive(Default)]
pub(super) struct MechAcc {
    pub(super) iteration: String,
    pub(super) samples: Vec<MechanicSample>,
    pub(super) status: Option<(Status, String)>,
}

pub(super) fn mech_sample(repeat: u32, r: &Measured) -> MechanicSample {
    MechanicSample {
        repeat,
        iters: r.iters,
        elapsed_ns: r.elapsed.as_nanos() as u64,
        ns_per_iter: r.ns_per_iter(),
        switches_per_iter: r.switches_per_iter(),
        extra: r.extra.iter().cloned().collect(),
    }
}

pub(super) fn to_mech_result(m: &MechCell, acc: &MechAcc) -> MechanicResult {
    let (status, error) = match &acc.status {
        Some((s, e)) => (*s, Some(e.clone())),
        None if acc.samples.is_empty() => (Status::Pending, None),
        None => (Status::Ok, None),
    };
    let of = |f: &dyn Fn(&MechanicSample) -> f64| {
        Spread::of(&acc.samples.iter().map(f).collect::<Vec<_>>())
    };
    let mut names: Vec<&String> = acc.samples.iter().flat_map(|s| s.extra.keys()).collect();
    names.sort();
    names.dedup();
    let extra = names
        .into_iter()
        .map(|n| {
            let v: Vec<f64> = acc
                .samples
                .iter()
                .filter_map(|s| s.extra.get(n).copied())
                .collect();
            (n.clone(), Spread::of(&v))
        })
        .collect();
    MechanicResult {
        id: m.id.clone(),
        mechanic: m.mechanic.id.into(),
        params: m.params.to_map(),
        iteration: acc.iteration.clone(),
        status,
        error,
        repeats_done: acc.samples.len() as u32,
        ns_per_iter: of(&|s| s.ns_per_iter),
        switches_per_iter: of(&|s| s.switches_per_iter),
        extra,
        samples: acc.samples.clone(),
    }
}
