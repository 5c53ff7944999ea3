//! Placeholder (being written).

use crate::server::ArchDef;

/// Placeholder registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "io-threads",
    who: "pending",
    uses_workers: false,
    run: |_| Err("pending".into()),
};
