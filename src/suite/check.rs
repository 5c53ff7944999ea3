//! Checks on a suite file's text and lists, beside those made while expanding it: turning the
//! TOML parser's errors into messages with the dotted key (`matrix[1].workerz`) and a "did
//! you mean" for a misspelt key, locating bad UTF-8, and refusing empty or repeated list
//! entries (a value listed twice would run the same cell twice).

use toml::{Spanned, Value};

use super::{Ctx, SuiteError, line_col};

/// A suite that is not UTF-8: the error names the line and column of the first bad byte.
pub(super) fn utf8_error(file: &str, bytes: &[u8], e: &std::str::Utf8Error) -> SuiteError {
    let good = &bytes[..e.valid_up_to()];
    let text = std::str::from_utf8(good).unwrap_or_default();
    let (line, column) = line_col(text, text.len());
    SuiteError {
        file: file.to_string(),
        line,
        column,
        key: "file".into(),
        message: format!(
            "byte 0x{:02x} is not UTF-8 text: save the suite as UTF-8",
            bytes.get(e.valid_up_to()).copied().unwrap_or(0)
        ),
    }
}

/// The TOML parser's (or serde's) error as a [`SuiteError`]: located at its span, keyed by
/// the table and key there, with the fix.
pub(super) fn toml_error(cx: &Ctx<'_>, e: &toml::de::Error) -> SuiteError {
    let span = e.span().unwrap_or(0..0);
    let msg = e.message().trim().to_string();
    let key = key_at(cx.text, span.start).unwrap_or_else(|| "syntax".into());
    cx.err(span, &key, fix_message(&msg))
}

/// The dotted key whose line holds byte `at`, prefixed by its `[[table]]` and index, best
/// effort: `matrix[1].workers`, `name`, `server[0]`.
pub(super) fn key_at(text: &str, at: usize) -> Option<String> {
    let (line, _) = line_col(text, at);
    let mut table: Option<String> = None;
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut key = None;
    for (i, l) in text.lines().enumerate().take(line) {
        let t = l.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim_matches([']', ' ']).to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = Some(name.trim().to_string());
        }
        if i + 1 == line {
            let k = t.split('=').next().unwrap_or("").trim();
            let is_header = t.starts_with('[');
            key = Some(if is_header || k.is_empty() || !t.contains('=') {
                None
            } else {
                Some(k.to_string())
            });
        }
    }
    let key = key.flatten().filter(|k| !k.is_empty() && k.len() < 60);
    let table = table.filter(|t| !t.is_empty() && !t.starts_with('[') && t.len() < 60);
    match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (Some(t), None) => Some(t),
        (None, k) => k,
    }
}

/// Adds the fix to serde's wording; for an unknown field, the nearest known one.
fn fix_message(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = msg
            .split_once("expected")
            .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
            .unwrap_or_default();
        let hint = crate::registry::did_you_mean(field, expected.iter().copied())
            .map(|k| format!("did you mean `{k}`? "))
            .unwrap_or_default();
        format!("{msg}: {hint}remove it or fix its spelling")
    } else if msg.starts_with("missing field") {
        format!("{msg}: add it (see workloads/README.md)")
    } else if msg.starts_with("invalid type") {
        format!("{msg}: see workloads/README.md for the form of each key")
    } else {
        msg.to_string()
    }
}

/// Refuses an empty list and a value listed twice in `v` (a lone value passes).
pub(super) fn list_ok(cx: &Ctx<'_>, v: &Spanned<Value>, key: &str) -> Result<(), SuiteError> {
    let Value::Array(a) = v.get_ref() else {
        return Ok(());
    };
    if a.is_empty() {
        return Err(cx.err(
            v.span(),
            key,
            "the list is empty: give at least one value, or remove the key for its default",
        ));
    }
    for (i, x) in a.iter().enumerate() {
        if a[..i].contains(x) {
            return Err(cx.err(
                v.span(),
                key,
                format!("{x} is listed twice: remove one (each cell would run twice)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_table() {
        let t = "name = \"x\"\n[[matrix]]\nworkload = 1\n[[matrix]]\nworkerz = 2\n[[server]]\n";
        assert_eq!(key_at(t, 0).as_deref(), Some("name"));
        let at = t.find("workerz").unwrap();
        assert_eq!(key_at(t, at).as_deref(), Some("matrix[1].workerz"));
        assert_eq!(key_at(t, t.len() - 2).as_deref(), Some("server[0]"));
        assert_eq!(key_at("[", 0), None, "an empty header has no key");
        assert_eq!(key_at("[[]]\n= 1", 5), None);
    }

    #[test]
    fn unknown_field_gets_a_suggestion() {
        let m = fix_message("unknown field `workerz`, expected one of `workload`, `workers`");
        assert!(m.contains("did you mean `workers`?"), "{m}");
        let m = fix_message("unknown field `zzzzzz`, expected one of `workload`, `workers`");
        assert!(!m.contains("did you mean"), "{m}");
    }
}
