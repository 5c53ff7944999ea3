//! "What this shows": one or two sentences under each chart, computed from the cells of the
//! chart's group (never written in advance), per results file. They name the cells they
//! compare and give the numbers, so a reader can check them against the table below.

use super::cells::Line;
use super::chart::small;
use super::result::CellResult;
use super::table::{mib, ns, si};

fn who(c: &CellResult) -> String {
    format!("{} w{}", c.model, c.workers)
}

/// The lines of file `f`.
fn of_file<'a, 'b>(lines: &'b [Line<'a>], f: usize) -> Vec<&'b Line<'a>> {
    lines.iter().filter(|l| l.file == f).collect()
}

/// Runs `say` for each file and prefixes its sentence with the file's label when there are
/// several files.
fn per_file(
    lines: &[Line],
    labels: &[&str],
    say: &dyn Fn(&[&Line], usize) -> Option<String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (f, label) in labels.iter().enumerate() {
        let ls = of_file(lines, f);
        let text = if ls.is_empty() {
            Some("not measured in this file.".to_string())
        } else {
            say(&ls, f)
        };
        if let Some(t) = text {
            out.push(if labels.len() > 1 {
                format!("{label}: {t}")
            } else {
                capitalise(&t)
            });
        }
    }
    out
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn cells<'a>(ls: &[&Line<'a>]) -> Vec<&'a CellResult> {
    ls.iter().flat_map(|l| l.cells.iter().copied()).collect()
}

fn best<'a>(l: &Line<'a>) -> &'a CellResult {
    l.cells
        .iter()
        .copied()
        .max_by(|a, b| a.ops_per_sec.median.total_cmp(&b.ops_per_sec.median))
        .expect("a line has at least one cell")
}

/// Throughput: the fastest cell, every model's best against the event loop's (or the slowest
/// model's) best, and how each model scaled from its fewest to its most workers.
pub fn throughput(lines: &[Line], labels: &[&str], cores: &[usize]) -> Vec<String> {
    per_file(lines, labels, &|ls, f| {
        let mut s = Vec::new();
        let all = cells(ls);
        let top = all
            .iter()
            .copied()
            .max_by(|a, b| a.ops_per_sec.median.total_cmp(&b.ops_per_sec.median))?;
        s.push(format!(
            "fastest: {} at {} ops/s",
            who(top),
            si(top.ops_per_sec.median)
        ));
        if ls.len() > 1 {
            let reference = ls
                .iter()
                .find(|l| l.model == "event-loop")
                .copied()
                .unwrap_or_else(|| {
                    ls.iter()
                        .copied()
                        .min_by(|a, b| {
                            best(a)
                                .ops_per_sec
                                .median
                                .total_cmp(&best(b).ops_per_sec.median)
                        })
                        .expect("at least two lines")
                });
            let r = best(reference);
            let ratios: Vec<String> = ls
                .iter()
                .filter(|l| l.model != reference.model)
                .map(|l| {
                    let b = best(l);
                    format!(
                        "{} {:.2}× (w{})",
                        l.model,
                        b.ops_per_sec.median / r.ops_per_sec.median,
                        b.workers
                    )
                })
                .collect();
            s.push(format!(
                "each model's best against {}'s ({} ops/s at w{}) on {} cores: {}",
                reference.model,
                si(r.ops_per_sec.median),
                r.workers,
                cores[f],
                ratios.join(", ")
            ));
            let mut sorted = all.clone();
            sorted.sort_by(|a, b| b.ops_per_sec.median.total_cmp(&a.ops_per_sec.median));
            if let [a, b, ..] = sorted[..]
                && b.ops_per_sec.max >= a.ops_per_sec.min
            {
                s.push(format!(
                    "the ranges of the two fastest ({} and {}) overlap, so their order is within noise",
                    who(a),
                    who(b)
                ));
            }
        }
        let scaling: Vec<String> = ls
            .iter()
            .filter(|l| l.cells.len() > 1)
            .map(|l| {
                let (a, b) = (l.cells[0], l.cells[l.cells.len() - 1]);
                let gain = b.ops_per_sec.median / a.ops_per_sec.median;
                let linear = b.workers as f64 / a.workers as f64;
                format!(
                    "{} w{}→w{} {:.2}× ({:.0}% of linear)",
                    l.model,
                    a.workers,
                    b.workers,
                    gain,
                    gain / linear * 100.0
                )
            })
            .collect();
        if !scaling.is_empty() {
            s.push(format!("scaling: {}", scaling.join(", ")));
        }
        Some(s.join("; ") + ".")
    })
}

/// Latency: the spread of p99 over the cells and the longest tail.
pub fn latency(lines: &[Line], labels: &[&str]) -> Vec<String> {
    per_file(lines, labels, &|ls, _| {
        let all = cells(ls);
        let lo = all.iter().copied().min_by_key(|c| c.latency_ns.p99)?;
        let hi = all.iter().copied().max_by_key(|c| c.latency_ns.p99)?;
        let mut s = Vec::new();
        if all.len() == 1 {
            s.push(format!(
                "{}: p50 {}, p99 {}, p99.9 {}",
                who(lo),
                ns(lo.latency_ns.p50 as f64),
                ns(lo.latency_ns.p99 as f64),
                ns(lo.latency_ns.p999 as f64)
            ));
        } else {
            s.push(format!(
                "the p99 goes from {} ({}) to {} ({}), {:.1}× apart",
                ns(lo.latency_ns.p99 as f64),
                who(lo),
                ns(hi.latency_ns.p99 as f64),
                who(hi),
                hi.latency_ns.p99 as f64 / lo.latency_ns.p99.max(1) as f64
            ));
        }
        let tail = |c: &&CellResult| c.latency_ns.p999 as f64 / c.latency_ns.p50.max(1) as f64;
        let t = all.iter().max_by(|a, b| tail(a).total_cmp(&tail(b)))?;
        s.push(format!(
            "longest tail: {}, whose p99.9 is {:.1}× its p50",
            who(t),
            tail(t)
        ));
        Some(s.join("; ") + ".")
    })
}

/// Context switches: the range of voluntary switches per op, and the most preempted cell.
pub fn switches(lines: &[Line], labels: &[&str], cores: &[usize]) -> Vec<String> {
    per_file(lines, labels, &|ls, f| {
        let all = cells(ls);
        let vol = |c: &&CellResult| c.ctx_switches_per_op.voluntary;
        let inv = |c: &&CellResult| c.ctx_switches_per_op.involuntary;
        let lo = all.iter().min_by(|a, b| vol(a).total_cmp(&vol(b)))?;
        let hi = all.iter().max_by(|a, b| vol(a).total_cmp(&vol(b)))?;
        let mut s = vec![if vol(hi) == vol(lo) {
            format!(
                "{} voluntary switches (blocking) per op in every cell",
                small(vol(lo))
            )
        } else {
            format!(
                "voluntary switches (blocking) per op from {} ({}) to {} ({})",
                small(vol(lo)),
                who(lo),
                small(vol(hi)),
                who(hi)
            )
        }];
        let p = all.iter().max_by(|a, b| inv(a).total_cmp(&inv(b)))?;
        if inv(p) > 0.0 {
            let over = if p.workers > cores[f] {
                format!(", with {} workers on {} cores", p.workers, cores[f])
            } else {
                String::new()
            };
            s.push(format!(
                "most preempted: {} at {} involuntary switches per op{over}",
                who(p),
                small(inv(p))
            ));
        } else {
            s.push("no cell was preempted".into());
        }
        Some(s.join("; ") + ".")
    })
}

/// CPU per op: its range over the cells and the largest kernel share.
pub fn cpu(lines: &[Line], labels: &[&str]) -> Vec<String> {
    per_file(lines, labels, &|ls, _| {
        let all = cells(ls);
        let total = |c: &&CellResult| c.cpu_ns_per_op.user + c.cpu_ns_per_op.sys;
        let lo = all.iter().min_by(|a, b| total(a).total_cmp(&total(b)))?;
        let hi = all.iter().max_by(|a, b| total(a).total_cmp(&total(b)))?;
        let share = |c: &&CellResult| {
            if total(c) > 0.0 {
                c.cpu_ns_per_op.sys / total(c)
            } else {
                0.0
            }
        };
        let k = all.iter().max_by(|a, b| share(a).total_cmp(&share(b)))?;
        let kernel = if share(k) < 0.01 {
            "kernel time is under 1% of the CPU in every cell".to_string()
        } else {
            format!(
                "the largest kernel share is {}'s, {:.0}% of its CPU",
                who(k),
                share(k) * 100.0
            )
        };
        Some(format!(
            "CPU per op from {} ({}) to {} ({}); {kernel}.",
            ns(total(lo)),
            who(lo),
            ns(total(hi)),
            who(hi),
        ))
    })
}

/// Memory: the range of PSS per worker and how much RSS overstates a process cell.
pub fn memory(lines: &[Line], labels: &[&str]) -> Vec<String> {
    per_file(lines, labels, &|ls, _| {
        let all = cells(ls);
        let lo = all.iter().min_by_key(|c| c.pss_per_worker_bytes)?;
        let hi = all.iter().max_by_key(|c| c.pss_per_worker_bytes)?;
        let mut s = vec![format!(
            "PSS per worker from {} ({}) to {} ({})",
            mib(lo.pss_per_worker_bytes),
            who(lo),
            mib(hi.pss_per_worker_bytes),
            who(hi)
        )];
        let ratio =
            |c: &&CellResult| c.rss_per_worker_bytes as f64 / c.pss_per_worker_bytes.max(1) as f64;
        if let Some(r) = all
            .iter()
            .filter(|c| c.pss_per_worker_bytes > 0)
            .max_by(|a, b| ratio(a).total_cmp(&ratio(b)))
            && ratio(r) > 1.0
        {
            s.push(format!(
                "RSS counts shared pages in full: {}'s RSS per worker is {:.1}× its PSS",
                who(r),
                ratio(r)
            ));
        }
        Some(s.join("; ") + ".")
    })
}
