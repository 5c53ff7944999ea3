//! Placeholder (being written).

use super::MechanicDef;
use crate::workload::WorkloadError;

/// Placeholder registry entry.
pub static COW: MechanicDef = MechanicDef {
    id: "cow",
    about: "pending",
    params: &[],
    build: |_, _| Err(WorkloadError::Other("pending".into())),
};
