//! `concbench report`: report.md is snapshot-tested from fixed results files (one from a real
//! `workloads/quick.toml` run, one from `workloads/lecture.toml`, and both side by side);
//! report.html is checked for structure (one `<svg>` per declared chart, their titles, nothing
//! fetched from outside); bad input exits 2; a fresh real run reports too. The browser test is
//! in tests/report_browser.rs.
//!
//! Snapshots live in tests/snapshots/ and are compared exactly; `UPDATE_SNAPSHOTS=1` rewrites
//! them (review the diff before committing).

mod common;

use std::path::{Path, PathBuf};

use common::*;

const QUICK: &str = "tests/fixtures/quick-results.json";
const LECTURE: &str = "tests/fixtures/lecture-results.json";

/// Compares `actual` with tests/snapshots/`name`, or rewrites it under UPDATE_SNAPSHOTS=1.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_SNAPSHOTS=1 cargo nextest run --release --test report",
            path.display()
        )
    });
    if expected != actual {
        let new = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.new"));
        std::fs::write(&new, actual).unwrap();
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output (first at line {}):\n  expected: {:?}\n  actual:   {:?}\n\
             the output is in {}; if the change is intended, rerun with UPDATE_SNAPSHOTS=1",
            path.display(),
            line + 1,
            expected.lines().nth(line).unwrap_or(""),
            actual.lines().nth(line).unwrap_or(""),
            new.display()
        );
    }
}

/// Runs `concbench report FILES --out <temp>`; returns the temp dir, report.md and report.html.
fn report(files: &[&str]) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let mut args = vec!["report"];
    args.extend_from_slice(files);
    args.extend(["--out", out.to_str().unwrap()]);
    let o = run(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("({} bytes)", md.len()))
            && stdout.contains(&format!("{} bytes,", html.len())),
        "{stdout}"
    );
    // Atomic writes leave no temp files behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    (dir, md, html)
}

/// The value of attribute `name` in the first `tag` element of `html`.
fn attr(html: &str, tag: &str, name: &str) -> Option<String> {
    let start = html.find(&format!("<{tag} "))?;
    let end = start + html[start..].find('>')?;
    let el = &html[start..end];
    let at = el.find(&format!("{name}=\""))? + name.len() + 2;
    Some(el[at..at + el[at..].find('"')?].to_string())
}

/// The `data-title` of every chart figure, in order.
fn chart_titles(html: &str) -> Vec<String> {
    html.split("<figure class=\"chart\" data-title=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

/// Checks the page's structure and returns its chart titles.
fn check_html(html: &str) -> Vec<String> {
    let titles = chart_titles(html);
    let declared: usize = attr(html, "body", "data-charts").unwrap().parse().unwrap();
    assert_eq!(declared, titles.len());
    assert!(declared > 0);
    // One inline SVG per chart, each with its title, lines and axis labels.
    let figures: Vec<&str> = html.split("<figure class=\"chart\"").skip(1).collect();
    for (f, title) in figures.iter().zip(&titles) {
        let f = &f[..f.find("</figure>").unwrap()];
        assert_eq!(f.matches("<svg").count(), 1, "{title}");
        assert!(f.contains(&format!("\n{title}\n")), "{title} not drawn");
        assert!(f.contains("<polyline"), "{title} has no line");
        assert!(f.contains("What this shows:"), "{title} has no caption");
    }
    assert_eq!(html.matches("<svg").count(), declared);
    // Self-contained: nothing is fetched (the SVG namespace is a name, not a fetch).
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for bad in [
        "http://", "https://", "<link", "<img", "src=", "@import", "url(", "//cdn",
    ] {
        assert!(!without_ns.contains(bad), "report.html contains {bad:?}");
    }
    assert_eq!(html.matches("<script>").count(), 1);
    titles
}

#[test]
fn quick_report_matches_snapshots() {
    let (_d, md, html) = report(&[QUICK]);
    snapshot("report-quick.md", &md);
    let titles = check_html(&html);
    // Two workloads × five charts.
    assert_eq!(titles.len(), 10, "{titles:?}");
    snapshot("report-quick.charts.txt", &(titles.join("\n") + "\n"));
    // Every "what this shows" line of the HTML is in the Markdown too.
    let shows_md = md.matches("**What this shows:**").count();
    assert_eq!(shows_md, html.matches("<b>What this shows:</b>").count());
    assert!(shows_md >= 10);
    // Markdown tables are well formed: every row of a table has the header's column count.
    let mut cols = None;
    for line in md.lines() {
        if line.starts_with('|') {
            let n = line.matches('|').count() - line.matches("\\|").count();
            match cols {
                None => cols = Some(n),
                Some(c) => assert_eq!(c, n, "ragged table row: {line}"),
            }
        } else {
            cols = None;
        }
    }
}

#[test]
fn lecture_report_matches_snapshots() {
    let (_d, md, html) = report(&[LECTURE]);
    snapshot("report-lecture.md", &md);
    let titles = check_html(&html);
    snapshot("report-lecture.charts.txt", &(titles.join("\n") + "\n"));
    // Mechanics tables and the claims with a verdict each.
    for m in ["spawn", "pingpong", "ipc", "counter", "cow"] {
        assert!(md.contains(&format!("### Mechanic: {m}")), "{m}");
    }
    let verdicts = md.matches("| **holds** |").count()
        + md.matches("| **does not hold here** |").count()
        + md.matches("| **inconclusive** |").count();
    assert_eq!(verdicts, 8);
    assert_eq!(html.matches("class=\"verdict-").count(), 8);
}

#[test]
fn two_files_side_by_side() {
    let (_d, md, html) = report(&[LECTURE, QUICK]);
    snapshot("report-both.md", &md);
    let titles = check_html(&html);
    // The groups of both files: spin 10us and sleep 10ms are shared, spin 100us is lecture's.
    assert_eq!(titles.len(), 15, "{titles:?}");
    // Series and rows carry each file's label.
    for label in ["lecture 34516dc*", "quick e54290f"] {
        assert!(md.contains(&format!("| {label} |")), "{label}");
        assert!(html.contains(&format!("\n{label}\n")) || html.contains(label));
    }
    // Claims per file.
    assert_eq!(html.matches("class=\"verdict-").count(), 16);
}

#[test]
fn unreadable_or_invalid_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let out = out.to_str().unwrap();
    let o = run(&["report", "Cargo.toml", "--out", out]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Cargo.toml") && err.contains("not valid JSON"),
        "{err}"
    );
    let o = run(&["report", QUICK, "no/such.json", "--out", out]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no/such.json"), "{err}");
    // JSON that is not results.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"schema_version\": 1}").unwrap();
    let o = run(&["report", bad.to_str().unwrap(), "--out", out]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match the schema"));
    // Nothing was written.
    assert!(!Path::new(out).exists());
    // No file at all is a usage error.
    let o = run(&["report", "--out", out]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn reports_a_fresh_run() {
    let (dir, suite) = suite(
        r#"
name = "fresh"
description = "report from a fresh run"
warmup = "10ms"
duration = "50ms"
repeats = 1

[[matrix]]
workload = "spin"
params = { op_time = "10us" }
models = ["event-loop", "threads", "processes"]
workers = [1, 2]
tasks = 2
"#,
    );
    let (o, r) = run_suite(dir.path(), &suite, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(r.cells.len(), 5);
    let results: PathBuf = dir.path().join("out/results.json");
    let (_d, md, html) = report(&[results.to_str().unwrap()]);
    assert_eq!(check_html(&html).len(), 5);
    assert!(md.contains("## Workload: spin (op_time=10us)"));
    assert_eq!(md.matches("**What this shows:**").count(), 5);
    assert!(
        md.contains("each model's best against event-loop's"),
        "{md}"
    );
}

/// Writes `r` as a results file in `dir` and returns its path.
fn write_results(dir: &Path, name: &str, r: &concbench::report::result::Results) -> String {
    let p = dir.join(name);
    concbench::report::json::write_atomic(r, &p).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn throughput_line_gives_each_models_ratio_to_the_loop() {
    // The ratios are recomputed here from the fixture, not copied from the report.
    let r = concbench::report::json::read(Path::new(LECTURE)).unwrap();
    let spin = |model: &str| {
        r.cells
            .iter()
            .find(|c| {
                c.workload == "spin"
                    && c.params.get("op_time").map(String::as_str) == Some("10us")
                    && c.model == model
            })
            .unwrap()
    };
    let lp = spin("event-loop").ops_per_sec.median;
    let expected = format!(
        "threads {:.2}× (w{}), processes {:.2}× (w{})",
        spin("threads").ops_per_sec.median / lp,
        spin("threads").workers,
        spin("processes").ops_per_sec.median / lp,
        spin("processes").workers
    );
    let (_d, md, _) = report(&[LECTURE]);
    assert!(md.contains(&expected), "{expected} not in:\n{md}");
}

#[test]
fn failed_cells_and_servers_are_reported() {
    use concbench::report::result::{ServerResult, Spread, Status};
    let dir = tempfile::tempdir().unwrap();
    let mut r = concbench::report::json::read(Path::new(QUICK)).unwrap();
    // One failed cell: shown as failed with its error, left out of the charts.
    let failed = r
        .cells
        .iter_mut()
        .find(|c| c.model == "processes" && c.workers == 64)
        .unwrap();
    failed.status = Status::Failed;
    failed.error = Some("worker 3 died of SIGSEGV".into());
    // One server cell.
    r.servers.push(ServerResult {
        id: "server/prefork/w2/c8/none/closed".into(),
        arch: "prefork".into(),
        workers: 2,
        connections: 8,
        handler: "none".into(),
        load: concbench::model::Load::Closed,
        status: Status::Ok,
        error: None,
        repeats_done: 1,
        requests_per_sec: Spread {
            median: 12345.0,
            min: 12000.0,
            max: 12500.0,
        },
        latency_ns: Default::default(),
        latency_uncorrected_ns: Default::default(),
        errors: 0,
        ctx_switches_per_request: Default::default(),
        cpu_ns_per_request: 1500.0,
        per_worker_requests: vec![6000, 6345],
        balance: 0.95,
        server_processes: 3,
        server_threads: 3,
        rss_bytes: 8 << 20,
        pss_bytes: 4 << 20,
        generator_cpu: 0.5,
        warnings: vec!["the generator may be the bottleneck".into()],
        samples: Vec::new(),
    });
    let f = write_results(dir.path(), "r.json", &r);
    let (_d, md, html) = report(&[&f]);
    assert!(md.contains("| processes | 64 | 64 | failed |"), "{md}");
    assert!(
        md.contains("- processes w64: worker 3 died of SIGSEGV"),
        "{md}"
    );
    assert!(md.contains("## Servers"));
    assert!(
        md.contains("| prefork | 2 | 8 | none | closed | 12.35k | 12.00k..12.50k |"),
        "{md}"
    );
    assert!(md.contains("the generator may be the bottleneck"));
    // The failed cell is in no chart: the sleep throughput chart has no w64 processes point.
    check_html(&html);
    assert!(md.contains("processes 0.04× (w2)"), "{md}");
}
