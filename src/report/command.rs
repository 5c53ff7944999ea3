//! `concbench report RESULTS.json [RESULTS.json ...] --out DIR`: reads one or more results
//! files and writes DIR/report.md and DIR/report.html, each atomically.
//!
//! Exit codes: 0 written; 2 a file cannot be read or is not results (the message names it);
//! 1 the output cannot be written or a chart cannot be drawn.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::doc::{self, Input};

/// What a report run wrote.
pub struct Written {
    /// Path of report.md.
    pub markdown: PathBuf,
    /// Its size, bytes.
    pub markdown_bytes: usize,
    /// Path of report.html.
    pub html: PathBuf,
    /// Its size, bytes.
    pub html_bytes: usize,
    /// Charts in report.html.
    pub charts: usize,
}

/// Reads every file of `files`, in order (the first error wins).
pub fn read_all(files: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut results = Vec::new();
    for f in files {
        results.push(super::json::read(f)?);
    }
    let labels = doc::labels(&results);
    Ok(results
        .into_iter()
        .zip(labels)
        .zip(files)
        .map(|((results, label), path)| Input {
            label,
            path: path.display().to_string(),
            results,
        })
        .collect())
}

/// Builds the report from `inputs` and writes both files into `out` (created if missing).
pub fn write(inputs: &[Input], out: &Path) -> anyhow::Result<Written> {
    let d = doc::build(inputs);
    let charts = d
        .charts()
        .map(|c| {
            c.svg()
                .map_err(|e| anyhow::anyhow!("drawing chart \"{}\": {e}", c.title))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let md = super::markdown::render(&d);
    let html = super::html::render(&d, &charts);
    std::fs::create_dir_all(out)
        .with_context(|| format!("creating {}: check the --out path", out.display()))?;
    let markdown = out.join("report.md");
    let html_path = out.join("report.html");
    super::write_atomic(&markdown, md.as_bytes())
        .with_context(|| format!("writing {}", markdown.display()))?;
    super::write_atomic(&html_path, html.as_bytes())
        .with_context(|| format!("writing {}", html_path.display()))?;
    Ok(Written {
        markdown,
        markdown_bytes: md.len(),
        html: html_path,
        html_bytes: html.len(),
        charts: charts.len(),
    })
}

/// The CLI entry: exit 0 written, 2 unreadable input, 1 output failure.
pub fn main(files: &[PathBuf], out: &Path) -> ExitCode {
    let inputs = match read_all(files) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("Error: {e:#}");
            return ExitCode::from(2);
        }
    };
    match write(&inputs, out) {
        Ok(w) => {
            println!(
                "wrote {} ({} bytes) and {} ({} bytes, {} charts)",
                w.markdown.display(),
                w.markdown_bytes,
                w.html.display(),
                w.html_bytes,
                w.charts
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(1)
        }
    }
}
