//! Placeholder (being written).

use crate::server::ArchDef;

/// Placeholder registry entry.
pub const ARCH: ArchDef = ArchDef {
    id: "event-loop",
    who: "pending",
    uses_workers: false,
    run: |_| Err("pending".into()),
};
