//! CPU-bound workloads: the op is pure computation, no syscalls.
//!
//! - `spin`: dependent multiply-adds, calibrated in `prepare` (before workers exist) so every
//!   model runs the same iteration count.
//! - `hash`: SHA-256 of a per-task buffer (`sha2`).
//! - `primes`: a sieve of Eratosthenes over a reused per-task buffer.
//! - `matmul`: an N×N f64 matrix product in i-k-j order.
//! - `json`: a serde_json serialize + parse round trip of a typed document.
//!
//! All inputs are generated per task in [`Workload::task`] (from the task's seed), outside the
//! op; results go through [`std::hint::black_box`] so the work cannot be optimised away.
//!
//! # Timing model
//! One op = one call of the kernel function from the first instruction to its result; the
//! harness reads the clock once per op boundary, so per-op overhead is one `clock_gettime`,
//! one histogram record and one relaxed store to the worker's shared counter. Buffer and
//! matrix setup happens once per task, not per op; `json` allocates the parsed document's
//! strings inside the op (that is part of parsing), the others allocate nothing per op.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::param::format_size;
use super::{
    Kind, ParamDef, Params, Step, Task, TaskCtx, Unit, Workload, WorkloadDef, WorkloadError,
};

// ---------------------------------------------------------------------------------------------
// spin

/// `spin`: a fixed number of dependent multiply-add iterations, calibrated to a target op time.
pub static SPIN: WorkloadDef = WorkloadDef {
    id: "spin",
    kind: Kind::Cpu,
    op: "a fixed number of dependent 64-bit multiply-adds (an LCG), calibrated to `op_time` on this machine",
    params: &[
        ParamDef {
            name: "op_time",
            unit: Unit::Duration,
            default: "10us",
            help: "target time of one op on an idle core; calibrated to an iteration count before the cell",
        },
        ParamDef {
            name: "iterations",
            unit: Unit::Count,
            default: "0",
            help: "fixed iteration count instead of calibrating (0 = calibrate to op_time)",
        },
    ],
    build: build_spin,
};

fn build_spin(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let op_time = p.duration("op_time");
    if op_time < Duration::from_nanos(50) || op_time > Duration::from_secs(1) {
        return Err(WorkloadError::Param {
            name: "op_time",
            reason: format!("{op_time:?} is outside 50ns..1s"),
        });
    }
    Ok(Box::new(Spin {
        op_time,
        iterations: p.count("iterations"),
    }))
}

/// The spin kernel: `iters` dependent LCG steps from `seed`. The dependency chain defeats
/// vectorisation and closed-form folding, so time is linear in `iters`.
#[inline(never)]
pub fn spin_kernel(iters: u64, seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..iters {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
    black_box(x)
}

/// Measures the spin kernel's nanoseconds per iteration on this core: doubles the count until
/// a run is long enough to time well; the fastest of several tries wins (interference only ever
/// adds time). The runner measures this once per run, so every cell and model of the run gets
/// the same iteration count for the same `op_time`.
pub fn spin_ns_per_iter() -> f64 {
    let mut n: u64 = 1024;
    loop {
        let best = (0..5)
            .map(|_| {
                let t = Instant::now();
                spin_kernel(n, 1);
                t.elapsed()
            })
            .min()
            .unwrap();
        if best >= Duration::from_millis(2) || n >= 1 << 40 {
            return best.as_nanos() as f64 / n as f64;
        }
        n *= 2;
    }
}

/// The iteration count that takes `target` at `ns_per_iter` (at least 1).
pub fn iterations_for(target: Duration, ns_per_iter: f64) -> u64 {
    ((target.as_nanos() as f64 / ns_per_iter).round() as u64).max(1)
}

/// Measures and converts in one go (benches and tests; the runner calibrates once per run).
pub fn calibrate_spin(target: Duration) -> u64 {
    iterations_for(target, spin_ns_per_iter())
}

struct Spin {
    op_time: Duration,
    iterations: u64,
}

impl Workload for Spin {
    fn prepare(&mut self, env: &super::PrepareEnv) -> Result<(), WorkloadError> {
        if self.iterations == 0 {
            self.iterations = iterations_for(self.op_time, env.spin_ns_per_iter);
        }
        Ok(())
    }

    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let iterations = if self.iterations == 0 {
            calibrate_spin(self.op_time)
        } else {
            self.iterations
        };
        Ok(Box::new(SpinTask {
            iterations,
            x: ctx.seed | 1,
        }))
    }

    fn resolved(&self) -> Vec<(String, String)> {
        vec![("iterations".into(), self.iterations.to_string())]
    }
}

struct SpinTask {
    iterations: u64,
    x: u64,
}

impl Task for SpinTask {
    #[inline]
    fn step(&mut self) -> Result<Step, WorkloadError> {
        self.x = spin_kernel(self.iterations, self.x);
        Ok(Step::Done)
    }
}

// ---------------------------------------------------------------------------------------------
// shared helpers

fn param_err(name: &'static str, reason: String) -> WorkloadError {
    WorkloadError::Param { name, reason }
}

/// Checks that size parameter `name` lies in `lo..=hi`; the error names the accepted range.
fn check_size(p: &Params, name: &'static str, lo: u64, hi: u64) -> Result<u64, WorkloadError> {
    let v = p.size(name);
    if v < lo || v > hi {
        return Err(param_err(
            name,
            format!(
                "{} is outside {}..{} (accepted range, inclusive)",
                format_size(v),
                format_size(lo),
                format_size(hi)
            ),
        ));
    }
    Ok(v)
}

/// Checks that count parameter `name` lies in `lo..=hi`; the error names the accepted range.
fn check_count(p: &Params, name: &'static str, lo: u64, hi: u64) -> Result<u64, WorkloadError> {
    let v = p.count(name);
    if v < lo || v > hi {
        return Err(param_err(
            name,
            format!("{v} is outside {lo}..{hi} (accepted range, inclusive)"),
        ));
    }
    Ok(v)
}

/// `len` pseudo-random bytes from `seed` (fastrand: same bytes for the same seed everywhere).
fn seeded_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
}

// ---------------------------------------------------------------------------------------------
// hash

const HASH_MAX: u64 = 64 << 20;

/// `hash`: SHA-256 of a per-task buffer.
pub static HASH: WorkloadDef = WorkloadDef {
    id: "hash",
    kind: Kind::Cpu,
    op: "one SHA-256 digest (sha2 crate) of a `size`-byte buffer generated per task from its seed",
    params: &[ParamDef {
        name: "size",
        unit: Unit::Size,
        default: "4KiB",
        help: "bytes hashed per op (1B..64MiB)",
    }],
    build: build_hash,
};

fn build_hash(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let size = check_size(p, "size", 1, HASH_MAX)?;
    Ok(Box::new(HashWorkload {
        size: size as usize,
    }))
}

/// The hash kernel: the SHA-256 digest of `data`.
#[inline(never)]
pub fn sha256_kernel(data: &[u8]) -> [u8; 32] {
    let d = Sha256::digest(black_box(data));
    let mut out = [0u8; 32];
    out.copy_from_slice(&d);
    out
}

struct HashWorkload {
    size: usize,
}

impl Workload for HashWorkload {
    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        Ok(Box::new(HashTask {
            buf: seeded_bytes(self.size, ctx.seed),
        }))
    }
}

struct HashTask {
    buf: Vec<u8>,
}

impl Task for HashTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        black_box(sha256_kernel(&self.buf));
        Ok(Step::Done)
    }
}

// ---------------------------------------------------------------------------------------------
// primes

const PRIMES_MAX: u64 = 100_000_000;

/// `primes`: a sieve of Eratosthenes over a reused per-task buffer.
pub static PRIMES: WorkloadDef = WorkloadDef {
    id: "primes",
    kind: Kind::Cpu,
    op: "count the primes below `n` with a sieve of Eratosthenes over a per-task buffer (no allocation per op)",
    params: &[ParamDef {
        name: "n",
        unit: Unit::Count,
        default: "100000",
        help: "primes are counted below this bound (2..100000000); the sieve takes n bytes per task",
    }],
    build: build_primes,
};

fn build_primes(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let n = check_count(p, "n", 2, PRIMES_MAX)?;
    Ok(Box::new(PrimesWorkload { n: n as usize }))
}

/// The sieve kernel: the number of primes below `n`, using `sieve` as scratch. `sieve` is
/// resized to `n` (it allocates only when its capacity is smaller than `n`).
#[inline(never)]
pub fn count_primes(n: usize, sieve: &mut Vec<bool>) -> u64 {
    if n <= 2 {
        return 0;
    }
    sieve.clear();
    sieve.resize(n, true);
    sieve[0] = false;
    sieve[1] = false;
    let mut i = 2;
    while i * i < n {
        if sieve[i] {
            let mut j = i * i;
            while j < n {
                sieve[j] = false;
                j += i;
            }
        }
        i += 1;
    }
    sieve.iter().filter(|&&p| p).count() as u64
}

struct PrimesWorkload {
    n: usize,
}

impl Workload for PrimesWorkload {
    fn task(&self, _ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        Ok(Box::new(PrimesTask {
            n: self.n,
            sieve: vec![true; self.n],
        }))
    }
}

struct PrimesTask {
    n: usize,
    sieve: Vec<bool>,
}

impl Task for PrimesTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        black_box(count_primes(black_box(self.n), &mut self.sieve));
        Ok(Step::Done)
    }
}

// ---------------------------------------------------------------------------------------------
// matmul

const MATMUL_MAX: u64 = 2048;

/// `matmul`: dense f64 matrix multiply.
pub static MATMUL: WorkloadDef = WorkloadDef {
    id: "matmul",
    kind: Kind::Cpu,
    op: "one N×N f64 matrix product C = A·B (i-k-j loop order) into per-task preallocated matrices",
    params: &[ParamDef {
        name: "n",
        unit: Unit::Count,
        default: "64",
        help: "matrix dimension N (1..2048); three N×N f64 matrices per task",
    }],
    build: build_matmul,
};

fn build_matmul(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let n = check_count(p, "n", 1, MATMUL_MAX)?;
    Ok(Box::new(MatmulWorkload { n: n as usize }))
}

/// The matmul kernel: `c = a · b` for row-major `n`×`n` matrices, in i-k-j order (the inner
/// loop walks rows of `b` and `c` contiguously).
#[inline(never)]
pub fn matmul_kernel(n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    assert!(a.len() == n * n && b.len() == n * n && c.len() == n * n);
    c.fill(0.0);
    for i in 0..n {
        let c_row = &mut c[i * n..(i + 1) * n];
        for k in 0..n {
            let aik = a[i * n + k];
            let b_row = &b[k * n..(k + 1) * n];
            for (cij, bkj) in c_row.iter_mut().zip(b_row) {
                *cij += aik * bkj;
            }
        }
    }
}

struct MatmulWorkload {
    n: usize,
}

impl Workload for MatmulWorkload {
    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let n = self.n;
        let mut rng = fastrand::Rng::with_seed(ctx.seed);
        let mut gen_matrix = || {
            (0..n * n)
                .map(|_| rng.f64() * 2.0 - 1.0)
                .collect::<Vec<_>>()
        };
        let a = gen_matrix();
        let b = gen_matrix();
        Ok(Box::new(MatmulTask {
            n,
            a,
            b,
            c: vec![0.0; n * n],
        }))
    }
}

struct MatmulTask {
    n: usize,
    a: Vec<f64>,
    b: Vec<f64>,
    c: Vec<f64>,
}

impl Task for MatmulTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        matmul_kernel(self.n, black_box(&self.a), black_box(&self.b), &mut self.c);
        black_box(&self.c);
        Ok(Step::Done)
    }
}

// ---------------------------------------------------------------------------------------------
// json

const JSON_MIN: u64 = 64;
const JSON_MAX: u64 = 64 << 20;

/// `json`: serde_json serialize + parse of a typed document.
pub static JSON: WorkloadDef = WorkloadDef {
    id: "json",
    kind: Kind::Cpu,
    op: "serialize a generated ~`size`-byte document to JSON (serde_json, reused buffer), then parse it back into the typed struct",
    params: &[ParamDef {
        name: "size",
        unit: Unit::Size,
        default: "4KiB",
        help: "approximate serialized size of the document (64B..64MiB)",
    }],
    build: build_json,
};

fn build_json(p: &Params) -> Result<Box<dyn Workload>, WorkloadError> {
    let size = check_size(p, "size", JSON_MIN, JSON_MAX)?;
    Ok(Box::new(JsonWorkload {
        size: size as usize,
        doc_bytes: None,
    }))
}

/// The document the `json` workload round-trips: an order with line items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonDoc {
    /// Document id.
    pub id: u64,
    /// Free text.
    pub title: String,
    /// Short labels.
    pub tags: Vec<String>,
    /// The bulk of the document.
    pub items: Vec<JsonItem>,
}

/// One line item of a [`JsonDoc`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonItem {
    /// Item id.
    pub id: u64,
    /// Item name.
    pub name: String,
    /// A price in quarters, so it parses back exactly.
    pub price: f64,
    /// How many.
    pub quantity: u32,
    /// Availability.
    pub in_stock: bool,
    /// Optional remark.
    pub note: Option<String>,
}

fn random_word(rng: &mut fastrand::Rng, min: usize, max: usize) -> String {
    let len = rng.usize(min..=max);
    (0..len).map(|_| rng.alphanumeric()).collect()
}

/// Generates a document from `seed` whose serialized form is about `size` bytes (within one
/// item, about 100 bytes, of it; never less than the empty document).
pub fn generate_json_doc(size: usize, seed: u64) -> JsonDoc {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut doc = JsonDoc {
        id: rng.u64(..1 << 53),
        title: random_word(&mut rng, 8, 24),
        tags: (0..3).map(|_| random_word(&mut rng, 3, 8)).collect(),
        items: Vec::new(),
    };
    let mut len = serde_json::to_vec(&doc).map(|v| v.len()).unwrap_or(0);
    while len < size {
        let item = JsonItem {
            id: rng.u64(..1 << 53),
            name: random_word(&mut rng, 4, 16),
            price: rng.u32(..400_000) as f64 / 4.0,
            quantity: rng.u32(..1000),
            in_stock: rng.bool(),
            note: rng.bool().then(|| random_word(&mut rng, 8, 32)),
        };
        let item_len = serde_json::to_vec(&item).map(|v| v.len()).unwrap_or(0);
        // One comma between items.
        let add = item_len + usize::from(!doc.items.is_empty());
        if len + add > size + item_len / 2 {
            break;
        }
        len += add;
        doc.items.push(item);
    }
    doc
}

/// The json kernel: serializes `doc` into `buf` (cleared first) and parses it back.
#[inline(never)]
pub fn json_round_trip(doc: &JsonDoc, buf: &mut Vec<u8>) -> Result<JsonDoc, WorkloadError> {
    buf.clear();
    serde_json::to_writer(&mut *buf, doc)
        .map_err(|e| WorkloadError::Other(format!("json: serialize: {e}")))?;
    serde_json::from_slice(buf).map_err(|e| WorkloadError::Other(format!("json: parse: {e}")))
}

struct JsonWorkload {
    size: usize,
    /// Serialized size of task 0's document, measured in `prepare`.
    doc_bytes: Option<usize>,
}

impl Workload for JsonWorkload {
    fn prepare(&mut self, _env: &super::PrepareEnv) -> Result<(), WorkloadError> {
        let doc = generate_json_doc(self.size, 0);
        let mut buf = Vec::new();
        json_round_trip(&doc, &mut buf)?;
        self.doc_bytes = Some(buf.len());
        Ok(())
    }

    fn task(&self, ctx: &TaskCtx) -> Result<Box<dyn Task>, WorkloadError> {
        let doc = generate_json_doc(self.size, ctx.seed);
        Ok(Box::new(JsonTask {
            doc,
            buf: Vec::with_capacity(self.size * 2),
        }))
    }

    fn resolved(&self) -> Vec<(String, String)> {
        match self.doc_bytes {
            Some(b) => vec![("doc_bytes".into(), b.to_string())],
            None => Vec::new(),
        }
    }
}

struct JsonTask {
    doc: JsonDoc,
    buf: Vec<u8>,
}

impl Task for JsonTask {
    fn step(&mut self) -> Result<Step, WorkloadError> {
        let back = json_round_trip(black_box(&self.doc), &mut self.buf)?;
        black_box(back);
        Ok(Step::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Mode, PrepareEnv, Value, run_ops};

    #[test]
    fn spin_time_grows_with_iterations() {
        let t = |n| {
            (0..3)
                .map(|_| {
                    let s = Instant::now();
                    spin_kernel(n, 3);
                    s.elapsed()
                })
                .min()
                .unwrap()
        };
        // Not a timing assertion on the machine's speed: 64x the work must take longer.
        assert!(t(1 << 20) > t(1 << 14));
    }

    #[test]
    fn calibrated_spin_runs_ops() {
        let mut w = build_spin(&Params::from_values([
            (
                "op_time",
                super::super::Value::Duration(Duration::from_micros(5)),
            ),
            ("iterations", super::super::Value::Count(0)),
        ]))
        .unwrap();
        w.prepare(&PrepareEnv::new(std::env::temp_dir(), 1))
            .unwrap();
        let it: u64 = w.resolved()[0].1.parse().unwrap();
        assert!(it > 0);
        let mut t = w
            .task(&TaskCtx {
                task: 0,
                mode: Mode::Blocking,
                seed: 1,
            })
            .unwrap();
        run_ops(t.as_mut(), 10).unwrap();
    }

    #[test]
    fn kernel_is_deterministic() {
        assert_eq!(spin_kernel(100, 5), spin_kernel(100, 5));
        assert_ne!(spin_kernel(100, 5), spin_kernel(101, 5));
    }

    fn ctx(seed: u64) -> TaskCtx {
        TaskCtx {
            task: 0,
            mode: Mode::Blocking,
            seed,
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn sha256_known_digests() {
        assert_eq!(
            hex(&sha256_kernel(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256_kernel(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn hash_task_runs_and_buffers_follow_the_seed() {
        assert_eq!(seeded_bytes(64, 9), seeded_bytes(64, 9));
        assert_ne!(seeded_bytes(64, 9), seeded_bytes(64, 10));
        let w = build_hash(&Params::from_values([("size", Value::Size(1000))])).unwrap();
        let mut t = w.task(&ctx(3)).unwrap();
        run_ops(t.as_mut(), 5).unwrap();
    }

    #[test]
    fn hash_rejects_out_of_range_size() {
        let e = build_hash(&Params::from_values([("size", Value::Size(0))]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("`size`") && e.contains("1B..64MiB"), "{e}");
        assert!(build_hash(&Params::from_values([("size", Value::Size(HASH_MAX + 1))])).is_err());
    }

    #[test]
    fn sieve_counts_primes() {
        let mut buf = Vec::new();
        assert_eq!(count_primes(2, &mut buf), 0);
        assert_eq!(count_primes(3, &mut buf), 1);
        assert_eq!(count_primes(10, &mut buf), 4);
        assert_eq!(count_primes(11, &mut buf), 4);
        assert_eq!(count_primes(12, &mut buf), 5);
        assert_eq!(count_primes(100, &mut buf), 25);
        assert_eq!(count_primes(100_000, &mut buf), 9592);
        // Reused buffer: a smaller bound after a larger one is still right, without realloc.
        let cap = buf.capacity();
        assert_eq!(count_primes(100, &mut buf), 25);
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn primes_task_runs_and_checks_range() {
        let w = build_primes(&Params::from_values([("n", Value::Count(1000))])).unwrap();
        run_ops(w.task(&ctx(0)).unwrap().as_mut(), 3).unwrap();
        let e = build_primes(&Params::from_values([("n", Value::Count(1))]))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("2..100000000"), "{e}");
    }

    #[test]
    fn matmul_small_case_by_hand() {
        // [1 2; 3 4] · [5 6; 7 8] = [19 22; 43 50]
        let mut c = vec![f64::NAN; 4];
        matmul_kernel(2, &[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0], &mut c);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
        // Non-commuting 3×3 with the identity and a permutation.
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let id = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let mut c = vec![0.0; 9];
        matmul_kernel(3, &a, &id, &mut c);
        assert_eq!(c, a.to_vec());
        // Swap columns 0 and 2: P = [0 0 1; 0 1 0; 1 0 0].
        let p = [0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
        matmul_kernel(3, &a, &p, &mut c);
        assert_eq!(c, vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0, 9.0, 8.0, 7.0]);
    }

    #[test]
    fn matmul_task_runs_and_checks_range() {
        let w = build_matmul(&Params::from_values([("n", Value::Count(8))])).unwrap();
        run_ops(w.task(&ctx(1)).unwrap().as_mut(), 3).unwrap();
        assert!(build_matmul(&Params::from_values([("n", Value::Count(0))])).is_err());
        assert!(build_matmul(&Params::from_values([("n", Value::Count(MATMUL_MAX + 1))])).is_err());
    }

    #[test]
    fn json_round_trip_equals_original() {
        for size in [64usize, 4096, 100_000] {
            let doc = generate_json_doc(size, 42);
            let mut buf = Vec::new();
            let back = json_round_trip(&doc, &mut buf).unwrap();
            assert_eq!(back, doc);
            // About `size` bytes: within one item (< 200 bytes) of the target.
            assert!(
                buf.len().abs_diff(size) < 200,
                "size {size}: got {}",
                buf.len()
            );
        }
        assert_eq!(generate_json_doc(4096, 1), generate_json_doc(4096, 1));
        assert_ne!(generate_json_doc(4096, 1), generate_json_doc(4096, 2));
    }

    #[test]
    fn json_workload_prepares_and_runs() {
        let mut w = build_json(&Params::from_values([("size", Value::Size(4096))])).unwrap();
        w.prepare(&PrepareEnv::new(std::env::temp_dir(), 1))
            .unwrap();
        let r = w.resolved();
        assert_eq!(r[0].0, "doc_bytes");
        run_ops(w.task(&ctx(5)).unwrap().as_mut(), 3).unwrap();
        assert!(build_json(&Params::from_values([("size", Value::Size(10))])).is_err());
    }
}
