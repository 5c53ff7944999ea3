//! Placeholder (being written).

use super::MechanicDef;
use crate::workload::WorkloadError;

/// Placeholder registry entry.
pub static SPAWN: MechanicDef = MechanicDef {
    id: "spawn",
    about: "pending",
    params: &[],
    build: |_, _| Err(WorkloadError::Other("pending".into())),
};
