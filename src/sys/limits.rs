//! Resource limits, said plainly: when a run hits the open-file limit, the process limit or a
//! full disk, the error names the limit (with its current value) and how to raise it, instead
//! of a bare "Too many open files (os error 24)".
//!
//! [`explain`] appends such a hint to any error message that carries one of those OS errors,
//! wherever it came from (a worker building its tasks, the downstream server, a fork, a
//! write); [`raise_nofile`] lifts the soft open-file limit toward the hard one before a run.

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};

fn show(v: u64) -> String {
    if v == RLIM_INFINITY {
        "unlimited".into()
    } else {
        v.to_string()
    }
}

/// The soft and hard RLIMIT_NOFILE of this process.
pub fn nofile() -> (u64, u64) {
    getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((RLIM_INFINITY, RLIM_INFINITY))
}

/// Raises the soft RLIMIT_NOFILE toward `want` (at most the hard limit). Returns
/// `Some((old, new))` when it raised it, `None` when it was already enough or could not.
pub fn raise_nofile(want: u64) -> Option<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= want || soft >= hard {
        return None;
    }
    let target = want.min(hard);
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).ok()?;
    Some((soft, target))
}

/// Makes sure `need` file descriptors can be open at once for `what` (e.g. "--connections
/// 5000"): raises the soft RLIMIT_NOFILE up to the hard limit if it must (and says so in the
/// returned note), or returns an error naming the limit and the fix when even the hard limit
/// is too low.
pub fn ensure_nofile(need: u64, what: &str) -> Result<Option<String>, String> {
    let (soft, hard) = nofile();
    if need <= soft {
        return Ok(None);
    }
    if need > hard {
        return Err(format!(
            "{what} needs about {need} open files, more than this process's hard open-file \
             limit RLIMIT_NOFILE ({}): raise it (as root: `ulimit -Hn {need}` or \
             `prlimit --nofile={need}:{need}`) or ask for fewer",
            show(hard)
        ));
    }
    match raise_nofile(need) {
        Some((old, new)) => Ok(Some(format!(
            "raised the soft open-file limit RLIMIT_NOFILE from {} to {} for {what}",
            show(old),
            show(new)
        ))),
        None => Err(format!(
            "{what} needs about {need} open files and the soft limit RLIMIT_NOFILE ({}) could \
             not be raised: raise it with `ulimit -n {need}`",
            show(soft)
        )),
    }
}

/// The hint for an error message that carries a resource-limit OS error, if it does.
pub fn hint(msg: &str) -> Option<String> {
    let has = |code: i32| msg.contains(&format!("(os error {code})"));
    if has(libc::EMFILE) {
        let (soft, hard) = nofile();
        return Some(format!(
            "the per-process open-file limit RLIMIT_NOFILE (soft {}, hard {}) was reached: \
             raise it (`ulimit -n {}` in the shell, or `prlimit --nofile=N:N`), or use fewer \
             tasks, workers or connections",
            show(soft),
            show(hard),
            show(hard)
        ));
    }
    if has(libc::ENFILE) {
        return Some(
            "the system-wide open-file table is full (fs.file-max): close other programs or \
             raise it (`sysctl fs.file-max`)"
                .into(),
        );
    }
    if has(libc::EAGAIN) && (msg.contains("thread") || msg.contains("fork")) {
        let (soft, _) = getrlimit(Resource::RLIMIT_NPROC).unwrap_or((RLIM_INFINITY, 0));
        return Some(format!(
            "no new thread or process could be created: the process/thread limit was reached \
             (RLIMIT_NPROC soft {} for this user, the pids cgroup's pids.max, or \
             kernel.threads-max): raise it (`ulimit -u`, `prlimit --nproc`) or use fewer workers",
            show(soft)
        ));
    }
    if has(libc::ENOSPC) || has(libc::EDQUOT) {
        return Some(
            "the disk (or quota) is full: free space, or write elsewhere (`--out DIR`); files \
             written before are intact (every write is a temp file + rename)"
                .into(),
        );
    }
    None
}

/// Prints `context: e` with its [`hint`] to stderr, at most once every 5 s per process (a
/// server out of descriptors would otherwise log every failed `accept`).
pub fn warn_throttled(context: &str, e: &std::io::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST.load(Ordering::Relaxed);
    if last != 0 && now < last + 5 {
        return;
    }
    if LAST
        .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        eprintln!(
            "concbench serve: {} (new connections wait in the backlog; repeated at most every 5 s)",
            explain(format!("{context}: {e}"))
        );
    }
}

/// `msg`, with the [`hint`] appended when it has one (and does not already carry it).
pub fn explain(msg: String) -> String {
    match hint(&msg) {
        Some(h) if !msg.contains(&h) => format!("{msg}: {h}"),
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_limit_and_the_fix() {
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        let m = explain(format!("connect: {e}"));
        assert!(
            m.contains("RLIMIT_NOFILE") && m.contains("ulimit -n"),
            "{m}"
        );
        let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
        let m = explain(format!("writing results.json: {e}"));
        assert!(m.contains("disk") && m.contains("--out"), "{m}");
        let e = std::io::Error::from_raw_os_error(libc::EAGAIN);
        assert!(explain(format!("spawning thread: {e}")).contains("RLIMIT_NPROC"));
        // Nothing to add to other errors, and nothing twice.
        assert_eq!(explain("bad result".into()), "bad result");
        let once = explain(format!(
            "x: {}",
            std::io::Error::from_raw_os_error(libc::EMFILE)
        ));
        assert_eq!(explain(once.clone()), once);
    }

    #[test]
    fn raising_stops_at_the_hard_limit() {
        let (soft, hard) = nofile();
        match raise_nofile(soft.saturating_add(1)) {
            Some((old, new)) => assert!(old == soft && new > soft && new <= hard),
            None => assert!(soft >= hard),
        }
    }
}
