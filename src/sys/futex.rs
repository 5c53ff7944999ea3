//! `futex(2)` on an [`AtomicU32`]: wait while the word holds a value, wake waiters.
//!
//! Two flavours: *private* (`FUTEX_PRIVATE_FLAG`, keyed by the address in this process's
//! address space: threads only, what `pthread_mutex` uses) and *shared* (keyed by the page
//! behind the address, so it works on `MAP_SHARED` memory across `fork()`, what
//! `PTHREAD_PROCESS_SHARED` objects use). A word shared between processes must use shared ops
//! on both sides: a private wake never reaches a shared waiter.

use std::io;
use std::sync::atomic::AtomicU32;

/// Which futex key space to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexScope {
    /// Threads of one process (`FUTEX_*_PRIVATE`).
    Private,
    /// Any process mapping the same shared page (plain `FUTEX_WAIT` / `FUTEX_WAKE`).
    Shared,
}

impl FutexScope {
    fn op(self, op: libc::c_int) -> libc::c_int {
        match self {
            FutexScope::Private => op | libc::FUTEX_PRIVATE_FLAG,
            FutexScope::Shared => op,
        }
    }
}

/// Blocks while `word` holds `expected` (no timeout). Returns `Ok` when woken, when the word
/// already differed (`EAGAIN`) or on a signal (`EINTR`): callers recheck the word in a loop.
pub fn futex_wait(word: &AtomicU32, expected: u32, scope: FutexScope) -> io::Result<()> {
    // SAFETY: `word` is a live, aligned u32 for the duration of the call (borrowed); a null
    // timeout means "wait forever"; uaddr2 and val3 are unused by FUTEX_WAIT.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            scope.op(libc::FUTEX_WAIT),
            expected,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == -1 {
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(()),
            _ => Err(e),
        }
    } else {
        Ok(())
    }
}

/// Wakes up to `n` waiters blocked on `word`; returns how many were woken.
pub fn futex_wake(word: &AtomicU32, n: u32, scope: FutexScope) -> io::Result<usize> {
    let n = n.min(i32::MAX as u32);
    // SAFETY: `word` is a live, aligned u32 (borrowed); FUTEX_WAKE only uses uaddr and val, the
    // kernel never writes through any of the pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            scope.op(libc::FUTEX_WAKE),
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if r == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::SharedSlice;
    use std::sync::atomic::Ordering;

    #[test]
    fn wait_returns_when_value_differs() {
        let w = AtomicU32::new(1);
        futex_wait(&w, 0, FutexScope::Private).unwrap();
        assert_eq!(futex_wake(&w, 1, FutexScope::Private).unwrap(), 0);
    }

    #[test]
    fn shared_wake_reaches_a_forked_waiter() {
        let s: SharedSlice<AtomicU32> = SharedSlice::new(1).unwrap();
        let word = &s[0];
        let mut child = crate::sys::fork_child(|| {
            while word.load(Ordering::Acquire) == 0 {
                if futex_wait(word, 0, FutexScope::Shared).is_err() {
                    return 2;
                }
            }
            0
        })
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        word.store(1, Ordering::Release);
        futex_wake(word, 1, FutexScope::Shared).unwrap();
        assert_eq!(child.wait().unwrap().code, Some(0));
    }
}
