//! Private anonymous memory in small pages, for the copy-on-write mechanic: a heap whose pages
//! a forked child shares until one side writes.
//!
//! The mapping is `MAP_PRIVATE | MAP_ANONYMOUS` and advised `MADV_NOHUGEPAGE`, so every page is
//! a base page (4 KiB on x86-64) whatever the machine's transparent-huge-page policy: one
//! written page is one copy-on-write fault, and page counts mean the same on every machine.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};

/// The base page size (`sysconf(_SC_PAGESIZE)`).
pub fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map(|v| v as usize)
        .unwrap_or(4096)
}

/// `len` bytes of zeroed private anonymous memory in base pages, unmapped on drop.
pub struct PrivateMap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned exclusively by this value, like a Box<[u8]>.
unsafe impl Send for PrivateMap {}

impl PrivateMap {
    /// Maps `len` bytes (rounded up to whole pages). Pages are not resident until written.
    pub fn new(len: usize) -> std::io::Result<Self> {
        let ps = page_size();
        let len = len.max(1).div_ceil(ps) * ps;
        // SAFETY: a fresh anonymous mapping aliases nothing and is zero-filled by the kernel.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                NonZeroUsize::new(len).expect("non-zero"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .map_err(std::io::Error::from)?;
        let ptr: NonNull<u8> = ptr.cast();
        // SAFETY: ptr/len are exactly the mapping just made; the advice changes no contents.
        // Failure (a kernel without THP) is harmless: base pages are then the only kind.
        let _ = unsafe { madvise(ptr.cast(), len, MmapAdvise::MADV_NOHUGEPAGE) };
        Ok(Self { ptr, len })
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: ptr maps len zero-initialised bytes for the life of self; &mut self makes
        // this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: as above, shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PrivateMap {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`; no reference outlives self.
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
pub fn mem_available() -> std::io::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "/proc/meminfo: no MemAvailable line",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_pages_zeroed_writable() {
        let mut m = PrivateMap::new(10).unwrap();
        assert_eq!(m.len(), page_size());
        assert!(m.as_slice().iter().all(|&b| b == 0));
        m.as_mut_slice()[5] = 9;
        assert_eq!(m.as_slice()[5], 9);
        assert!(mem_available().unwrap() > 0);
    }
}
