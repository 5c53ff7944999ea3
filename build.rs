//! Build script: records which compiler and which git commit concbench was built from, so every
//! result can say so (`measure::machine`). It never fails the build: anything it cannot learn
//! becomes "unknown".
//!
//! Sets `CONCBENCH_RUSTC` (`$RUSTC --version`) and `CONCBENCH_COMMIT` (`git rev-parse
//! --short=12 HEAD`, plus `-dirty` when tracked files have uncommitted changes). Git paths come
//! from `git rev-parse --git-path`, because in a worktree `.git` is a file, not a folder.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));

    let rustc_path = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let rustc = run(Command::new(rustc_path).arg("--version")).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CONCBENCH_RUSTC={rustc}");

    let commit = git(&dir, &["rev-parse", "--short=12", "HEAD"])
        .map(|hash| {
            let dirty = git(&dir, &["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash}-dirty") } else { hash }
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CONCBENCH_COMMIT={commit}");

    // Rerun when the commit can change (HEAD moves, the branch ref moves, refs get packed, the
    // index changes) or the dirty flag can (tracked sources edited), not on every build.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=src");
    let mut watch = vec!["HEAD".to_string(), "index".into(), "packed-refs".into()];
    if let Some(head_ref) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(head_ref);
    }
    for name in watch {
        if let Some(p) = git(&dir, &["rev-parse", "--git-path", &name]) {
            let p = dir.join(p);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

/// Runs `git -C dir args…`; its trimmed stdout on success, `None` on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    run(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // Read-only: `git status` must not rewrite the index (that would retrigger this script).
        .env("GIT_OPTIONAL_LOCKS", "0"))
}

/// Runs a command; its trimmed stdout when it exits 0 and prints valid UTF-8, else `None`.
fn run(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?;
    Some(s.trim().replace(['\n', '\r'], " "))
}
