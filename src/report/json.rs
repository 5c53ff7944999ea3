//! `results.json`: the canonical results, pretty-printed, written atomically; and reading it
//! back with a check of the schema version.

use std::path::Path;

use anyhow::{Context, bail};

use super::result::{Results, SCHEMA_VERSION};

/// Serializes and writes `results` atomically to `path`.
pub fn write_atomic(results: &Results, path: &Path) -> anyhow::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(results).context("serializing results")?;
    bytes.push(b'\n');
    super::write_atomic(path, &bytes).with_context(|| format!("writing {}", path.display()))
}

/// Reads a results file, refusing other schema versions with a message that says so.
pub fn read(path: &Path) -> anyhow::Result<Results> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    match v.get("schema_version").and_then(|x| x.as_u64()) {
        Some(n) if n == SCHEMA_VERSION as u64 => {}
        Some(n) => bail!(
            "{} has schema version {n}; this concbench reads version {SCHEMA_VERSION}: re-run the suite",
            path.display()
        ),
        None => bail!(
            "{} is not a concbench results file (no schema_version)",
            path.display()
        ),
    }
    serde_json::from_value(v)
        .with_context(|| format!("{} does not match the schema", path.display()))
}
