//! Looking entries up by id in the static registries (workloads, models, mechanics), with
//! one error wording: it names the unknown id and lists the known ones.

/// Finds the entry of `items` whose id is `id`; `what` names the kind in the error
/// ("workload" → "unknown workload `x`: known workloads are a, b").
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
        "unknown {what} `{id}`: known {what}s are {}",
        known.join(", ")
    ))
}
