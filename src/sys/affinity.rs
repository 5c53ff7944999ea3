//! CPU affinity: pin the calling thread (or forked process, from inside it) to one core, and
//! read back from the kernel which cores it may run on and which one it is on now.
//!
//! Pinning uses `core_affinity` (`sched_setaffinity(0, …)`: the calling thread); the read-back
//! uses `sched_getaffinity` and `sched_getcpu`, so results record what the kernel applied,
//! not what we asked for.

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;

/// Pins the calling thread to `core`. Errors name the core and the kernel's answer.
pub fn pin_current(core: usize) -> Result<(), String> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(format!(
            "sched_setaffinity to core {core} failed: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Cores the calling thread may run on, as the kernel reports them.
pub fn allowed_cpus() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The core the calling thread is running on right now (`sched_getcpu`), or -1.
pub fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state.
    unsafe { libc::sched_getcpu() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_read_back() {
        let cores = allowed_cpus();
        assert!(!cores.is_empty());
        let last = *cores.last().unwrap();
        std::thread::spawn(move || {
            pin_current(last).unwrap();
            assert_eq!(allowed_cpus(), vec![last]);
            assert_eq!(current_cpu(), last as i32);
        })
        .join()
        .unwrap();
    }
}
