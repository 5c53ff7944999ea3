//! Placeholder (being written).

use super::MechanicDef;
use crate::workload::WorkloadError;

/// Placeholder registry entry.
pub static IPC: MechanicDef = MechanicDef {
    id: "ipc",
    about: "pending",
    params: &[],
    build: |_, _| Err(WorkloadError::Other("pending".into())),
};
