//! `eventfd(2)`: a kernel counter behind a file descriptor. Writing 8 bytes adds to it;
//! reading 8 bytes blocks while it is zero, then returns it and resets it to zero (counter
//! mode, no `EFD_SEMAPHORE`). The fd is an ordinary blocking fd unless asked otherwise.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};

/// A blocking eventfd with initial value 0 and `EFD_CLOEXEC`.
pub fn eventfd() -> io::Result<File> {
    // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by eventfd, is open, and nothing else owns it.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Adds `n` to the counter (`write` of 8 bytes).
pub fn eventfd_write(f: &File, n: u64) -> io::Result<()> {
    let mut f = f;
    f.write_all(&n.to_ne_bytes())
}

/// Blocks until the counter is non-zero, then returns it and resets it (`read` of 8 bytes).
pub fn eventfd_read(f: &File) -> io::Result<u64> {
    let mut b = [0u8; 8];
    let mut f = f;
    f.read_exact(&mut b)?;
    Ok(u64::from_ne_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_resets() {
        let e = eventfd().unwrap();
        eventfd_write(&e, 2).unwrap();
        eventfd_write(&e, 3).unwrap();
        assert_eq!(eventfd_read(&e).unwrap(), 5);
        eventfd_write(&e, 1).unwrap();
        assert_eq!(eventfd_read(&e).unwrap(), 1);
    }
}
