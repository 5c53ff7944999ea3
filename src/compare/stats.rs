//! The statistics behind a verdict: medians, an exact Mann–Whitney rank test, and the rule
//! that turns a baseline's and a candidate's repeats into improved / regressed / unchanged /
//! noisy.
//!
//! # The rule
//!
//! `change = median(new) / median(base) − 1`. A change within the threshold is **unchanged**,
//! whatever the test says: the threshold is the smallest change worth failing a build over.
//! A change beyond it is **regressed** or **improved** only when the two sets of windows are
//! also separated, and **noisy** otherwise. "Separated" depends on what the repeats can show:
//!
//! - 4 or more windows on each side: a two-sided Mann–Whitney U test (exact permutation
//!   distribution, ties as half) at p < 0.05. With 4 vs 4 the smallest p is 2/70 ≈ 0.029.
//! - fewer: the ranges (min..max) must not overlap. Under the null hypothesis (both sides
//!   from one distribution, no ties) that happens by chance with probability 1/3 for 2 vs 2
//!   and 1/10 for 3 vs 3: weak evidence on its own, which is why the threshold must be passed
//!   as well. The evidence string says which test was used and its chance level.
//! - one value on a side and one on the other (or a figure with no per-window values): no
//!   spread is known, the verdict rests on the threshold alone and the evidence says so.

use serde::Serialize;

/// Which way is better for a figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Better {
    /// Throughput: a drop is a regression.
    Bigger,
    /// Time, latency: a rise is a regression.
    Smaller,
}

/// What a comparison concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The candidate failed an invariant (status not ok, no ops): always fails the gate.
    Failed,
    /// Worse beyond the threshold, and the windows are separated.
    Regressed,
    /// Better beyond the threshold, and the windows are separated.
    Improved,
    /// Beyond the threshold, but the windows overlap: cannot tell.
    Noisy,
    /// Within the threshold.
    Unchanged,
    /// In the baseline only.
    Missing,
    /// In the candidate only.
    New,
}

impl Verdict {
    /// The word used in tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Failed => "failed",
            Verdict::Regressed => "regressed",
            Verdict::Improved => "improved",
            Verdict::Noisy => "noisy",
            Verdict::Unchanged => "unchanged",
            Verdict::Missing => "missing",
            Verdict::New => "new",
        }
    }
}

/// Median of `v` (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    crate::report::result::Spread::of(v).median
}

/// Two-sided p-value of the Mann–Whitney U test of `a` against `b`. Exact (every split of the
/// pooled values enumerated) when there are at most 200 000 splits, else the normal
/// approximation with a tie correction.
pub fn mann_whitney_p(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return 1.0;
    }
    let pooled: Vec<f64> = a.iter().chain(b).copied().collect();
    let ranks = midranks(&pooled);
    let rank_sum_a: f64 = ranks[..n].iter().sum();
    let mean = n as f64 * (n + m + 1) as f64 / 2.0;
    let observed = (rank_sum_a - mean).abs();
    if binomial(n + m, n) <= 200_000.0 {
        // Every way to choose which n of the pooled ranks belong to `a`.
        let (mut extreme, mut total) = (0u64, 0u64);
        let mut idx: Vec<usize> = (0..n).collect();
        loop {
            let s: f64 = idx.iter().map(|&i| ranks[i]).sum();
            total += 1;
            if (s - mean).abs() >= observed - 1e-9 {
                extreme += 1;
            }
            // Next combination in lexicographic order.
            let mut i = n;
            while i > 0 && idx[i - 1] == i - 1 + (n + m) - n {
                i -= 1;
            }
            if i == 0 {
                break;
            }
            idx[i - 1] += 1;
            for j in i..n {
                idx[j] = idx[j - 1] + 1;
            }
        }
        return extreme as f64 / total as f64;
    }
    // Normal approximation with tie correction.
    let nn = (n + m) as f64;
    let mut sorted = pooled.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        tie_term += t * t * t - t;
        i = j;
    }
    let var = n as f64 * m as f64 / 12.0 * ((nn + 1.0) - tie_term / (nn * (nn - 1.0)));
    if var <= 0.0 {
        return 1.0;
    }
    let z = (observed - 0.5).max(0.0) / var.sqrt();
    (2.0 * (1.0 - normal_cdf(z))).min(1.0)
}

fn midranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&x, &y| v[x].total_cmp(&v[y]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j < order.len() && v[order[j]] == v[order[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0; // mean of ranks i+1..=j
        for &k in &order[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

fn binomial(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |acc, i| acc * (n - i) as f64 / (i + 1) as f64)
}

/// Standard normal CDF (Abramowitz–Stegun 7.1.26 erf, error < 1.5e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    let erf = if x >= 0.0 { y } else { -y };
    0.5 * (1.0 + erf)
}

/// A verdict with the change it rests on and a sentence saying how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// median(new) / median(base) − 1 (None when the baseline's median is 0).
    pub change: Option<f64>,
    /// Which test decided, with its figures.
    pub evidence: String,
}

/// Judges `new` against `base` (per-window values) with the rule in the module doc.
pub fn judge(base: &[f64], new: &[f64], better: Better, threshold: f64) -> Judgement {
    let (mb, mn) = (median(base), median(new));
    let change = (mb != 0.0).then(|| mn / mb - 1.0);
    let Some(c) = change else {
        let verdict = if mn == 0.0 {
            Verdict::Unchanged
        } else {
            Verdict::Noisy
        };
        return Judgement {
            verdict,
            change,
            evidence: "baseline median is 0: no relative change".into(),
        };
    };
    let worse = match better {
        Better::Bigger => c < 0.0,
        Better::Smaller => c > 0.0,
    };
    let (separated, evidence) = separation(base, new);
    let verdict = if c.abs() <= threshold {
        Verdict::Unchanged
    } else if !separated {
        Verdict::Noisy
    } else if worse {
        Verdict::Regressed
    } else {
        Verdict::Improved
    };
    Judgement {
        verdict,
        change,
        evidence,
    }
}

/// Whether the two sets of windows are separated, and the sentence that says by which test.
fn separation(base: &[f64], new: &[f64]) -> (bool, String) {
    let (n, m) = (base.len(), new.len());
    if n >= 4 && m >= 4 {
        let p = mann_whitney_p(base, new);
        return (p < 0.05, format!("rank test p={p:.3} ({n} vs {m} windows)"));
    }
    if n <= 1 && m <= 1 {
        return (true, "one value each: threshold only".into());
    }
    let (bmin, bmax) = min_max(base);
    let (nmin, nmax) = min_max(new);
    let disjoint = nmax < bmin || nmin > bmax;
    let chance = if n == m && n >= 2 {
        format!(", chance {:.2} if equal", 2.0 / binomial(2 * n, n))
    } else {
        String::new()
    };
    let word = if disjoint {
        "ranges disjoint"
    } else {
        "ranges overlap"
    };
    (disjoint, format!("{word} ({n} vs {m} windows{chance})"))
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Judges two point estimates with confidence intervals (criterion's estimates): separated
/// when the intervals do not overlap.
pub fn judge_intervals(
    base: (f64, f64, f64),
    new: (f64, f64, f64),
    better: Better,
    threshold: f64,
) -> Judgement {
    let ((pb, lb, ub), (pn, ln, un)) = (base, new);
    let change = (pb != 0.0).then(|| pn / pb - 1.0);
    let disjoint = ln > ub || un < lb;
    let evidence = format!(
        "95% intervals {}",
        if disjoint { "disjoint" } else { "overlap" }
    );
    let verdict = match change {
        None => Verdict::Noisy,
        Some(c) if c.abs() <= threshold => Verdict::Unchanged,
        Some(_) if !disjoint => Verdict::Noisy,
        Some(c) if (better == Better::Bigger) == (c < 0.0) => Verdict::Regressed,
        Some(_) => Verdict::Improved,
    };
    Judgement {
        verdict,
        change,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_rank_test_matches_known_values() {
        // Complete separation, 4 vs 4: 2 of 70 splits are as extreme.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0, 4.0], &[5.0, 6.0, 7.0, 8.0]);
        assert!((p - 2.0 / 70.0).abs() < 1e-12, "{p}");
        // 3 vs 3 separated: 2 of 20.
        let p = mann_whitney_p(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert!((p - 0.1).abs() < 1e-12, "{p}");
        // Identical samples: p = 1.
        assert_eq!(mann_whitney_p(&[1.0, 1.0, 1.0], &[1.0, 1.0, 1.0]), 1.0);
        // Interleaved: not significant.
        assert!(mann_whitney_p(&[1.0, 3.0, 5.0, 7.0], &[2.0, 4.0, 6.0, 8.0]) > 0.5);
    }

    #[test]
    fn normal_approximation_agrees_with_exact_on_large_separated_samples() {
        let a: Vec<f64> = (0..30).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..30).map(|i| 100.0 + i as f64).collect();
        assert!(mann_whitney_p(&a, &b) < 1e-6);
        let c: Vec<f64> = (0..30).map(|i| i as f64 + 0.5).collect();
        assert!(mann_whitney_p(&a, &c) > 0.5);
        assert!((normal_cdf(1.959_964) - 0.975).abs() < 1e-6);
    }

    #[test]
    fn verdicts_follow_threshold_and_separation() {
        let base = [100.0, 101.0];
        // 20% drop, disjoint: regressed for throughput, improved for time.
        let cut = [80.0, 80.8];
        assert_eq!(
            judge(&base, &cut, Better::Bigger, 0.05).verdict,
            Verdict::Regressed
        );
        assert_eq!(
            judge(&base, &cut, Better::Smaller, 0.05).verdict,
            Verdict::Improved
        );
        // 3% drop: unchanged however separated.
        let small = [97.0, 97.5];
        assert_eq!(
            judge(&base, &small, Better::Bigger, 0.05).verdict,
            Verdict::Unchanged
        );
        // Beyond the threshold but overlapping: noisy.
        let wide = [60.0, 100.5];
        let j = judge(&base, &wide, Better::Bigger, 0.05);
        assert_eq!(j.verdict, Verdict::Noisy, "{j:?}");
        assert!(j.evidence.contains("overlap"), "{}", j.evidence);
        // Many windows: the rank test decides.
        let b8 = [100.0, 99.0, 101.0, 100.5, 99.5, 100.2];
        let n8 = [90.0, 89.0, 91.0, 90.5, 89.5, 90.2];
        let j = judge(&b8, &n8, Better::Bigger, 0.05);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert!(j.evidence.starts_with("rank test"), "{}", j.evidence);
        // One value each: threshold only.
        let j = judge(&[100.0], &[120.0], Better::Smaller, 0.05);
        assert_eq!(j.verdict, Verdict::Regressed);
        assert!(j.evidence.contains("threshold only"));
    }

    #[test]
    fn interval_rule() {
        let b = (100.0, 98.0, 102.0);
        assert_eq!(
            judge_intervals(b, (130.0, 128.0, 132.0), Better::Smaller, 0.05).verdict,
            Verdict::Regressed
        );
        assert_eq!(
            judge_intervals(b, (130.0, 90.0, 170.0), Better::Smaller, 0.05).verdict,
            Verdict::Noisy
        );
        assert_eq!(
            judge_intervals(b, (101.0, 99.0, 103.0), Better::Smaller, 0.05).verdict,
            Verdict::Unchanged
        );
        assert_eq!(
            judge_intervals(b, (70.0, 69.0, 71.0), Better::Smaller, 0.05).verdict,
            Verdict::Improved
        );
    }
}
