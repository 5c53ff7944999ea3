//! `downstream`: request/response over a loopback TCP socket to a server the harness starts.
//! (Being written; placeholder keeps the registry complete.)

use super::{Kind, WorkloadDef, WorkloadError};

/// Placeholder registry entry.
pub static DOWNSTREAM: WorkloadDef = WorkloadDef {
    id: "downstream",
    kind: Kind::Io,
    op: "pending",
    params: &[],
    build: |_| Err(WorkloadError::Other("downstream: pending".into())),
};
