//! report.html opens in a real browser: Debian's headless Chromium renders the report of a real
//! `workloads/quick.toml` run (tests/fixtures/quick-results.json). The page's own script
//! counts the charts whose SVG laid out a non-empty box with lines and text in it; the test
//! reads that count back from the DOM and compares it with the charts the page declares. A
//! screenshot is taken and must not be blank; it is kept in the target dir for a human to look
//! at.
//!
//! Needs the Debian package `chromium`: without it the test FAILS (it does not skip). Chromium
//! runs in its own process group with a fresh profile, no network services, and a bounded
//! time; the group is killed by id when it ends or hangs, and no child survives the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const QUICK: &str = "tests/fixtures/quick-results.json";
const TIMEOUT: Duration = Duration::from_secs(120);

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "chromium not found on PATH: install the Debian package chromium \
         (apt-get install chromium) to run the report's browser test"
    );
}

/// Runs headless Chromium with `args` on `page`; returns its stdout. Kills its process group
/// on timeout and after it exits (helpers it left behind), by the group's id.
fn run_chromium(profile: &Path, page: &Path, args: &[&str], out: &Path) -> String {
    let stdout = std::fs::File::create(out.join("stdout")).unwrap();
    let stderr = std::fs::File::create(out.join("stderr")).unwrap();
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-breakpad",
        "--disable-crash-reporter",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .stdout(stdout)
    .stderr(stderr);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().expect("chromium starts");
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > TIMEOUT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // End whatever is left of the group we started (both on timeout and after an exit).
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
    let err = std::fs::read_to_string(out.join("stderr")).unwrap_or_default();
    let status = status.unwrap_or_else(|| {
        panic!("chromium did not finish within {TIMEOUT:?} and was killed; stderr:\n{err}")
    });
    assert!(
        status.success(),
        "chromium failed ({status}); stderr:\n{err}"
    );
    std::fs::read_to_string(out.join("stdout")).unwrap()
}

/// The value of attribute `name` of the `<body>` element.
fn body_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body ")?;
    let el = &dom[start..start + dom[start..].find('>')?];
    let at = el.find(&format!("{name}=\""))? + name.len() + 2;
    Some(el[at..at + el[at..].find('"')?].to_string())
}

#[test]
fn every_chart_renders_in_headless_chromium() {
    become_subreaper();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let o = run(&["report", QUICK, "--out", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    let declared: usize = body_attr(&html, "data-charts").unwrap().parse().unwrap();
    assert_eq!(declared, html.matches("<figure class=\"chart\"").count());
    assert_eq!(declared, 10);

    // 1. The DOM after the page's script ran: every declared chart rendered.
    let dom = run_chromium(
        &dir.path().join("profile-dom"),
        &page,
        &["--dump-dom"],
        dir.path(),
    );
    let rendered = body_attr(&dom, "data-charts-rendered")
        .unwrap_or_else(|| panic!("no data-charts-rendered in the DOM:\n{dom:.2000}"));
    assert_eq!(
        rendered,
        declared.to_string(),
        "charts rendered vs declared"
    );
    assert_eq!(dom.matches("data-rendered=\"yes\"").count(), declared);
    assert_eq!(dom.matches("data-rendered=\"no\"").count(), 0);

    // 2. A screenshot: a real picture, not a blank page.
    let shot = dir.path().join("report.png");
    run_chromium(
        &dir.path().join("profile-shot"),
        &page,
        &[
            "--window-size=1400,2600",
            "--hide-scrollbars",
            &format!("--screenshot={}", shot.display()),
        ],
        dir.path(),
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&shot).expect("chromium wrote the screenshot"),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1400, 2600));
    let px = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()]
        .chunks(px)
        .map(|p| &p[..3.min(px)])
        .collect();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    let non_white = pixels.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    assert!(
        colours.len() > 100,
        "only {} distinct colours",
        colours.len()
    );
    assert!(
        non_white * 50 > pixels.len(),
        "only {non_white} of {} pixels are not white",
        pixels.len()
    );
    // Every series colour of the palette's first three models shows up somewhere.
    for c in concbench::report::chart::PALETTE.iter().take(3) {
        let rgb = [c.0, c.1, c.2];
        assert!(colours.contains(&rgb[..]), "no pixel of colour {rgb:?}");
    }
    let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-quick.png");
    std::fs::copy(&shot, &keep).unwrap();
    eprintln!("screenshot: {}", keep.display());

    // Nothing Chromium started is left (a helper that left its group is ended by id, then
    // the test fails).
    let left = leftover_children(Duration::from_secs(10));
    for &p in &left {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = leftover_children(Duration::from_secs(5));
    assert_eq!(left, Vec::<i32>::new(), "processes left by chromium");
}
