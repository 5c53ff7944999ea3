//! Placeholder (being written).

use super::MechanicDef;
use crate::workload::WorkloadError;

/// Placeholder registry entry.
pub static PINGPONG: MechanicDef = MechanicDef {
    id: "pingpong",
    about: "pending",
    params: &[],
    build: |_, _| Err(WorkloadError::Other("pending".into())),
};
