//! The command line: parse, call the library, print. Exit codes: 0 success, 1 a run finished
//! but some cell failed (or an I/O error), 2 bad input (suite file, flags), with a message
//! naming the problem and the fix; 130 / 143 stopped by SIGINT / SIGTERM (`run`, `serve`,
//! `load`: see `stop`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::report::result::Status;
use crate::runner::{RunOptions, run_suite};
use crate::workload::param::{format_duration, parse_duration};
use crate::{model, suite, workload};

/// concbench: compare real processes, threads and event loops on your machine.
#[derive(Debug, Parser)]
#[command(name = "concbench", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a suite (workloads/*.toml) and write results.json and results.csv.
    Run {
        /// The suite file, e.g. workloads/quick.toml.
        suite: PathBuf,
        /// Output directory [default: results/<suite name>].
        #[arg(long)]
        out: Option<PathBuf>,
        /// Only these models (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        model: Vec<String>,
        /// Only these workloads (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        workload: Vec<String>,
        /// Only these OS mechanics (comma-separated ids).
        #[arg(long, value_delimiter = ',')]
        mechanic: Vec<String>,
        /// Override the suite's measured window, e.g. 500ms.
        #[arg(long, value_parser = duration_arg)]
        duration: Option<std::time::Duration>,
        /// Override the suite's warmup, e.g. 100ms.
        #[arg(long, value_parser = duration_arg)]
        warmup: Option<std::time::Duration>,
        /// Override the suite's repeats.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        repeats: Option<u32>,
        /// Do not wait for an idle machine before each window.
        #[arg(long)]
        no_idle_wait: bool,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// List workloads (with parameters), models, suites and cores.
    List {
        /// Directory of suite files.
        #[arg(long, default_value = "workloads")]
        suites: PathBuf,
    },
    /// Describe this machine and what may distort its numbers.
    Sys,
    /// Check the lecture's claims against results (normally of workloads/lecture.toml): a
    /// verdict with numbers for each.
    Claims {
        /// One or more results.json files; their cells and mechanics are pooled.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a Markdown table instead of plain text.
        #[arg(long, conflicts_with = "json")]
        markdown: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare two results files (or criterion baselines): a verdict per cell, exit 1 on a
    /// regression (the CI gate).
    Compare(crate::compare::CompareArgs),
    /// Export results.json as Bencher Metric Format or github-action-benchmark JSON.
    Export(crate::report::export::ExportArgs),
    /// Write a comparison report (report.md and a self-contained report.html with charts)
    /// from one or more results files (machines or commits side by side).
    Report {
        /// One or more results.json files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Load an HTTP/1.1 server: closed loop or open loop at a rate, latency corrected for
    /// coordinated omission.
    Load(crate::load::LoadArgs),
    /// Serve HTTP/1.1 with one of the backend architectures until killed.
    Serve {
        /// Architecture: event-loop, prefork, thread-workers, thread-per-conn,
        /// process-per-conn, loop-helpers, io-threads.
        #[arg(long)]
        arch: String,
        /// Worker processes or threads.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Address to listen on (loopback unless you ask otherwise).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: std::net::SocketAddr,
        /// Per-request work: `none` or WORKLOAD[:k=v,...], e.g. spin:op_time=10us.
        #[arg(long, default_value = "none")]
        handler: String,
        /// One SO_REUSEPORT listener per worker (prefork, thread-workers).
        #[arg(long)]
        reuseport: bool,
        /// Pin workers to cores, spread.
        #[arg(long)]
        pin: bool,
        /// Helper threads (loop-helpers) or I/O threads (io-threads).
        #[arg(long, default_value_t = 2)]
        helpers: usize,
        /// Limits and timeouts.
        #[command(flatten)]
        limits: crate::server::guard::LimitArgs,
    },
}

fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    parse_duration(s).ok_or_else(|| format!("\"{s}\" is not a duration: write e.g. 500ms or 2s"))
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            suite,
            out,
            model,
            workload,
            mechanic,
            duration,
            warmup,
            repeats,
            no_idle_wait,
            quiet,
        } => {
            let mut s = match suite::load(&suite) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = s.filter(&model, &workload, &mechanic) {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
            let out_dir = out
                .clone()
                .unwrap_or_else(|| PathBuf::from("results").join(&s.name));
            if let Err(e) = suite::limits::check_run_flags(duration, warmup, &out_dir) {
                eprintln!("Error: {e}");
                return ExitCode::from(2);
            }
            if let Some(d) = duration {
                if d.is_zero() {
                    eprintln!("Error: --duration must be longer than 0");
                    return ExitCode::from(2);
                }
                s.duration = d;
            }
            if let Some(w) = warmup {
                s.warmup = w;
            }
            if let Some(r) = repeats {
                s.repeats = r;
            }
            let out = out.unwrap_or_else(|| PathBuf::from("results").join(&s.name));
            let opts = RunOptions {
                out_dir: out.clone(),
                progress: !quiet,
                skip_idle_wait: no_idle_wait,
                self_exe: None,
            };
            eprintln!(
                "concbench: suite {} ({} cells, {} mechanics, {} servers × {} repeats, window {}, warmup {}) → {}",
                s.name,
                s.cells.len(),
                s.mechanics.len(),
                s.servers.len(),
                s.repeats,
                format_duration(s.duration),
                format_duration(s.warmup),
                out.display()
            );
            crate::stop::prepare();
            match run_suite(&s, &opts) {
                Ok(results) if results.interrupted => {
                    let sig = crate::sys::signal::received().unwrap_or(libc::SIGINT);
                    eprintln!(
                        "concbench: interrupted: the finished windows are in {}",
                        out.join("results.json").display()
                    );
                    crate::stop::exit(sig)
                }
                Ok(results) => {
                    print!("{}", crate::report::table::render(&results));
                    println!("results: {}", out.join("results.json").display());
                    let failed = results
                        .cells
                        .iter()
                        .filter(|c| c.status != Status::Ok)
                        .count();
                    if failed > 0 {
                        eprintln!("Error: {failed} cell(s) did not complete: see the notes above");
                        return ExitCode::from(1);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("Error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::List { suites } => {
            print!("{}", list(&suites));
            ExitCode::SUCCESS
        }
        Command::Serve {
            arch,
            workers,
            addr,
            handler,
            reuseport,
            pin,
            helpers,
            limits,
        } => match limits.limits() {
            Ok(l) => serve(arch, workers, addr, handler, reuseport, pin, helpers, l),
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Load(args) => crate::load::main(args),
        Command::Compare(args) => crate::compare::main(args),
        Command::Export(args) => crate::report::export::main(args),
        Command::Report { files, out } => crate::report::command::main(&files, &out),
        Command::Sys => {
            let m = crate::measure::machine::detect();
            print!("{}", m.render());
            ExitCode::SUCCESS
        }
        Command::Claims {
            files,
            markdown,
            json,
        } => claims(&files, markdown, json),
    }
}

/// `concbench claims`: exit 0 whatever the verdicts (it is a report, not a gate), 2 when a
/// file cannot be read.
fn claims(files: &[PathBuf], markdown: bool, json: bool) -> ExitCode {
    let mut all = Vec::new();
    for f in files {
        match crate::report::json::read(f) {
            Ok(r) => all.push(r),
            Err(e) => {
                eprintln!("Error: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    let verdicts = crate::claims::evaluate(&all);
    if json {
        match serde_json::to_string_pretty(&verdicts) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(1);
            }
        }
    } else if markdown {
        let cores = all.first().map(|r| r.machine.allowed_cpus.len());
        print!("{}", crate::claims::to_markdown(&verdicts, cores));
    } else {
        print!("{}", crate::claims::to_text(&verdicts));
    }
    ExitCode::SUCCESS
}

#[allow(clippy::too_many_arguments)]
fn serve(
    arch: String,
    workers: usize,
    addr: std::net::SocketAddr,
    handler: String,
    reuseport: bool,
    pin: bool,
    helpers: usize,
    limits: crate::server::http::Limits,
) -> ExitCode {
    let bad = |e: String| {
        eprintln!("Error: {e}");
        ExitCode::from(2)
    };
    let arch = match crate::server::find_arch(&arch) {
        Ok(a) => a,
        Err(e) => return bad(e),
    };
    let handler = match crate::server::handler::HandlerSpec::parse(&handler) {
        Ok(h) => h,
        Err(e) => return bad(e),
    };
    if workers == 0 || workers > crate::suite::MAX_WORKERS {
        return bad(format!(
            "--workers {workers} is out of range: use 1 to {}",
            crate::suite::MAX_WORKERS
        ));
    }
    if !(1..=256).contains(&helpers) {
        return bad(format!("--helpers {helpers} is out of range: use 1 to 256"));
    }
    if !addr.ip().is_loopback() {
        eprintln!("concbench: serving on non-loopback address {addr}, as asked");
    }
    let cfg = crate::server::ServeConfig {
        arch,
        workers,
        addr,
        handler,
        reuseport,
        cores: if pin {
            crate::sys::allowed_cpus()
        } else {
            Vec::new()
        },
        helpers: helpers.max(1),
        limits,
        scratch: std::path::PathBuf::new(),
    };
    // The handler's files live in a directory this process (the supervisor) owns, so they go
    // when it exits even though the server itself is ended with SIGKILL.
    // (`none` needs no files: no directory, so nothing to leave behind if this is SIGKILLed.)
    let scratch = match cfg.handler.workload {
        None => None,
        Some(_) => match tempfile::Builder::new()
            .prefix("concbench-serve-")
            .tempdir()
        {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("Error: creating a scratch directory: {e}");
                return ExitCode::from(1);
            }
        },
    };
    let cfg = crate::server::ServeConfig {
        scratch: scratch
            .as_ref()
            .map_or_else(std::env::temp_dir, |d| d.path().to_path_buf()),
        ..cfg
    };
    crate::stop::serve(&cfg)
}

fn list(suites_dir: &std::path::Path) -> String {
    let mut out = String::from("WORKLOADS (one op is…)\n");
    for d in workload::REGISTRY {
        out.push_str(&format!(
            "  {:<12} {:<6} {}\n",
            d.id,
            format!("{:?}", d.kind).to_lowercase(),
            d.op
        ));
        for p in d.params {
            out.push_str(&format!(
                "      {:<12} default {:<8} {}\n",
                p.name, p.default, p.help
            ));
        }
    }
    out.push_str("\nMODELS\n");
    for m in model::REGISTRY {
        out.push_str(&format!(
            "  {:<14} {:<8} {:<9} {}\n",
            m.id,
            format!("{:?}", m.unit).to_lowercase(),
            format!("{:?}", m.driver).to_lowercase(),
            m.who
        ));
    }
    out.push_str("\nOS MECHANICS (one iteration is…)\n");
    for d in crate::mechanic::REGISTRY {
        out.push_str(&format!("  {:<12} {}\n", d.id, d.about));
        for p in d.params {
            out.push_str(&format!(
                "      {:<12} default {:<10} {}\n",
                p.name, p.default, p.help
            ));
        }
    }
    out.push_str(&format!("\nSUITES ({})\n", suites_dir.display()));
    let mut files: Vec<_> = std::fs::read_dir(suites_dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "toml"));
    files.sort();
    for f in files {
        match suite::load(&f) {
            Ok(s) => out.push_str(&format!(
                "  {:<26} {:>3} cells {:>3} mechanics {:>3} servers  {}\n",
                f.display(),
                s.cells.len(),
                s.mechanics.len(),
                s.servers.len(),
                s.description.lines().next().unwrap_or("")
            )),
            Err(e) => out.push_str(&format!("  {:<26} invalid: {e}\n", f.display())),
        }
    }
    let cores = crate::sys::allowed_cpus();
    out.push_str(&format!(
        "\nCORES\n  {} logical CPUs, this process may use {:?}\n",
        num_cpus::get(),
        cores
    ));
    out
}
