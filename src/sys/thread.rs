//! A bare POSIX thread: `pthread_create` + `pthread_join` with glibc's defaults, nothing else.
//! `std::thread::spawn` adds per-thread set-up of its own (a signal-handling stack mapped with a
//! guard page, `pthread_getattr_np`, a named handle); the `spawn` mechanic measures both, so
//! the kernel's and libc's cost is visible apart from the language runtime's.

use std::io;

extern "C" fn nothing(_: *mut libc::c_void) -> *mut libc::c_void {
    std::ptr::null_mut()
}

/// Creates a thread that returns at once and joins it.
pub fn spawn_join_bare() -> io::Result<()> {
    let mut tid: libc::pthread_t = 0;
    // SAFETY: `tid` is a valid out-pointer; a null attr asks for glibc's defaults; `nothing`
    // is an `extern "C"` fn that touches no Rust state and returns a null pointer.
    let r =
        unsafe { libc::pthread_create(&mut tid, std::ptr::null(), nothing, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: `tid` was just created by pthread_create, is joinable, and is joined once.
    let r = unsafe { libc::pthread_join(tid, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn bare_thread_spawns_and_joins() {
        for _ in 0..10 {
            super::spawn_join_bare().unwrap();
        }
    }
}
