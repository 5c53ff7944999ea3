//! Raw file-descriptor helpers: waiting for one fd with `poll(2)`, which is how a blocking
//! driver waits for a task that returned `Step::Wait`.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// Blocks until `fd` is readable (or writable when `write`), or `timeout` passes (`None`:
/// forever). Returns true when ready (errors and hang-ups count as ready: the next read says
/// what happened).
pub fn poll_one(fd: RawFd, write: bool, timeout: Option<Duration>) -> io::Result<bool> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let ms: libc::c_int = match timeout {
        None => -1,
        // Round up so a short timeout never becomes a busy poll.
        Some(d) => d.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as libc::c_int,
    };
    loop {
        // SAFETY: pfd is a valid pollfd and we pass a count of 1; poll does not retain it.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r >= 0 {
            return Ok(r > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Closes a raw fd that this process inherited but does not own as an object: a forked child
/// closing its copy of a pipe end owned by an object in the parent's memory (the child never
/// runs that object's destructor, so there is no double close).
pub fn close_inherited(fd: RawFd) {
    // SAFETY: closing an fd number has no memory-safety effect; the child holds no object that
    // will use or close this fd again.
    unsafe {
        libc::close(fd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    #[test]
    fn readable_after_write() {
        let (r, mut w) = std::io::pipe().unwrap();
        assert!(!poll_one(r.as_raw_fd(), false, Some(Duration::from_millis(1))).unwrap());
        w.write_all(b"x").unwrap();
        assert!(poll_one(r.as_raw_fd(), false, None).unwrap());
        assert!(poll_one(w.as_raw_fd(), true, Some(Duration::ZERO)).unwrap());
    }
}
