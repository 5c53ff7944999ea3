//! Placeholder (being written).

use crate::server::ArchDef;

/// Placeholder registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "process-per-conn",
    who: "pending",
    uses_workers: false,
    run: |_| Err("pending".into()),
};
