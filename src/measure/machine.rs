//! Temporary stand-in (replaced by the machine-info module being written on its branch).
use serde::{Deserialize, Serialize};
/// Where a benchmark ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs.
    pub logical_cpus: usize,
}
/// Detects the machine.
pub fn detect() -> Machine {
    Machine {
        logical_cpus: num_cpus::get(),
    }
}
impl Machine {
    /// Warnings.
    pub fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// Text.
    pub fn render(&self) -> String {
        format!("{self:?}")
    }
}
