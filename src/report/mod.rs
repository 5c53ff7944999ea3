//! Results and their exporters. [`result::Results`] is the one canonical struct; `json`,
//! `csv`, `table` and the comparison report (`doc` → `markdown`, `html` with `chart`) only read
//! it, so every output agrees by construction.

pub mod analysis;
pub mod cells;
pub mod chart;
pub mod command;
pub mod csv;
pub mod doc;
pub mod export;
pub mod html;
pub mod json;
pub mod markdown;
pub mod result;
pub mod table;

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temp file in the same directory, fsync, rename.
/// A reader (or a crash) sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // 0644 less the umask, like any file a user writes (tempfile's default is 0600, which
    // left results and reports unreadable to anyone else on the machine).
    use std::os::unix::fs::PermissionsExt;
    let mut tmp = tempfile::Builder::new()
        .prefix(".concbench-")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
