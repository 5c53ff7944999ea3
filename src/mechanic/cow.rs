//! `cow`: copy-on-write `fork()` of a process with a large resident heap, the Redis
//! background-save case: fork is fast because it copies page tables, not pages, but every
//! page that one side then writes is copied by a page fault, in whichever process writes.
//!
//! Params: `heap` (1MiB..4GiB, and at most half of `MemAvailable` so that the copies cannot
//! exhaust memory), `write_pct` (0..100: the share of the heap's pages written once, spread
//! evenly), `writer` (`child`: the child writes, like a snapshotting child touching its own
//! buffers; `parent`: the parent writes while the child is still alive, like Redis serving
//! writes during a background save; the child waits on a pipe until the parent is done).
//!
//! The heap is a private anonymous mapping in base pages ([`crate::sys::mem::PrivateMap`],
//! advised `MADV_NOHUGEPAGE`), so one written page is one copy, whatever the machine's
//! transparent-huge-page setting. It is allocated and every page written once, on the first
//! `measure`, outside any timing.
//!
//! Figures per iteration (means over `iters`): `fork_ns` (the fork call alone, parent side:
//! from before `fork()` to its return in the parent), `total_ns` (fork + writes + child exit +
//! `wait4`), `minor_faults_per_iter` (the writer's minor faults: for `writer = child` the
//! child's whole-life rusage from `wait4`, for `writer = parent` the parent's `RUSAGE_THREAD`
//! delta over the iteration), `pages_written`, `heap_pages`. The fault count is raw, with no
//! baseline subtracted: it includes the writer's fixed cost of a few dozen faults per fork
//! (the child touching its stack and libc data after the fork, or the parent re-faulting its
//! own stack and allocator pages that fork made copy-on-write). Compare with `write_pct = 0`
//! for that baseline.
//!
//! Expected: `fork_ns` grows with the heap (page tables are copied; not the pages), minor
//! faults grow with `write_pct` by about one per written page.
//!
//! # Timing model
//! Outside `elapsed`: allocating and touching the heap (first `measure` only), creating the
//! parent-writer's pipe. Inside `elapsed`: for each iteration, `total_ns` as above, from just
//! before `fork()` to the return of `wait4` that reaped the child; `elapsed` is their sum.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::{Measured, Mechanic, MechanicDef, MechanicEnv};
use crate::sys::mem::{PrivateMap, mem_available, page_size};
use crate::sys::{Rusage, fork_child, thread_rusage};
use crate::workload::param::format_size;
use crate::workload::{ParamDef, Params, Unit, WorkloadError};

/// Writer choices.
pub const WRITERS: &[&str] = &["child", "parent"];
const MIN_HEAP: u64 = 1 << 20;
const MAX_HEAP: u64 = 4 << 30;

/// Registry entry.
pub static COW: MechanicDef = MechanicDef {
    id: "cow",
    about: "copy-on-write fork of a resident heap (Redis background save): fork latency and \
            page-copy faults as the child or the parent writes a share of the pages",
    params: &[
        ParamDef {
            name: "heap",
            unit: Unit::Size,
            default: "64MiB",
            help: "resident heap forked each iteration, 1MiB..4GiB and at most MemAvailable/2",
        },
        ParamDef {
            name: "write_pct",
            unit: Unit::Count,
            default: "0",
            help: "percent of the heap's pages written once per iteration, 0..100",
        },
        ParamDef {
            name: "writer",
            unit: Unit::Choice(WRITERS),
            default: "child",
            help: "who writes after the fork: child, or parent (while the child lives)",
        },
    ],
    build,
};

/// Checks a heap size against the range and the memory available; the error says why.
fn check_heap(heap: u64, available: u64) -> Result<(), String> {
    if !(MIN_HEAP..=MAX_HEAP).contains(&heap) {
        return Err(format!("{} is out of range: 1MiB..4GiB", format_size(heap)));
    }
    if heap > available / 2 {
        return Err(format!(
            "{} is more than half of MemAvailable ({} MiB): the heap plus its copy-on-write \
             copies could exhaust memory; use at most {} MiB",
            format_size(heap),
            available >> 20,
            (available / 2) >> 20
        ));
    }
    Ok(())
}

fn build(p: &Params, _env: &MechanicEnv) -> Result<Box<dyn Mechanic>, WorkloadError> {
    let heap = p.size("heap");
    let available = mem_available().map_err(|e| WorkloadError::io("read /proc/meminfo", e))?;
    check_heap(heap, available).map_err(|reason| WorkloadError::Param {
        name: "heap",
        reason,
    })?;
    let write_pct = p.count("write_pct");
    if write_pct > 100 {
        return Err(WorkloadError::Param {
            name: "write_pct",
            reason: format!("{write_pct} is out of range: 0..100"),
        });
    }
    Ok(Box::new(Cow {
        heap_bytes: heap as usize,
        write_pct,
        parent_writes: p.choice("writer") == "parent",
        heap: None,
    }))
}

/// The built mechanic.
pub struct Cow {
    heap_bytes: usize,
    write_pct: u64,
    parent_writes: bool,
    heap: Option<PrivateMap>,
}

/// Writes one byte in `count` of the heap's pages, spread evenly.
fn write_pages(heap: &mut [u8], count: usize) {
    let ps = page_size();
    let pages = heap.len() / ps;
    for k in 0..count {
        let page = k * pages / count;
        let b = &mut heap[page * ps];
        *b = b.wrapping_add(1);
    }
    std::hint::black_box(&heap[0]);
}

impl Cow {
    fn heap(&mut self) -> Result<&mut [u8], String> {
        if self.heap.is_none() {
            let mut m = PrivateMap::new(self.heap_bytes)
                .map_err(|e| format!("mmap {}: {e}", format_size(self.heap_bytes as u64)))?;
            let ps = page_size();
            for b in m.as_mut_slice().iter_mut().step_by(ps) {
                *b = 1;
            }
            self.heap = Some(m);
        }
        Ok(self.heap.as_mut().expect("just mapped").as_mut_slice())
    }

    fn pages_written(&self, pages: usize) -> usize {
        (pages as u64 * self.write_pct).div_ceil(100) as usize
    }
}

impl Mechanic for Cow {
    fn iteration(&self) -> &'static str {
        "fork + writes + child _exit + wait4"
    }

    fn measure(&mut self, iters: u64) -> Result<Measured, String> {
        let parent_writes = self.parent_writes;
        let heap_len = self.heap()?.len();
        let pages = heap_len / page_size();
        let count = self.pages_written(pages);
        let mut fork_total = Duration::ZERO;
        let mut total = Duration::ZERO;
        let mut faults = 0u64;
        let mut children = Rusage::default();
        let parent0 = thread_rusage();
        for _ in 0..iters {
            let heap = self.heap()?;
            if parent_writes {
                let (mut r, mut w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
                let r0 = thread_rusage();
                let t0 = Instant::now();
                let mut child = fork_child(move || {
                    let mut b = [0u8; 1];
                    // Returns when the parent writes or closes the pipe.
                    let _ = r.read(&mut b);
                    0
                })
                .map_err(|e| format!("fork: {e}"))?;
                let t_fork = t0.elapsed();
                write_pages(heap, count);
                let _ = w.write_all(&[1]);
                drop(w);
                let exit = child.wait().map_err(|e| format!("wait4: {e}"))?;
                total += t0.elapsed();
                fork_total += t_fork;
                faults += thread_rusage().since(&r0).minor_faults;
                children = children.add(&exit.rusage);
                if !exit.success() {
                    return Err(format!("child failed: {}", exit.describe()));
                }
            } else {
                let t0 = Instant::now();
                let mut child = fork_child(|| {
                    write_pages(heap, count);
                    0
                })
                .map_err(|e| format!("fork: {e}"))?;
                let t_fork = t0.elapsed();
                let exit = child.wait().map_err(|e| format!("wait4: {e}"))?;
                total += t0.elapsed();
                fork_total += t_fork;
                faults += exit.rusage.minor_faults;
                children = children.add(&exit.rusage);
                if !exit.success() {
                    return Err(format!("child failed: {}", exit.describe()));
                }
            }
        }
        let rusage = thread_rusage().since(&parent0).add(&children);
        let it = iters.max(1) as f64;
        Ok(Measured {
            iters,
            elapsed: total,
            rusage,
            extra: vec![
                ("fork_ns".into(), fork_total.as_nanos() as f64 / it),
                ("total_ns".into(), total.as_nanos() as f64 / it),
                ("minor_faults_per_iter".into(), faults as f64 / it),
                ("pages_written".into(), count as f64),
                ("heap_pages".into(), pages as f64),
            ],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::mechanic::testkit::{extra, no_children_left};

    fn build_with(kv: &[(&str, &str)]) -> Result<Box<dyn Mechanic>, WorkloadError> {
        crate::mechanic::testkit::build(&COW, kv)
    }

    fn faults(heap: &str, pct: &str, writer: &str) -> Measured {
        let mut m = build_with(&[("heap", heap), ("write_pct", pct), ("writer", writer)]).unwrap();
        m.measure(3).unwrap()
    }

    #[test]
    fn writing_half_the_pages_copies_them_child_writer() {
        let none = faults("16MiB", "0", "child");
        let half = faults("16MiB", "50", "child");
        let pages = extra(&half, "heap_pages");
        assert_eq!(pages, (16 << 20) as f64 / page_size() as f64);
        assert_eq!(extra(&half, "pages_written"), pages / 2.0);
        assert_eq!(extra(&none, "pages_written"), 0.0);
        let (f0, f50) = (
            extra(&none, "minor_faults_per_iter"),
            extra(&half, "minor_faults_per_iter"),
        );
        // Each written page is one copy-on-write fault in the child.
        assert!(f50 >= f0 + 0.9 * pages / 2.0, "0%: {f0}, 50%: {f50}");
        assert!(extra(&half, "fork_ns") > 0.0);
        assert!(extra(&half, "total_ns") >= extra(&half, "fork_ns"));
        no_children_left();
    }

    #[test]
    fn writing_half_the_pages_copies_them_parent_writer() {
        let none = faults("16MiB", "0", "parent");
        let half = faults("16MiB", "50", "parent");
        let pages = extra(&half, "heap_pages");
        let (f0, f50) = (
            extra(&none, "minor_faults_per_iter"),
            extra(&half, "minor_faults_per_iter"),
        );
        assert!(f50 >= f0 + 0.9 * pages / 2.0, "0%: {f0}, 50%: {f50}");
        no_children_left();
    }

    #[test]
    fn heap_limits_are_explained() {
        assert!(check_heap(64 << 20, 1 << 30).is_ok());
        let e = check_heap(600 << 20, 1 << 30).unwrap_err();
        assert!(
            e.contains("half of MemAvailable") && e.contains("512 MiB"),
            "{e}"
        );
        let e = check_heap(8 << 30, 64 << 30).unwrap_err();
        assert!(e.contains("4GiB"), "{e}");
        let e = build_with(&[("heap", "512KiB")]).err().unwrap().to_string();
        assert!(e.contains("heap") && e.contains("1MiB"), "{e}");
        let e = build_with(&[("write_pct", "101")])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("write_pct"), "{e}");
    }

    #[test]
    fn spread_touches_distinct_pages() {
        let ps = page_size();
        let mut heap = vec![0u8; 10 * ps];
        write_pages(&mut heap, 3);
        let touched: Vec<usize> = (0..10).filter(|p| heap[p * ps] != 0).collect();
        assert_eq!(touched, vec![0, 3, 6]);
        let mut heap = vec![0u8; 10 * ps];
        write_pages(&mut heap, 10);
        assert!((0..10).all(|p| heap[p * ps] == 1));
    }
}
