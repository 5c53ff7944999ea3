//! Real faults for fault injection (`fault = "segv@K"` and friends): a genuine segmentation
//! fault from a store to a page mapped without access, and core dumps switched off first so an
//! injected crash leaves no `core` file behind. Lives here because touching a bad address is
//! `unsafe` by nature.

use std::num::NonZeroUsize;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous};
use nix::sys::resource::{Resource, setrlimit};

/// Turns core dumps off for this process (RLIMIT_CORE = 0 and not dumpable), so an injected
/// abort or segfault does not write a core file into the working directory.
pub fn no_core_dumps() {
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
    let _ = nix::sys::prctl::set_dumpable(false);
}

/// Dies of a real SIGSEGV (SEGV_ACCERR): maps one page with `PROT_NONE` and stores to it.
/// Rust's own SIGSEGV handler only handles stack-guard hits; for any other address it restores
/// the default action and returns, the store is retried and the kernel kills the process.
pub fn segfault() -> ! {
    no_core_dumps();
    let page = NonZeroUsize::new(4096).expect("non-zero");
    // SAFETY: a fresh private anonymous mapping aliases nothing; we only use its address.
    let mapped = unsafe { mmap_anonymous(None, page, ProtFlags::PROT_NONE, MapFlags::MAP_PRIVATE) };
    if let Ok(p) = mapped {
        // SAFETY: deliberately faulting: the page has no access rights, so this store traps
        // before any memory is written and the kernel delivers SIGSEGV, which (with the default
        // action) ends the process. No Rust value lives at this address.
        unsafe { std::ptr::write_volatile(p.as_ptr().cast::<u8>(), 1) };
    }
    // Reached only if the mapping failed or a foreign SIGSEGV handler swallowed the fault.
    let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
    std::process::abort()
}
