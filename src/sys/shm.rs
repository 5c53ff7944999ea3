//! Anonymous `MAP_SHARED` memory created before `fork()`, so a parent and its forked workers
//! (and threads alike) see the same counters and phase word.
//!
//! Only types for which all-zero bytes are a valid value and which are safe to share between
//! processes (atomics, plain integers in padded cells) may live here: see [`ZeroShared`].

use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crossbeam::utils::CachePadded;
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// Types that are valid when all bytes are zero, hold no pointers and synchronise only through
/// atomic operations, so they may be shared across `fork()` in `MAP_SHARED` memory.
///
/// # Safety
/// Implementors must be valid at all-zero bytes and contain no pointers or heap data.
pub unsafe trait ZeroShared: Sync {}

// SAFETY: atomics are valid at zero and hold no pointers; a padded atomic is the same plus padding.
unsafe impl ZeroShared for AtomicU64 {}
// SAFETY: as above.
unsafe impl ZeroShared for AtomicU32 {}
// SAFETY: CachePadded only adds alignment padding around a ZeroShared value.
unsafe impl<T: ZeroShared> ZeroShared for CachePadded<T> {}

/// A zeroed slice of `T` in anonymous shared memory; it stays shared with every child forked
/// after it was created, and is unmapped when the last copy in this process is dropped.
pub struct SharedSlice<T: ZeroShared> {
    ptr: NonNull<T>,
    len: usize,
    bytes: usize,
}

// SAFETY: the contents are ZeroShared (Sync, atomics only), so sharing the slice across threads
// is as safe as sharing `&[T]`.
unsafe impl<T: ZeroShared> Send for SharedSlice<T> {}
// SAFETY: as above.
unsafe impl<T: ZeroShared> Sync for SharedSlice<T> {}

impl<T: ZeroShared> SharedSlice<T> {
    /// Maps `len` zeroed elements shared with future children.
    pub fn new(len: usize) -> std::io::Result<Self> {
        let bytes = (len.max(1) * std::mem::size_of::<T>()).max(1);
        let size = NonZeroUsize::new(bytes).expect("non-zero");
        // SAFETY: a fresh anonymous mapping aliases nothing; the kernel zero-fills it, which is
        // a valid T by the ZeroShared contract, and page alignment satisfies T's alignment
        // (CachePadded asks for at most 128 bytes).
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .map_err(std::io::Error::from)?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
            bytes,
        })
    }

    /// The shared elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: ptr maps `len` initialised (zeroed) T for the life of self; only shared
        // references are handed out and T synchronises through atomics.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: ZeroShared> std::ops::Deref for SharedSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T: ZeroShared> Drop for SharedSlice<T> {
    fn drop(&mut self) {
        // SAFETY: ptr/bytes are exactly the mapping made in `new`, and no reference outlives
        // self (as_slice borrows self).
        let _ = unsafe { munmap(self.ptr.cast(), self.bytes) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn zeroed_and_writable() {
        let s: SharedSlice<CachePadded<AtomicU64>> = SharedSlice::new(4).unwrap();
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|c| c.load(Ordering::Relaxed) == 0));
        s[2].store(7, Ordering::Relaxed);
        assert_eq!(s[2].load(Ordering::Relaxed), 7);
    }
}
