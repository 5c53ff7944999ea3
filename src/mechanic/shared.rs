//! Placeholder (being written).

use super::MechanicDef;
use crate::workload::WorkloadError;

/// Placeholder registry entry.
pub static COUNTER: MechanicDef = MechanicDef {
    id: "counter",
    about: "pending",
    params: &[],
    build: |_, _| Err(WorkloadError::Other("pending".into())),
};
