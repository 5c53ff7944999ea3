//! `request`: CPU parse → downstream wait → CPU render, composed from the other workloads.
//! (Being written; placeholder keeps the registry complete.)

use super::{Kind, WorkloadDef, WorkloadError};

/// Placeholder registry entry.
pub static REQUEST: WorkloadDef = WorkloadDef {
    id: "request",
    kind: Kind::Mixed,
    op: "pending",
    params: &[],
    build: |_| Err(WorkloadError::Other("request: pending".into())),
};
