//! The shared control block of one cell and the start gate.
//!
//! One `MAP_SHARED` slice of cache-padded atomics, created by the cell host before any worker
//! exists, so forked workers and threads read and write the very same words:
//! slot 0 is the phase (setup → warmup → measure → drain → stop), slot 1 counts workers that finished
//! setting up, and slot 2+w is worker w's op counter. Each counter has one writer (its worker,
//! a relaxed store per op) and sits on its own cache line, so counting costs no sharing.
//!
//! The start gate is a pipe: every worker blocks reading it and the host closes the write end,
//! which wakes all of them at once with EOF: threads and processes alike.

use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam::utils::CachePadded;

use crate::sys::SharedSlice;

/// Workers are being created and are building their tasks.
pub const SETUP: u64 = 0;
/// Running, not yet measured.
pub const WARMUP: u64 = 1;
/// The measured window is open.
pub const MEASURE: u64 = 2;
/// The window closed: keep running (so memory can be read from live workers) but stop
/// recording.
pub const DRAIN: u64 = 3;
/// Stop after the current op and report.
pub const STOP: u64 = 4;

const PHASE: usize = 0;
const READY: usize = 1;
const FIRST_COUNTER: usize = 2;

/// Phase word, ready count and per-worker op counters in shared memory.
pub struct Control {
    slots: SharedSlice<CachePadded<AtomicU64>>,
    workers: usize,
}

impl Control {
    /// Maps a control block for `workers` workers (phase = SETUP, counters = 0).
    pub fn new(workers: usize) -> io::Result<Self> {
        Ok(Self {
            slots: SharedSlice::new(FIRST_COUNTER + workers)?,
            workers,
        })
    }

    /// Number of worker counters.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The phase word (workers load it once per op).
    pub fn phase_word(&self) -> &AtomicU64 {
        &self.slots[PHASE]
    }

    /// Current phase.
    pub fn phase(&self) -> u64 {
        self.slots[PHASE].load(Ordering::Acquire)
    }

    /// Moves every worker to `phase`.
    pub fn set_phase(&self, phase: u64) {
        self.slots[PHASE].store(phase, Ordering::Release);
    }

    /// Called by a worker when its tasks are built (or failed to build).
    pub fn mark_ready(&self) {
        self.slots[READY].fetch_add(1, Ordering::AcqRel);
    }

    /// Workers that finished setting up.
    pub fn ready(&self) -> usize {
        self.slots[READY].load(Ordering::Acquire) as usize
    }

    /// Worker `w`'s op counter (ops completed since it started, all phases).
    pub fn counter(&self, w: usize) -> &AtomicU64 {
        &self.slots[FIRST_COUNTER + w]
    }

    /// A snapshot of every worker's counter.
    pub fn counts(&self) -> Vec<u64> {
        (0..self.workers)
            .map(|w| self.counter(w).load(Ordering::Relaxed))
            .collect()
    }
}

/// The start gate: a pipe whose write end the host closes to release every worker.
pub struct Gate {
    reader: io::PipeReader,
    writer: parking_lot::Mutex<Option<io::PipeWriter>>,
    writer_fd: RawFd,
}

impl Gate {
    /// Creates a closed gate.
    pub fn new() -> io::Result<Self> {
        let (reader, writer) = io::pipe()?;
        Ok(Self {
            reader,
            writer_fd: writer.as_raw_fd(),
            writer: parking_lot::Mutex::new(Some(writer)),
        })
    }

    /// The write end's fd: a forked worker must close its inherited copy, or the gate never
    /// opens (EOF needs every write end closed).
    pub fn writer_fd(&self) -> Option<RawFd> {
        self.writer.lock().as_ref().map(|_| self.writer_fd)
    }

    /// Blocks until the gate opens (EOF). Used by workers.
    pub fn wait(&self) -> io::Result<()> {
        let mut r = &self.reader;
        let mut buf = [0u8; 1];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Opens the gate: every waiting worker wakes.
    pub fn open(&self) {
        self.writer.lock().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_releases_all_threads() {
        let g = Gate::new().unwrap();
        let c = Control::new(3).unwrap();
        std::thread::scope(|s| {
            for w in 0..3 {
                let (g, c) = (&g, &c);
                s.spawn(move || {
                    c.mark_ready();
                    g.wait().unwrap();
                    c.counter(w).store(w as u64 + 1, Ordering::Relaxed);
                });
            }
            while c.ready() < 3 {
                std::thread::yield_now();
            }
            assert_eq!(c.counts(), vec![0, 0, 0]);
            g.open();
        });
        assert_eq!(c.counts(), vec![1, 2, 3]);
    }
}
