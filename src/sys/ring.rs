//! A single-producer single-consumer byte ring in anonymous `MAP_SHARED` memory, usable between
//! two processes forked after it was created (or two threads), with eventfd wake-ups.
//!
//! Layout: one page of header (head and tail byte counters, each on its own cache line, plus
//! "waiting" and "closed" flags), then `cap` bytes of data (`cap` a power of two). `head` counts
//! bytes ever written, `tail` bytes ever read; the producer owns `[head, tail + cap)`, the
//! consumer owns `[tail, head)`, and each publishes its counter with a Release store that the
//! other reads with Acquire before touching the bytes. The ring is a byte stream, like a pipe:
//! [`Producer`] implements [`Write`], [`Consumer`] implements [`Read`].
//!
//! Waiting: a side that finds the ring empty (consumer) or full (producer) first spins a
//! little ([`SPIN_CHECKS`] re-reads of the other side's counter by default), then sets its "waiting" flag,
//! re-checks, and blocks in `read(2)` on an eventfd. The other side, after publishing its
//! counter, issues a SeqCst fence and writes the eventfd only when the flag is set, so a busy
//! stream costs no syscall per message. The flag store and the counter store are each followed
//! by a SeqCst fence before the other's load (Dekker), so a wake-up is never lost; a stale
//! eventfd count only causes one spurious wake, after which the waiter re-checks and blocks.
//!
//! Closing: dropping an end that was used ("armed" by its first read or write) in this
//! process sets its "closed" flag and wakes the other side: a consumer then reads EOF after
//! draining, a producer gets `BrokenPipe`. An end that was never used (the parent's copy of the
//! end it handed to a forked child) closes nothing, so dropping it in the parent is harmless.
//!
//! Single producer, single consumer: the ends are neither `Clone` nor `Sync`, and their methods
//! take `&mut self`. After `fork()`, move each end into the one process that uses it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use crossbeam::utils::CachePadded;
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// How many times a side re-reads the other's counter before it blocks on the eventfd, by
/// default (see [`Producer::set_spin`], [`Consumer::set_spin`]).
pub const SPIN_CHECKS: u32 = 200;

/// Offset of the data area: the header gets a page of its own.
const DATA_OFFSET: usize = 4096;

#[repr(C)]
struct Header {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    consumer_waiting: CachePadded<AtomicU32>,
    producer_waiting: CachePadded<AtomicU32>,
    producer_closed: CachePadded<AtomicU32>,
    consumer_closed: CachePadded<AtomicU32>,
}

const _: () = assert!(std::mem::size_of::<Header>() <= DATA_OFFSET);

struct Inner {
    map: NonNull<u8>,
    map_len: usize,
    cap: usize,
    /// Written by the producer to wake a consumer waiting for data.
    data_efd: File,
    /// Written by the consumer to wake a producer waiting for space.
    space_efd: File,
}

// SAFETY: the header is only accessed through atomics; data bytes are only read or written by
// the unique Producer (free region) and the unique Consumer (filled region), and the regions
// are handed over with Release/Acquire on head and tail. Inner itself hands out no references.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Inner {
    fn header(&self) -> &Header {
        // SAFETY: the mapping starts with a zeroed Header (valid: atomics at zero), is page
        // aligned, and lives as long as self.
        unsafe { &*(self.map.as_ptr() as *const Header) }
    }

    fn data(&self) -> *mut u8 {
        // SAFETY: DATA_OFFSET + cap == map_len, so the offset stays inside the mapping.
        unsafe { self.map.as_ptr().add(DATA_OFFSET) }
    }

    /// Copies `src` into the ring at byte position `pos` (wrapping). The caller (the producer)
    /// owns those bytes: `src.len()` <= free space.
    fn copy_in(&self, pos: u64, src: &[u8]) {
        let start = (pos as usize) & (self.cap - 1);
        let first = src.len().min(self.cap - start);
        // SAFETY: [start, start+first) and [0, len-first) lie inside the data area; the
        // producer owns them (free space) until it publishes head, so nobody reads them now;
        // src is a separate buffer in private memory, so they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data().add(start), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data(), src.len() - first);
        }
    }

    /// Copies from the ring at byte position `pos` (wrapping) into `dst`. The caller (the
    /// consumer) owns those bytes: `dst.len()` <= filled bytes.
    fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let start = (pos as usize) & (self.cap - 1);
        let first = dst.len().min(self.cap - start);
        // SAFETY: the ranges lie inside the data area; the consumer owns them (published by
        // the producer's Release store of head, read with Acquire) until it publishes tail;
        // dst is private memory distinct from the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data().add(start), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: map/map_len are exactly the mapping made in `ring`; both ends (the only
        // users) are gone, since they hold the Arc.
        let _ = unsafe { munmap(self.map.cast(), self.map_len) };
    }
}

fn eventfd() -> io::Result<File> {
    // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn signal(efd: &File) -> io::Result<()> {
    (&*efd).write_all(&1u64.to_ne_bytes())
}

fn block_on(efd: &File) -> io::Result<()> {
    let mut b = [0u8; 8];
    (&*efd).read_exact(&mut b)
}

/// Creates a ring of `cap` data bytes (a power of two, at least 64) and returns its two ends.
pub fn ring(cap: usize) -> io::Result<(Producer, Consumer)> {
    if cap < 64 || !cap.is_power_of_two() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("ring capacity {cap} must be a power of two >= 64"),
        ));
    }
    let map_len = DATA_OFFSET + cap;
    // SAFETY: a fresh anonymous mapping aliases nothing; the kernel zero-fills it, which is a
    // valid Header (atomics at zero).
    let map = unsafe {
        mmap_anonymous(
            None,
            NonZeroUsize::new(map_len).expect("non-zero"),
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
            MapFlags::MAP_SHARED,
        )
    }
    .map_err(io::Error::from)?;
    let inner = Arc::new(Inner {
        map: map.cast(),
        map_len,
        cap,
        data_efd: eventfd()?,
        space_efd: eventfd()?,
    });
    Ok((
        Producer {
            inner: inner.clone(),
            head: 0,
            tail_cache: 0,
            armed: false,
            spin: SPIN_CHECKS,
        },
        Consumer {
            inner,
            tail: 0,
            head_cache: 0,
            armed: false,
            spin: SPIN_CHECKS,
        },
    ))
}

/// The writing end of a [`ring`].
pub struct Producer {
    inner: Arc<Inner>,
    head: u64,
    tail_cache: u64,
    armed: bool,
    spin: u32,
}

/// The reading end of a [`ring`].
pub struct Consumer {
    inner: Arc<Inner>,
    tail: u64,
    head_cache: u64,
    armed: bool,
    spin: u32,
}

impl Producer {
    /// Ring capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.inner.cap
    }

    /// Sets how many re-reads of the consumer's counter to spin before blocking when the
    /// ring is full; 0 blocks at once (right when both ends share one core, where spinning
    /// only delays the other side).
    pub fn set_spin(&mut self, checks: u32) {
        self.spin = checks;
    }

    fn free(&self) -> usize {
        self.inner.cap - (self.head - self.tail_cache) as usize
    }

    /// Waits until there is space (spin, then block on the eventfd).
    fn wait_space(&mut self) -> io::Result<()> {
        let h = self.inner.header();
        for _ in 0..self.spin {
            std::hint::spin_loop();
            self.tail_cache = h.tail.load(Ordering::Acquire);
            if self.free() > 0 {
                return Ok(());
            }
        }
        loop {
            if h.consumer_closed.load(Ordering::Acquire) != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "shm ring: consumer closed",
                ));
            }
            h.producer_waiting.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            self.tail_cache = h.tail.load(Ordering::Acquire);
            if self.free() > 0 || h.consumer_closed.load(Ordering::Acquire) != 0 {
                h.producer_waiting.store(0, Ordering::Relaxed);
                if self.free() > 0 {
                    return Ok(());
                }
                continue;
            }
            block_on(&self.inner.space_efd)?;
            h.producer_waiting.store(0, Ordering::Relaxed);
            self.tail_cache = h.tail.load(Ordering::Acquire);
            if self.free() > 0 {
                return Ok(());
            }
        }
    }
}

impl Write for Producer {
    /// Writes as many bytes as fit (at least one, waiting for space if the ring is full).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.armed = true;
        if self.free() == 0 {
            self.tail_cache = self.inner.header().tail.load(Ordering::Acquire);
            if self.free() == 0 {
                self.wait_space()?;
            }
        }
        let h = self.inner.header();
        if h.consumer_closed.load(Ordering::Relaxed) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "shm ring: consumer closed",
            ));
        }
        let n = buf.len().min(self.free());
        self.inner.copy_in(self.head, &buf[..n]);
        self.head += n as u64;
        h.head.store(self.head, Ordering::Release);
        fence(Ordering::SeqCst);
        if h.consumer_waiting.load(Ordering::Relaxed) != 0 {
            signal(&self.inner.data_efd)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .header()
                .producer_closed
                .store(1, Ordering::Release);
            fence(Ordering::SeqCst);
            let _ = signal(&self.inner.data_efd);
        }
    }
}

impl Consumer {
    /// Sets how many re-reads of the producer's counter to spin before blocking when the
    /// ring is empty; 0 blocks at once.
    pub fn set_spin(&mut self, checks: u32) {
        self.spin = checks;
    }

    fn avail(&self) -> usize {
        (self.head_cache - self.tail) as usize
    }

    /// Waits until there are bytes or the producer closed (spin, then block on the eventfd).
    fn wait_data(&mut self) -> io::Result<()> {
        let h = self.inner.header();
        for _ in 0..self.spin {
            std::hint::spin_loop();
            self.head_cache = h.head.load(Ordering::Acquire);
            if self.avail() > 0 {
                return Ok(());
            }
        }
        loop {
            h.consumer_waiting.store(1, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            self.head_cache = h.head.load(Ordering::Acquire);
            if self.avail() > 0 || h.producer_closed.load(Ordering::Acquire) != 0 {
                h.consumer_waiting.store(0, Ordering::Relaxed);
                return Ok(());
            }
            block_on(&self.inner.data_efd)?;
            h.consumer_waiting.store(0, Ordering::Relaxed);
            self.head_cache = h.head.load(Ordering::Acquire);
            if self.avail() > 0 || h.producer_closed.load(Ordering::Acquire) != 0 {
                return Ok(());
            }
        }
    }
}

impl Read for Consumer {
    /// Reads the bytes available (at least one, waiting if the ring is empty); 0 at EOF (the
    /// producer closed and everything was read).
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.armed = true;
        let h = self.inner.header();
        if self.avail() == 0 {
            self.head_cache = h.head.load(Ordering::Acquire);
            if self.avail() == 0 {
                self.wait_data()?;
                if self.avail() == 0 {
                    // Closed: one last look, the final bytes may have raced the flag.
                    self.head_cache = self.inner.header().head.load(Ordering::Acquire);
                    if self.avail() == 0 {
                        return Ok(0);
                    }
                }
            }
        }
        let h = self.inner.header();
        let n = buf.len().min(self.avail());
        self.inner.copy_out(self.tail, &mut buf[..n]);
        self.tail += n as u64;
        h.tail.store(self.tail, Ordering::Release);
        fence(Ordering::SeqCst);
        if h.producer_waiting.load(Ordering::Relaxed) != 0 {
            signal(&self.inner.space_efd)?;
        }
        Ok(n)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if self.armed {
            self.inner
                .header()
                .consumer_closed
                .store(1, Ordering::Release);
            fence(Ordering::SeqCst);
            let _ = signal(&self.inner.space_efd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fork_child;
    use nix::errno::Errno;
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;

    /// Message `seq`: its length varies (1..=300 bytes plus an 8-byte header) so messages
    /// straddle the wrap point of a small ring in every possible way.
    fn message(seq: u64, out: &mut Vec<u8>) {
        out.clear();
        let len = 1 + (seq.wrapping_mul(2654435761) % 300) as usize;
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend((0..len).map(|i| (seq as u8).wrapping_mul(31).wrapping_add(i as u8)));
    }

    fn no_children_left() {
        assert_eq!(
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD)
        );
    }

    #[test]
    fn rejects_bad_capacity() {
        assert!(ring(100).is_err());
        assert!(ring(32).is_err());
    }

    #[test]
    fn hundred_thousand_sequenced_messages_between_processes() {
        sequenced_between_processes(100_000, SPIN_CHECKS);
    }

    #[test]
    fn sequenced_messages_without_spinning_block_and_wake_correctly() {
        // No spin: every empty or full ring goes through the waiting flag and the eventfd.
        sequenced_between_processes(30_000, 0);
    }

    fn sequenced_between_processes(n: u64, spin: u32) {
        // 1 KiB: far smaller than the traffic, so the producer fills it and waits often.
        let (mut tx, mut rx) = ring(1024).unwrap();
        tx.set_spin(spin);
        rx.set_spin(spin);
        let mut child = fork_child(move || {
            let mut m = Vec::new();
            for seq in 0..n {
                message(seq, &mut m);
                // Length prefix, then the message: the ring is a byte stream.
                if tx.write_all(&(m.len() as u32).to_le_bytes()).is_err()
                    || tx.write_all(&m).is_err()
                {
                    return 3;
                }
            }
            0
        })
        .unwrap();
        let mut want = Vec::new();
        let mut got = vec![0u8; 512];
        for seq in 0..n {
            let mut len = [0u8; 4];
            rx.read_exact(&mut len).unwrap();
            let len = u32::from_le_bytes(len) as usize;
            message(seq, &mut want);
            assert_eq!(len, want.len(), "length of message {seq}");
            rx.read_exact(&mut got[..len]).unwrap();
            assert_eq!(&got[..len], &want[..], "content of message {seq}");
        }
        // The producer's drop (at the end of the child's body) closes the stream: EOF.
        let mut one = [0u8; 1];
        assert_eq!(rx.read(&mut one).unwrap(), 0);
        let exit = child.wait().unwrap();
        assert!(exit.success(), "{}", exit.describe());
        no_children_left();
    }

    #[test]
    fn threads_and_large_writes_wrap_correctly() {
        let (mut tx, mut rx) = ring(4096).unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let expect = data.clone();
        let t = std::thread::spawn(move || tx.write_all(&data).unwrap());
        let mut got = Vec::new();
        rx.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, expect);
    }

    #[test]
    fn writer_sees_broken_pipe_when_reader_is_gone() {
        let (mut tx, mut rx) = ring(64).unwrap();
        let mut b = [0u8; 1];
        tx.write_all(&[1]).unwrap();
        rx.read_exact(&mut b).unwrap();
        drop(rx);
        let e = tx.write_all(&[0u8; 200]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
