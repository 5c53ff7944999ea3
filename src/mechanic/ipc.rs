//! `ipc`: one message through each inter-process (and in-process) channel, as a round trip or
//! as a one-way stream.
//!
//! Channels and who the partner is:
//! - `pipe`: two pipes (A→B, B→A) between this process and a forked child. Kernel buffer: the
//!   default 64 KiB per pipe.
//! - `socketpair`: one AF_UNIX SOCK_STREAM socket pair between this process and a forked
//!   child, default socket buffers.
//! - `shm-ring`: two single-producer single-consumer byte rings in `MAP_SHARED` memory made
//!   before the fork, between this process and a forked child ([`crate::sys::ring`]): the
//!   reader spins briefly, then blocks on an eventfd; the writer writes the eventfd only when
//!   the reader said it is waiting (same-core placement: no spin, a waiting side blocks at
//!   once, since spinning would only keep the partner off the shared core). Ring size: 64 messages, at least 64 KiB, at most 16 MiB
//!   (always at least one whole message), rounded to a power of two.
//! - `crossbeam` (`crossbeam::channel::bounded`) and `mpsc` (`std::sync::mpsc::sync_channel`):
//!   the partner is a thread, because these channels only exist within one process. A message
//!   is a `Vec<u8>` of `size` bytes moved through the channel: its bytes are not copied. In a
//!   round trip the same buffer goes there and back; in bandwidth mode A makes each message by
//!   copying `size` bytes into a new `Vec` (allocation + memcpy, the in-process counterpart of
//!   a write copying into the kernel) and B frees it. Capacity: 1 per direction for round
//!   trips, 64 messages for bandwidth.
//!
//! Modes: `round-trip` (one iteration = A sends `size` bytes, B reads all of them and sends
//! them back, A reads them all; A checks a sequence number stamped in each message) and
//! `bandwidth` (one iteration = one `size`-byte message A→B; B reads the stream in chunks of
//! up to max(size, 64 KiB) until it has every byte).
//!
//! Placement (`placement`): A is the calling thread, B the child or thread; each is pinned to
//! its core from [`PairPlacement::cores`]. The calling thread's affinity is restored after
//! each `measure`.
//!
//! # Timing model
//! Outside `elapsed`: creating the channels, forking the child or spawning the thread,
//! pinning, one warm-up exchange (a round trip, or one message and a 1-byte ack), and
//! reaping. Inside `elapsed`: for `round-trip`, the `iters` round trips, timed by A from just
//! after the warm-up reply arrived to just after the last reply arrived; for `bandwidth`, from
//! A's first write of the timed messages until A has received B's 1-byte acknowledgement sent
//! after B read the last byte, so the time includes one extra small one-way message.
//!
//! Rusage (`Measured::rusage`, `switches_per_iter`): A's `RUSAGE_THREAD` over its timed
//! section plus B's own counts over its timed loop (a forked child takes `RUSAGE_SELF` deltas
//! in itself and sends them back through shared memory; a thread takes `RUSAGE_THREAD`).
//! The wait4 rusage of the child is not used: it covers the child's whole life.
//!
//! Extra figures: `round_trip_ns` (round-trip), or `ns_per_msg`, `bytes_per_sec`,
//! `msgs_per_sec` (bandwidth); always `switches_per_iter`, `a_switches_per_iter`,
//! `b_switches_per_iter` (voluntary + involuntary).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

use super::{Measured, Mechanic, MechanicDef, MechanicEnv, PairPlacement};
use crate::sys::rusage::self_rusage;
use crate::sys::{Rusage, SharedSlice, fork_child, pin_current, ring, thread_rusage};
use crate::workload::param::format_size;
use crate::workload::{ParamDef, Params, Unit, WorkloadError};

/// Channel choices.
pub const CHANNELS: &[&str] = &["pipe", "socketpair", "shm-ring", "crossbeam", "mpsc"];
/// Mode choices.
pub const MODES: &[&str] = &["round-trip", "bandwidth"];

const MIN_SIZE: u64 = 1;
const MAX_SIZE: u64 = 1 << 20;
/// B's read chunk in bandwidth mode (at least one message).
const READ_CHUNK: usize = 64 * 1024;
/// Channel capacity in messages for the in-process channels in bandwidth mode.
const MSG_CAPACITY: usize = 64;

/// Registry entry.
pub static IPC: MechanicDef = MechanicDef {
    id: "ipc",
    about: "one message through a pipe, socketpair, shared-memory ring (processes) or \
            crossbeam/mpsc channel (threads): round trip or one-way bandwidth",
    params: &[
        ParamDef {
            name: "channel",
            unit: Unit::Choice(CHANNELS),
            default: "pipe",
            help: "pipe, socketpair, shm-ring (forked partner); crossbeam, mpsc (thread partner)",
        },
        ParamDef {
            name: "mode",
            unit: Unit::Choice(MODES),
            default: "round-trip",
            help: "round-trip: A→B→A per iteration; bandwidth: one message A→B per iteration",
        },
        ParamDef {
            name: "size",
            unit: Unit::Size,
            default: "64B",
            help: "message size, 1B..1MiB",
        },
        ParamDef {
            name: "placement",
            unit: Unit::Choice(PairPlacement::CHOICES),
            default: "cross-core",
            help: "where A and B run: same-core, cross-core, unpinned",
        },
    ],
    build,
};

fn build(p: &Params, env: &MechanicEnv) -> Result<Box<dyn Mechanic>, WorkloadError> {
    let size = p.size("size");
    if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
        return Err(WorkloadError::Param {
            name: "size",
            reason: format!(
                "{} is out of range: a message is 1B..1MiB",
                format_size(size)
            ),
        });
    }
    let placement = PairPlacement::parse(p.choice("placement"));
    let cores = placement
        .cores(&env.cores)
        .map_err(|reason| WorkloadError::Param {
            name: "placement",
            reason,
        })?;
    Ok(Box::new(Ipc {
        channel: p.choice("channel"),
        bandwidth: p.choice("mode") == "bandwidth",
        size: size as usize,
        cores,
    }))
}

/// The built mechanic.
#[derive(Debug, Clone)]
pub struct Ipc {
    channel: &'static str,
    bandwidth: bool,
    size: usize,
    cores: (Option<usize>, Option<usize>),
}

/// What the timed section of one side measured.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    elapsed: Duration,
    rusage: Rusage,
}

impl Mechanic for Ipc {
    fn iteration(&self) -> &'static str {
        if self.bandwidth {
            "one message A→B (streaming)"
        } else {
            "round trip A→B→A"
        }
    }

    fn measure(&mut self, iters: u64) -> Result<Measured, String> {
        let _restore = Affinity::save();
        if let Some(c) = self.cores.0 {
            pin_current(c)?;
        }
        let (a, b) = match self.channel {
            "pipe" => {
                let (ar, bw) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
                let (br, aw) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
                self.over_fork(iters, Duplex { r: ar, w: aw }, Duplex { r: br, w: bw })?
            }
            "socketpair" => {
                let (a, b) = UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
                self.over_fork(iters, a, b)?
            }
            "shm-ring" => {
                let cap = (64 * self.size)
                    .next_power_of_two()
                    .clamp(64 * 1024, 16 << 20);
                let (mut atx, mut brx) = ring::ring(cap).map_err(|e| format!("shm ring: {e}"))?;
                let (mut btx, mut arx) = ring::ring(cap).map_err(|e| format!("shm ring: {e}"))?;
                if self.cores.0.is_some() && self.cores.0 == self.cores.1 {
                    // Same core: spinning only keeps the partner off the core; block at once.
                    atx.set_spin(0);
                    brx.set_spin(0);
                    btx.set_spin(0);
                    arx.set_spin(0);
                }
                self.over_fork(iters, Duplex { r: arx, w: atx }, Duplex { r: brx, w: btx })?
            }
            "crossbeam" => {
                let cap = self.msg_capacity();
                let (atx, brx) = crossbeam::channel::bounded::<Vec<u8>>(cap);
                let (btx, arx) = crossbeam::channel::bounded::<Vec<u8>>(cap);
                self.over_thread(iters, (atx, arx), (btx, brx))?
            }
            "mpsc" => {
                let cap = self.msg_capacity();
                let (atx, brx) = std::sync::mpsc::sync_channel::<Vec<u8>>(cap);
                let (btx, arx) = std::sync::mpsc::sync_channel::<Vec<u8>>(cap);
                self.over_thread(iters, (atx, arx), (btx, brx))?
            }
            other => return Err(format!("unknown channel `{other}`")),
        };
        Ok(self.report(iters, a, b))
    }
}

impl Ipc {
    fn msg_capacity(&self) -> usize {
        if self.bandwidth { MSG_CAPACITY } else { 1 }
    }

    fn report(&self, iters: u64, a: Side, b: Rusage) -> Measured {
        let ru = a.rusage.add(&b);
        let it = iters.max(1) as f64;
        let ns = a.elapsed.as_nanos() as f64;
        let sw = |r: &Rusage| (r.voluntary + r.involuntary) as f64 / it;
        let mut extra = Vec::new();
        if self.bandwidth {
            let secs = a.elapsed.as_secs_f64().max(1e-12);
            extra.push(("ns_per_msg".to_string(), ns / it));
            extra.push((
                "bytes_per_sec".to_string(),
                iters as f64 * self.size as f64 / secs,
            ));
            extra.push(("msgs_per_sec".to_string(), iters as f64 / secs));
        } else {
            extra.push(("round_trip_ns".to_string(), ns / it));
        }
        extra.push(("switches_per_iter".to_string(), sw(&ru)));
        extra.push(("a_switches_per_iter".to_string(), sw(&a.rusage)));
        extra.push(("b_switches_per_iter".to_string(), sw(&b)));
        Measured {
            iters,
            elapsed: a.elapsed,
            rusage: ru,
            extra,
        }
    }

    /// Byte-stream channel, B in a forked child.
    fn over_fork<S: Read + Write>(
        &self,
        iters: u64,
        mut a: S,
        mut b: S,
    ) -> Result<(Side, Rusage), String> {
        let report: SharedSlice<AtomicU64> =
            SharedSlice::new(6).map_err(|e| format!("mmap for the child's report: {e}"))?;
        let rep = &report;
        let (size, bandwidth, core) = (self.size, self.bandwidth, self.cores.1);
        let mut child = fork_child(move || {
            if let Some(c) = core
                && pin_current(c).is_err()
            {
                return 2;
            }
            match stream_b(&mut b, size, bandwidth, iters, self_rusage) {
                Ok(r) => {
                    store_rusage(rep, &r);
                    0
                }
                Err(_) => 3,
            }
        })
        .map_err(|e| format!("fork: {e}"))?;
        let res = stream_a(&mut a, size, bandwidth, iters);
        drop(a);
        let exit = child.wait().map_err(|e| format!("wait4: {e}"))?;
        let side =
            res.map_err(|e| format!("{}: A side: {e} (child: {})", self.channel, exit.describe()))?;
        if !exit.success() {
            return Err(format!(
                "{}: partner process failed: {}",
                self.channel,
                exit.describe()
            ));
        }
        Ok((side, load_rusage(&report)))
    }

    /// Message channel, B in a thread.
    fn over_thread<T: MsgTx, R: MsgRx>(
        &self,
        iters: u64,
        a: (T, R),
        b: (T, R),
    ) -> Result<(Side, Rusage), String> {
        let (size, bandwidth, core) = (self.size, self.bandwidth, self.cores.1);
        std::thread::scope(|s| {
            let partner = s.spawn(move || -> Result<Rusage, String> {
                if let Some(c) = core {
                    pin_current(c)?;
                }
                msg_b(b, bandwidth, iters)
            });
            let res = msg_a(a, size, bandwidth, iters);
            let b = partner
                .join()
                .map_err(|_| "partner thread panicked".to_string())?;
            let side = res?;
            Ok((side, b?))
        })
    }
}

/// A pipe pair as one duplex byte stream.
struct Duplex<R, W> {
    r: R,
    w: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.r.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.w.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }
}

fn stamp(buf: &mut [u8], seq: u64) {
    let b = seq.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n].copy_from_slice(&b[..n]);
}

fn stamped(buf: &[u8], seq: u64) -> bool {
    let b = seq.to_le_bytes();
    let n = buf.len().min(8);
    buf[..n] == b[..n]
}

/// Side A over a byte stream: warm-up, then the timed loop.
fn stream_a<S: Read + Write>(
    s: &mut S,
    size: usize,
    bandwidth: bool,
    iters: u64,
) -> Result<Side, String> {
    let mut msg: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if bandwidth {
        s.write_all(&msg).map_err(|e| io("write", e))?;
        let mut ack = [0u8; 1];
        s.read_exact(&mut ack).map_err(|e| io("read ack", e))?;
        let r0 = thread_rusage();
        let t0 = Instant::now();
        for _ in 0..iters {
            s.write_all(&msg).map_err(|e| io("write", e))?;
        }
        s.read_exact(&mut ack).map_err(|e| io("read ack", e))?;
        let elapsed = t0.elapsed();
        let rusage = thread_rusage().since(&r0);
        Ok(Side { elapsed, rusage })
    } else {
        let mut back = vec![0u8; size];
        let mut rt = |seq: u64, back: &mut [u8]| -> Result<(), String> {
            stamp(&mut msg, seq);
            s.write_all(&msg).map_err(|e| io("write", e))?;
            s.read_exact(back).map_err(|e| io("read", e))?;
            if !stamped(back, seq) {
                return Err(format!(
                    "round trip {seq}: reply carries the wrong sequence"
                ));
            }
            Ok(())
        };
        rt(u64::MAX, &mut back)?;
        let r0 = thread_rusage();
        let t0 = Instant::now();
        for seq in 0..iters {
            rt(seq, &mut back)?;
        }
        let elapsed = t0.elapsed();
        let rusage = thread_rusage().since(&r0);
        Ok(Side { elapsed, rusage })
    }
}

/// Side B over a byte stream; returns its rusage delta over its timed loop.
fn stream_b<S: Read + Write>(
    s: &mut S,
    size: usize,
    bandwidth: bool,
    iters: u64,
    usage: fn() -> Rusage,
) -> std::io::Result<Rusage> {
    if bandwidth {
        let mut buf = vec![0u8; size.max(READ_CHUNK)];
        s.read_exact(&mut buf[..size])?;
        s.write_all(&[1])?;
        let r0 = usage();
        let mut left = iters * size as u64;
        while left > 0 {
            let want = (buf.len() as u64).min(left) as usize;
            let n = s.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            left -= n as u64;
        }
        s.write_all(&[1])?;
        Ok(usage().since(&r0))
    } else {
        let mut buf = vec![0u8; size];
        s.read_exact(&mut buf)?;
        s.write_all(&buf)?;
        let r0 = usage();
        for _ in 0..iters {
            s.read_exact(&mut buf)?;
            s.write_all(&buf)?;
        }
        Ok(usage().since(&r0))
    }
}

fn store_rusage(s: &[AtomicU64], r: &Rusage) {
    let v = [
        r.user_ns,
        r.sys_ns,
        r.voluntary,
        r.involuntary,
        r.minor_faults,
        r.major_faults,
    ];
    for (slot, v) in s.iter().zip(v) {
        slot.store(v, Ordering::Release);
    }
}

fn load_rusage(s: &[AtomicU64]) -> Rusage {
    let g = |i: usize| s[i].load(Ordering::Acquire);
    Rusage {
        user_ns: g(0),
        sys_ns: g(1),
        voluntary: g(2),
        involuntary: g(3),
        minor_faults: g(4),
        major_faults: g(5),
    }
}

/// Sending half of an in-process message channel.
trait MsgTx: Send {
    fn put(&self, m: Vec<u8>) -> Result<(), String>;
}

/// Receiving half of an in-process message channel.
trait MsgRx: Send {
    fn take(&self) -> Result<Vec<u8>, String>;
}

impl MsgTx for crossbeam::channel::Sender<Vec<u8>> {
    fn put(&self, m: Vec<u8>) -> Result<(), String> {
        self.send(m).map_err(|_| "crossbeam: receiver gone".into())
    }
}

impl MsgRx for crossbeam::channel::Receiver<Vec<u8>> {
    fn take(&self) -> Result<Vec<u8>, String> {
        self.recv().map_err(|_| "crossbeam: sender gone".into())
    }
}

impl MsgTx for std::sync::mpsc::SyncSender<Vec<u8>> {
    fn put(&self, m: Vec<u8>) -> Result<(), String> {
        self.send(m).map_err(|_| "mpsc: receiver gone".into())
    }
}

impl MsgRx for std::sync::mpsc::Receiver<Vec<u8>> {
    fn take(&self) -> Result<Vec<u8>, String> {
        self.recv().map_err(|_| "mpsc: sender gone".into())
    }
}

/// Side A over a message channel (consumes its ends, so B sees them close on any error).
fn msg_a<T: MsgTx, R: MsgRx>(
    (tx, rx): (T, R),
    size: usize,
    bandwidth: bool,
    iters: u64,
) -> Result<Side, String> {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    if bandwidth {
        tx.put(src.clone())?;
        rx.take()?;
        let r0 = thread_rusage();
        let t0 = Instant::now();
        for _ in 0..iters {
            tx.put(src.to_vec())?;
        }
        rx.take()?;
        let elapsed = t0.elapsed();
        let rusage = thread_rusage().since(&r0);
        Ok(Side { elapsed, rusage })
    } else {
        let mut m = src;
        let rt = |seq: u64, mut m: Vec<u8>| -> Result<Vec<u8>, String> {
            stamp(&mut m, seq);
            tx.put(m)?;
            let back = rx.take()?;
            if !stamped(&back, seq) || back.len() != size {
                return Err(format!("round trip {seq}: wrong reply"));
            }
            Ok(back)
        };
        m = rt(u64::MAX, m)?;
        let r0 = thread_rusage();
        let t0 = Instant::now();
        for seq in 0..iters {
            m = rt(seq, m)?;
        }
        let elapsed = t0.elapsed();
        let rusage = thread_rusage().since(&r0);
        drop(m);
        Ok(Side { elapsed, rusage })
    }
}

/// Side B over a message channel; its RUSAGE_THREAD delta over its timed loop.
fn msg_b<T: MsgTx, R: MsgRx>(
    (tx, rx): (T, R),
    bandwidth: bool,
    iters: u64,
) -> Result<Rusage, String> {
    if bandwidth {
        drop(rx.take()?);
        tx.put(Vec::new())?;
        let r0 = thread_rusage();
        let mut bytes = 0u64;
        for _ in 0..iters {
            let m = rx.take()?;
            bytes += m.len() as u64;
            drop(std::hint::black_box(m));
        }
        std::hint::black_box(bytes);
        tx.put(Vec::new())?;
        Ok(thread_rusage().since(&r0))
    } else {
        let m = rx.take()?;
        tx.put(m)?;
        let r0 = thread_rusage();
        for _ in 0..iters {
            let m = rx.take()?;
            tx.put(m)?;
        }
        Ok(thread_rusage().since(&r0))
    }
}

/// The calling thread's CPU mask, put back on drop.
struct Affinity(Option<CpuSet>);

impl Affinity {
    fn save() -> Self {
        Affinity(nix::sched::sched_getaffinity(Pid::from_raw(0)).ok())
    }
}

impl Drop for Affinity {
    fn drop(&mut self) {
        if let Some(set) = &self.0 {
            let _ = sched_setaffinity(Pid::from_raw(0), set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::mechanic::testkit::{extra, no_children_left};

    fn build_with(kv: &[(&str, &str)]) -> Result<Box<dyn Mechanic>, WorkloadError> {
        crate::mechanic::testkit::build(&IPC, kv)
    }

    fn placement() -> &'static str {
        if crate::sys::allowed_cpus().len() >= 2 {
            "cross-core"
        } else {
            println!("only one allowed core: running the pair same-core");
            "same-core"
        }
    }

    #[test]
    fn every_channel_round_trips_and_streams() {
        for ch in CHANNELS {
            for size in ["1B", "64B", "100KiB"] {
                for mode in MODES {
                    let mut m = build_with(&[
                        ("channel", ch),
                        ("mode", mode),
                        ("size", size),
                        ("placement", placement()),
                    ])
                    .unwrap();
                    let r = m
                        .measure(200)
                        .unwrap_or_else(|e| panic!("{ch} {mode} {size}: {e}"));
                    assert_eq!(r.iters, 200);
                    assert!(r.elapsed > Duration::ZERO);
                    if *mode == "bandwidth" {
                        assert!(extra(&r, "bytes_per_sec") > 0.0);
                        assert!(extra(&r, "msgs_per_sec") > 0.0);
                    } else {
                        assert!(extra(&r, "round_trip_ns") > 0.0);
                    }
                    assert!(extra(&r, "switches_per_iter") >= 0.0);
                }
            }
        }
        no_children_left();
    }

    #[test]
    fn same_core_blocking_channels_switch_context() {
        // On one core, a pipe round trip cannot complete without both sides blocking: each
        // round trip costs at least one voluntary switch on each side.
        let mut m = build_with(&[("channel", "pipe"), ("placement", "same-core")]).unwrap();
        let r = m.measure(500).unwrap();
        assert!(r.switches_per_iter() >= 1.5, "{:?}", r);
        assert!(extra(&r, "b_switches_per_iter") >= 0.75, "{:?}", r.extra);
        no_children_left();
    }

    #[test]
    fn size_out_of_range_is_rejected() {
        let e = build_with(&[("size", "2MiB")]).err().unwrap().to_string();
        assert!(e.contains("size") && e.contains("1MiB"), "{e}");
        let e = build_with(&[("size", "0")]).err().unwrap().to_string();
        assert!(e.contains("size"), "{e}");
    }

    #[test]
    fn affinity_is_restored() {
        let before = crate::sys::allowed_cpus();
        let mut m = build_with(&[("channel", "socketpair"), ("placement", "same-core")]).unwrap();
        m.measure(10).unwrap();
        assert_eq!(crate::sys::allowed_cpus(), before);
        no_children_left();
    }
}
