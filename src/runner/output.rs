//! Writing the results of a run: every file atomically after each window, the progress bar,
//! and the save when a SIGINT/SIGTERM interrupts the run.

use std::path::Path;

use super::unix_now;
use crate::report::result::Results;
use crate::report::{csv, json};

/// Saves the results so far marked `interrupted` (every finished window is in them; the one
/// that was running is not) and returns them: the CLI exits 128 + `sig`.
pub(super) fn interrupted(
    mut results: Results,
    dir: &Path,
    bar: &indicatif::ProgressBar,
    sig: i32,
) -> anyhow::Result<Results> {
    bar.finish_and_clear();
    eprintln!(
        "concbench: {} received: stopped the running window, saving the finished ones",
        crate::sys::signal::name(sig)
    );
    results.interrupted = true;
    results.updated_unix = unix_now();
    write_all(&results, dir)?;
    Ok(results)
}

pub(super) fn progress_bar(total: u64, show: bool) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} windows  {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(super) fn write_all(results: &Results, dir: &Path) -> anyhow::Result<()> {
    write_files(results, dir)
        .map_err(|e| anyhow::anyhow!(crate::sys::limits::explain(format!("{e:#}"))))
}

fn write_files(results: &Results, dir: &Path) -> anyhow::Result<()> {
    json::write_atomic(results, &dir.join("results.json"))?;
    csv::write_atomic(results, &dir.join("results.csv"))?;
    if !results.mechanics.is_empty() {
        let bytes = csv::render_mechanics(results)?;
        crate::report::write_atomic(&dir.join("mechanics.csv"), &bytes)
            .map_err(|e| anyhow::anyhow!("writing mechanics.csv: {e}"))?;
    }
    Ok(())
}
