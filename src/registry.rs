//! Looking entries up by id in the static registries (workloads, models, mechanics), with
//! one error wording: it names the unknown id, suggests the nearest known one when a known id
//! is close (a typo), and lists the known ones.

/// Finds the entry of `items` whose id is `id`; `what` names the kind in the error
/// ("workload" → "unknown workload `x`: did you mean `y`? known workloads are a, b").
pub fn find<T: Copy>(
    items: impl IntoIterator<Item = T>,
    id_of: impl Fn(T) -> &'static str,
    what: &str,
    id: &str,
) -> Result<T, String> {
    let mut known = Vec::new();
    for item in items {
        if id_of(item) == id {
            return Ok(item);
        }
        known.push(id_of(item));
    }
    Err(format!(
        "unknown {what} `{id}`: {}known {what}s are {}",
        did_you_mean(id, known.iter().copied())
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default(),
        known.join(", ")
    ))
}

/// The candidate nearest to `word` when it is near enough to be a typo of it (normalised
/// Damerau-Levenshtein similarity at least 0.7, or one contains the other, case aside);
/// `None` when nothing is close.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let w = word.to_ascii_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for c in candidates {
        let lc = c.to_ascii_lowercase();
        let mut score = strsim::normalized_damerau_levenshtein(&w, &lc);
        if w.len() >= 3 && (lc.contains(&w) || w.contains(&lc)) {
            score = score.max(0.7);
        }
        if score >= 0.7 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_ids_only() {
        let ids = ["event-loop", "threads", "processes"];
        assert_eq!(did_you_mean("thread", ids), Some("threads"));
        assert_eq!(did_you_mean("proceses", ids), Some("processes"));
        assert_eq!(did_you_mean("EVENT-LOOP", ids), Some("event-loop"));
        assert_eq!(did_you_mean("quantum", ids), None);
        let e = find(ids, |s| s, "model", "threds").unwrap_err();
        assert!(e.contains("did you mean `threads`?"), "{e}");
        assert!(
            e.contains("known models are event-loop, threads, processes"),
            "{e}"
        );
        let e = find(ids, |s| s, "model", "zzz").unwrap_err();
        assert!(!e.contains("did you mean"), "{e}");
    }
}
