//! The kernel's own accounting of a thread or process: CPU time split user/system, context
//! switches split voluntary/involuntary, page faults. Read with `getrusage(2)`.
//!
//! `RUSAGE_THREAD` is used by every worker, thread or forked process alike, so both are
//! measured by the same call at the same points.

use nix::sys::resource::{UsageWho, getrusage};
use serde::{Deserialize, Serialize};

/// A snapshot (or a difference of two snapshots) of `struct rusage`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rusage {
    /// CPU time in user mode, nanoseconds (kernel resolution: microseconds).
    pub user_ns: u64,
    /// CPU time in kernel mode, nanoseconds.
    pub sys_ns: u64,
    /// Voluntary context switches (the thread blocked: I/O, sleep, futex).
    pub voluntary: u64,
    /// Involuntary context switches (the scheduler preempted the thread).
    pub involuntary: u64,
    /// Minor page faults (no I/O: first touch, copy-on-write).
    pub minor_faults: u64,
    /// Major page faults (needed I/O).
    pub major_faults: u64,
}

impl Rusage {
    pub(crate) fn from_libc(ru: &libc::rusage) -> Self {
        let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
        Self {
            user_ns: tv(ru.ru_utime),
            sys_ns: tv(ru.ru_stime),
            voluntary: ru.ru_nvcsw as u64,
            involuntary: ru.ru_nivcsw as u64,
            minor_faults: ru.ru_minflt as u64,
            major_faults: ru.ru_majflt as u64,
        }
    }

    fn from_nix(u: nix::sys::resource::Usage) -> Self {
        let tv = |t: nix::sys::time::TimeVal| {
            t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1_000
        };
        Self {
            user_ns: tv(u.user_time()),
            sys_ns: tv(u.system_time()),
            voluntary: u.voluntary_context_switches() as u64,
            involuntary: u.involuntary_context_switches() as u64,
            minor_faults: u.minor_page_faults() as u64,
            major_faults: u.major_page_faults() as u64,
        }
    }

    /// `self - earlier`, saturating at zero per field.
    pub fn since(&self, earlier: &Rusage) -> Rusage {
        Rusage {
            user_ns: self.user_ns.saturating_sub(earlier.user_ns),
            sys_ns: self.sys_ns.saturating_sub(earlier.sys_ns),
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
            major_faults: self.major_faults.saturating_sub(earlier.major_faults),
        }
    }

    /// Field-wise sum.
    pub fn add(&self, o: &Rusage) -> Rusage {
        Rusage {
            user_ns: self.user_ns + o.user_ns,
            sys_ns: self.sys_ns + o.sys_ns,
            voluntary: self.voluntary + o.voluntary,
            involuntary: self.involuntary + o.involuntary,
            minor_faults: self.minor_faults + o.minor_faults,
            major_faults: self.major_faults + o.major_faults,
        }
    }

    /// User plus system CPU time.
    pub fn cpu_ns(&self) -> u64 {
        self.user_ns + self.sys_ns
    }
}

/// `getrusage(RUSAGE_THREAD)`: the calling thread only.
pub fn thread_rusage() -> Rusage {
    getrusage(UsageWho::RUSAGE_THREAD)
        .map(Rusage::from_nix)
        .unwrap_or_default()
}

/// `getrusage(RUSAGE_SELF)`: every thread of this process.
pub fn self_rusage() -> Rusage {
    getrusage(UsageWho::RUSAGE_SELF)
        .map(Rusage::from_nix)
        .unwrap_or_default()
}

/// `getrusage(RUSAGE_CHILDREN)`: all reaped descendants of this process.
pub fn children_rusage() -> Rusage {
    getrusage(UsageWho::RUSAGE_CHILDREN)
        .map(Rusage::from_nix)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_counts_a_voluntary_switch() {
        let a = thread_rusage();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let d = thread_rusage().since(&a);
        assert!(d.voluntary >= 1, "{d:?}");
    }

    #[test]
    fn spinning_counts_user_time() {
        let a = thread_rusage();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let d = thread_rusage().since(&a);
        assert!(d.user_ns + d.sys_ns > 0, "{d:?}");
    }
}
