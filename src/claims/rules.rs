//! One rule per claim: which figures it reads and how it turns them into a verdict. Each rule
//! names the suite entry that supplies its figures when they are missing.

use super::{Data, Order, Verdict, ns, order, rate};
use crate::model::UnitKind;
use crate::report::result::{CellResult, FaultOutcome, MechanicResult, Spread, WorkerFaultView};

/// A claim and how to check it.
pub(crate) struct Rule {
    pub id: &'static str,
    pub claim: &'static str,
    pub check: fn(&Data) -> (Verdict, String),
}

/// Every claim, in the lecture's order.
pub(crate) static ALL: &[Rule] = &[
    Rule {
        id: "thread-create",
        claim: "Threads are cheaper to create than processes",
        check: thread_create,
    },
    Rule {
        id: "thread-switch",
        claim: "Switching between threads is cheaper than between processes",
        check: thread_switch,
    },
    Rule {
        id: "ipc-shm",
        claim: "Pipes and sockets are slower than shared memory",
        check: ipc_shm,
    },
    Rule {
        id: "loop-io-cpu",
        claim: "A single loop wins I/O-bound work and loses CPU-bound work",
        check: loop_io_cpu,
    },
    Rule {
        id: "oversubscription",
        claim: "More workers than cores raise involuntary switches and hurt throughput",
        check: oversubscription,
    },
    Rule {
        id: "fork-cow",
        claim: "fork is cheap thanks to copy-on-write, until the pages are written",
        check: fork_cow,
    },
    Rule {
        id: "counter-race",
        claim: "An unsynchronized counter loses updates; a lock fixes it at a cost",
        check: counter_race,
    },
    Rule {
        id: "fault-isolation",
        claim: "A crashing process leaves its siblings running; a crashing thread can take its process down",
        check: fault_isolation,
    },
];

fn missing(what: &str) -> (Verdict, String) {
    (
        Verdict::Inconclusive,
        format!("not measured: these results have no {what} (run workloads/lecture.toml)"),
    )
}

fn range(s: &Spread, f: fn(f64) -> String) -> String {
    if s.min == s.max {
        f(s.median)
    } else {
        format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
    }
}

fn extra<'m>(m: &'m MechanicResult, key: &str) -> Option<&'m Spread> {
    m.extra.get(key)
}

/// Verdict for "a is cheaper (smaller) than b".
fn cheaper(a: &Spread, b: &Spread) -> Verdict {
    match order(a, b) {
        Order::Less => Verdict::Holds,
        Order::Greater => Verdict::DoesNotHold,
        Order::Overlap => Verdict::Inconclusive,
    }
}

/// All holds → holds; all do-not-hold → does not hold; otherwise inconclusive.
fn all(vs: &[Verdict]) -> Verdict {
    if vs.iter().all(|v| *v == Verdict::Holds) {
        Verdict::Holds
    } else if vs.iter().all(|v| *v == Verdict::DoesNotHold) {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    }
}

/// A claim made of parts: it fails when any part fails, holds when every part holds.
fn both(vs: &[Verdict]) -> Verdict {
    if vs.contains(&Verdict::DoesNotHold) {
        Verdict::DoesNotHold
    } else {
        all(vs)
    }
}

fn thread_create(d: &Data) -> (Verdict, String) {
    let (Some(fork), Some(thread)) = (
        d.mechanic("spawn", &[("what", "fork")]),
        d.mechanic("spawn", &[("what", "thread")]),
    ) else {
        return missing("spawn mechanic with what = fork and what = thread");
    };
    let v = cheaper(&thread.ns_per_iter, &fork.ns_per_iter);
    let mut s = format!(
        "fork + _exit + waitpid {} vs std thread spawn + join {}: {:.1}× ",
        range(&fork.ns_per_iter, ns),
        range(&thread.ns_per_iter, ns),
        fork.ns_per_iter.median / thread.ns_per_iter.median,
    );
    s.push_str(if thread.ns_per_iter.median < fork.ns_per_iter.median {
        "cheaper as a thread"
    } else {
        "dearer as a thread"
    });
    if let Some(p) = d.mechanic("spawn", &[("what", "pthread")]) {
        s.push_str(&format!(
            "; a bare pthread_create + join {} ({:.1}×)",
            range(&p.ns_per_iter, ns),
            fork.ns_per_iter.median / p.ns_per_iter.median
        ));
    }
    (v, s)
}

fn thread_switch(d: &Data) -> (Verdict, String) {
    let mut verdicts = Vec::new();
    let mut parts = Vec::new();
    for transport in ["pipe", "futex", "eventfd", "yield"] {
        let want = |unit| {
            [
                ("transport", transport),
                ("unit", unit),
                ("placement", "same-core"),
            ]
        };
        let (Some(t), Some(p)) = (
            d.mechanic("pingpong", &want("thread")),
            d.mechanic("pingpong", &want("process")),
        ) else {
            continue;
        };
        let v = cheaper(&t.ns_per_iter, &p.ns_per_iter);
        verdicts.push(v);
        parts.push(format!(
            "{transport}: threads {} vs processes {} per round trip ({:+.1}%, {})",
            range(&t.ns_per_iter, ns),
            range(&p.ns_per_iter, ns),
            (t.ns_per_iter.median / p.ns_per_iter.median - 1.0) * 100.0,
            match v {
                Verdict::Holds => "threads faster",
                Verdict::DoesNotHold => "processes faster",
                Verdict::Inconclusive => "ranges overlap",
            }
        ));
    }
    if verdicts.is_empty() {
        return missing("same-core pingpong of both a thread pair and a process pair");
    }
    let mut s = parts.join("; ");
    s.push_str(
        ". Two switches per round trip on one core; a process switch also changes the address \
         space, which PCID keeps cheap",
    );
    (all(&verdicts), s)
}

fn ipc_shm(d: &Data) -> (Verdict, String) {
    let shm = d.mechanic("ipc", &[("channel", "shm-ring"), ("mode", "round-trip")]);
    let Some(shm) = shm else {
        return missing("ipc round-trip over shm-ring");
    };
    let mut verdicts = Vec::new();
    let mut parts = vec![format!("shm-ring {}", range(&shm.ns_per_iter, ns))];
    for ch in ["pipe", "socketpair"] {
        if let Some(m) = d.mechanic("ipc", &[("channel", ch), ("mode", "round-trip")]) {
            verdicts.push(cheaper(&shm.ns_per_iter, &m.ns_per_iter));
            parts.push(format!(
                "{ch} {} ({:.1}× shm)",
                range(&m.ns_per_iter, ns),
                m.ns_per_iter.median / shm.ns_per_iter.median
            ));
        }
    }
    if verdicts.is_empty() {
        return missing("ipc round-trip over pipe or socketpair");
    }
    (
        all(&verdicts),
        format!("one message there and back: {}", parts.join(", ")),
    )
}

/// The cells of `other` with the same workload parameters as `base` and one worker per core.
fn peer<'a>(d: &Data<'a>, base: &CellResult, other: &str) -> Option<&'a CellResult> {
    d.cells(&base.workload, other, &[])
        .into_iter()
        .find(|c| c.params == base.params && c.workers == d.cores())
}

fn loop_vs(d: &Data, workload: &str, loop_should_win: bool) -> Option<(Verdict, String)> {
    let lp = d.cells(workload, "event-loop", &[]).into_iter().next()?;
    let mut verdicts = Vec::new();
    let mut parts = vec![format!("loop {} ops/s", range(&lp.ops_per_sec, rate))];
    for m in ["threads", "processes"] {
        if let Some(c) = peer(d, lp, m) {
            let v = match order(&lp.ops_per_sec, &c.ops_per_sec) {
                Order::Greater if loop_should_win => Verdict::Holds,
                Order::Less if !loop_should_win => Verdict::Holds,
                Order::Overlap => Verdict::Inconclusive,
                _ => Verdict::DoesNotHold,
            };
            verdicts.push(v);
            parts.push(format!(
                "{m} w{} {} ({:.2}× the loop)",
                c.workers,
                range(&c.ops_per_sec, rate),
                c.ops_per_sec.median / lp.ops_per_sec.median
            ));
        }
    }
    if verdicts.is_empty() {
        return None;
    }
    let params: Vec<String> = lp.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    Some((
        all(&verdicts),
        format!("{workload} ({}): {}", params.join(","), parts.join(", ")),
    ))
}

fn loop_io_cpu(d: &Data) -> (Verdict, String) {
    let io = loop_vs(d, "sleep", true);
    let cpu = loop_vs(d, "spin", false);
    match (io, cpu) {
        (Some((vi, si)), Some((vc, sc))) => (
            both(&[vi, vc]),
            format!(
                "I/O-bound {si} [{}]; CPU-bound {sc} [{}]. Blocking models have one worker per core",
                vi.label(),
                vc.label()
            ),
        ),
        _ => missing(
            "sleep and spin cells for event-loop and for threads/processes with one worker per core",
        ),
    }
}

fn oversubscription(d: &Data) -> (Verdict, String) {
    let cores = d.cores();
    let cells = d.cells("spin", "threads", &[]);
    // A series (same params) with one worker per core and ≥ 4× the cores.
    let pair = cells.iter().filter(|c| c.workers == cores).find_map(|b| {
        cells
            .iter()
            .filter(|c| c.params == b.params && c.workers >= 4 * cores)
            .max_by_key(|c| c.workers)
            .map(|o| (*b, *o))
    });
    let Some((b, o)) = pair else {
        return missing(
            "spin cells under threads with one worker per core and with ≥ 4× the cores",
        );
    };
    let (ib, io) = (
        b.ctx_switches_per_op.involuntary,
        o.ctx_switches_per_op.involuntary,
    );
    let switches_up = io > 2.0 * ib && io - ib > 0.001;
    let change = o.ops_per_sec.median / b.ops_per_sec.median - 1.0;
    let throughput = match order(&o.ops_per_sec, &b.ops_per_sec) {
        Order::Less => Verdict::Holds,
        Order::Greater => Verdict::DoesNotHold,
        // Overlapping ranges with a tiny difference: no measurable harm.
        Order::Overlap if change.abs() < 0.03 => Verdict::DoesNotHold,
        Order::Overlap => Verdict::Inconclusive,
    };
    let switches = if switches_up {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let s = format!(
        "threads w{} vs w{} ({} cores): involuntary switches per op {:.4} → {:.4} [{}]; \
         throughput {} → {} ops/s ({:+.1}%) [{}]; p99 latency {} → {}",
        b.workers,
        o.workers,
        cores,
        ib,
        io,
        switches.label(),
        range(&b.ops_per_sec, rate),
        range(&o.ops_per_sec, rate),
        change * 100.0,
        throughput.label(),
        ns(b.latency_ns.p99 as f64),
        ns(o.latency_ns.p99 as f64),
    );
    (both(&[switches, throughput]), s)
}

fn fork_cow(d: &Data) -> (Verdict, String) {
    let clean = d.mechanic("cow", &[("write_pct", "0")]);
    let dirty = clean.and_then(|c| d.mechanics_like(c, "write_pct", "100"));
    let (Some(c), Some(w)) = (clean, dirty) else {
        return missing("cow mechanic with write_pct = 0 and 100 on the same heap");
    };
    let (Some(fork), Some(fc), Some(fw), Some(pages), Some(tc), Some(tw)) = (
        extra(c, "fork_ns"),
        extra(c, "minor_faults_per_iter"),
        extra(w, "minor_faults_per_iter"),
        extra(c, "heap_pages"),
        extra(c, "total_ns"),
        extra(w, "total_ns"),
    ) else {
        return missing("cow figures (fork_ns, minor_faults_per_iter, heap_pages, total_ns)");
    };
    let heap = c.params.get("heap").cloned().unwrap_or_default();
    let cheap_fork = fc.median < 0.01 * pages.median;
    let copies_on_write = fw.median >= 0.9 * pages.median;
    let dearer = order(tc, tw) == Order::Less;
    let v = if cheap_fork && copies_on_write && dearer {
        Verdict::Holds
    } else if !cheap_fork || !copies_on_write {
        Verdict::DoesNotHold
    } else {
        Verdict::Inconclusive
    };
    (
        v,
        format!(
            "fork of a {heap} heap ({:.0} pages): {}; the child then faults {:.0} pages when it \
             writes none and {:.0} when it writes all (one copy per page); fork to exit {} vs {}",
            pages.median,
            range(fork, ns),
            fc.median,
            fw.median,
            range(tc, ns),
            range(tw, ns)
        ),
    )
}

fn counter_race(d: &Data) -> (Verdict, String) {
    let (Some(none), Some(lock)) = (
        d.mechanic("counter", &[("sync", "none")]),
        d.mechanic("counter", &[("sync", "std-mutex")])
            .or_else(|| d.mechanic("counter", &[("sync", "parking-lot")])),
    ) else {
        return missing("counter mechanic with sync = none and a lock");
    };
    let (Some(lost), Some(lock_lost), Some(expected)) = (
        extra(none, "lost_updates"),
        extra(lock, "lost_updates"),
        extra(none, "expected"),
    ) else {
        return missing("counter figures (lost_updates, expected)");
    };
    let (Some(cost_none), Some(cost_lock)) = (
        extra(none, "ns_per_increment"),
        extra(lock, "ns_per_increment"),
    ) else {
        return missing("counter figures (ns_per_increment)");
    };
    let loses = lost.min > 0.0;
    let fixed = lock_lost.max == 0.0;
    let costs = cheaper(cost_none, cost_lock);
    let v = if loses && fixed {
        costs
    } else {
        Verdict::DoesNotHold
    };
    let sync = lock.params.get("sync").cloned().unwrap_or_default();
    let mut s = format!(
        "unsynchronized: {:.0} of {:.0} updates lost ({:.1}%); {sync}: {:.0} lost; cost per \
         increment {} unsynchronized vs {} with {sync}",
        lost.median,
        expected.median,
        100.0 * lost.median / expected.median.max(1.0),
        lock_lost.max,
        range(cost_none, ns),
        range(cost_lock, ns),
    );
    if let Some(a) = d
        .mechanic("counter", &[("sync", "atomic")])
        .and_then(|a| extra(a, "ns_per_increment"))
    {
        s.push_str(&format!(", {} with an atomic add", range(a, ns)));
    }
    (v, s)
}

fn fault_isolation(d: &Data) -> (Verdict, String) {
    let faulted: Vec<&CellResult> = d
        .all_cells()
        .filter(|c| c.params.contains_key("fault"))
        .collect();
    if faulted.is_empty() {
        return missing("cells with an injected fault");
    }
    let fired: Vec<(&CellResult, &FaultOutcome)> = faulted
        .iter()
        .filter_map(|c| c.fault.as_ref().filter(|f| f.fired).map(|f| (*c, f)))
        .collect();
    if fired.is_empty() {
        return (
            Verdict::Inconclusive,
            format!(
                "{} fault cells, but in none did worker 0 reach its fault op inside the window: \
                 lower K or lengthen the window",
                faulted.len()
            ),
        );
    }
    // A crashing process: a process-unit cell whose worker crashed (not hung), with siblings.
    let crashed = |f: &FaultOutcome| f.kind != "hang";
    let procs: Vec<_> = fired
        .iter()
        .filter(|(c, f)| {
            c.unit == UnitKind::Process && crashed(f) && f.others_kept_running.is_some()
        })
        .collect();
    let siblings_ran = |f: &FaultOutcome| !f.process_lost && f.others_kept_running == Some(true);
    let p_verdict = if procs.is_empty() {
        Verdict::Inconclusive
    } else if procs.iter().all(|(_, f)| siblings_ran(f)) {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    // A crashing thread: a fatal signal (abort, segv, kill9) in a thread-unit cell.
    let fatal = |f: &FaultOutcome| matches!(f.kind.as_str(), "abort" | "segv" | "kill9");
    let threads: Vec<_> = fired
        .iter()
        .filter(|(c, f)| c.unit == UnitKind::Thread && fatal(f))
        .collect();
    let t_verdict = if threads.is_empty() {
        Verdict::Inconclusive
    } else if threads.iter().any(|(_, f)| f.process_lost) {
        Verdict::Holds
    } else {
        Verdict::DoesNotHold
    };
    let mut s = String::new();
    match procs
        .iter()
        .find(|(_, f)| f.kind == "kill9")
        .or(procs.first())
    {
        None => s.push_str("no process-model cell with a crashed worker and siblings; "),
        Some((c, f)) => {
            let sib = |pick: fn(&WorkerFaultView) -> f64| {
                f.workers
                    .iter()
                    .filter(|w| !w.failed)
                    .map(pick)
                    .sum::<f64>()
            };
            s.push_str(&format!(
                "{}: worker 0 died ({}) at op {}; siblings {} ({} → {} ops/s), {}, {:.0} ops lost; \
                 siblings kept running in {} of {} process cells",
                c.model,
                f.exit.as_deref().unwrap_or(&f.kind),
                f.at_op,
                if siblings_ran(f) {
                    "kept running"
                } else {
                    "stopped"
                },
                rate(sib(|w| w.ops_per_sec_before)),
                rate(sib(|w| w.ops_per_sec_after)),
                f.respawn_ns
                    .map(|n| format!("replaced after {}", ns(n as f64)))
                    .unwrap_or_else(|| "not replaced".into()),
                f.ops_lost,
                procs.iter().filter(|(_, f)| siblings_ran(f)).count(),
                procs.len(),
            ));
        }
    }
    if threads.is_empty() {
        s.push_str("; no thread-model cell with abort, segv or kill9");
    } else {
        let lost: Vec<_> = threads.iter().filter(|(_, f)| f.process_lost).collect();
        let before: u64 = lost.iter().map(|(_, f)| f.ops_before).sum();
        let kinds: std::collections::BTreeSet<&str> =
            threads.iter().map(|(_, f)| f.kind.as_str()).collect();
        s.push_str(&format!(
            "; threads ({}): the whole process died in {} of {} cells ({} ops counted before the \
             crashes, none after)",
            kinds.into_iter().collect::<Vec<_>>().join(", "),
            lost.len(),
            threads.len(),
            before,
        ));
    }
    let panics: Vec<_> = fired
        .iter()
        .filter(|(c, f)| c.unit == UnitKind::Thread && f.kind == "panic")
        .collect();
    if !panics.is_empty() {
        s.push_str(&format!(
            "; a panic lost only its thread in {} of {} thread cells (the process lived)",
            panics.iter().filter(|(_, f)| !f.process_lost).count(),
            panics.len()
        ));
    }
    (both(&[p_verdict, t_verdict]), s)
}
