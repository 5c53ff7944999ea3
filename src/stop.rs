//! How the long-running commands (`run`, `serve`, `load`) stop: on SIGINT or SIGTERM they
//! stop every worker and server, reap every child, save what they have, and exit 130 / 143.
//!
//! - [`prepare`] installs the handler (`sys::signal`) and makes the process a child
//!   subreaper, so the workers of a killed cell host or server (which die by
//!   `PR_SET_PDEATHSIG`) are re-parented to it and reaped by it: when concbench exits, no
//!   process of the run is left, reaped or not.
//! - `run`: the runner notices the signal wherever it waits (`runner::in_host`), kills and
//!   reaps the current cell host, and writes the finished cells marked `interrupted`.
//! - `load`: the generator threads stop at their next loop turn; the partial report (marked
//!   `interrupted`, the window cut where the signal came) is printed.
//! - `serve`: [`serve`] runs the server in a forked child and waits for a signal or for the
//!   server to end; on a signal it SIGKILLs the server, whose own children (prefork workers,
//!   connection processes, the downstream server) die with it, and reaps them all.
//!
//! Children ignore SIGINT and SIGTERM (see `sys::signal`): a terminal's Ctrl-C reaches the
//! whole process group, and only the harness decides what dies and when.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::Duration;

use crate::server::ServeConfig;
use crate::sys::signal::{self, Wake};
use crate::sys::{fork_child, process};

/// How long the orphans of a killed child may take to die before they are SIGKILLed by PID.
const REAP_WITHIN: Duration = Duration::from_secs(1);

/// Installs the SIGINT/SIGTERM handler and makes this process a subreaper. A failure only
/// costs the clean stop, so it is reported and the command goes on.
pub fn prepare() {
    if let Err(e) = signal::install() {
        eprintln!(
            "concbench: cannot install the SIGINT/SIGTERM handler ({e}): Ctrl-C kills at once"
        );
    }
    if let Err(e) = process::become_subreaper() {
        eprintln!("concbench: cannot become a child subreaper ({e})");
    }
}

/// Reaps what is left and returns the exit code for dying of `sig` (130 SIGINT, 143 SIGTERM).
pub fn exit(sig: i32) -> ExitCode {
    let left = process::reap_orphans(REAP_WITHIN);
    if !left.is_empty() {
        eprintln!("concbench: processes {left:?} would not die");
    }
    ExitCode::from(signal::exit_code(sig))
}

/// `concbench serve`: the server runs in a forked child; this process prints its address,
/// then waits for SIGINT/SIGTERM (→ kill and reap the server and everything below it, exit
/// 130/143) or for the server to end by itself (→ exit 1, the server printed why).
pub fn serve(cfg: &ServeConfig) -> ExitCode {
    prepare();
    let (mut reader, writer) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("Error: creating a pipe: {e}");
            return ExitCode::from(1);
        }
    };
    let reader_fd = reader.as_raw_fd();
    let forked = fork_child(|| {
        crate::sys::fd::close_inherited(reader_fd);
        let mut w = &writer;
        let r = crate::server::serve(cfg, &mut |a| {
            let _ = writeln!(w, "{a}");
        });
        match r {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("Error: {}", crate::sys::limits::explain(e));
                1
            }
        }
    });
    drop(writer);
    let mut server = match forked {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: forking the server: {e}");
            return ExitCode::from(1);
        }
    };
    // The address line, or EOF if the server failed to start.
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") {
        match signal::wait_readable(Some(reader_fd), None) {
            Ok(Wake::Signal(sig)) => return stop_server(&mut server, sig),
            Ok(_) => {}
            Err(e) => {
                eprintln!("Error: waiting for the server: {e}");
                let _ = server.kill_and_reap();
                return exit_reaped(1);
            }
        }
        match reader.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => line.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    drop(reader);
    if line.ends_with(b"\n") {
        println!("listening on {}", String::from_utf8_lossy(&line).trim());
        let _ = std::io::stdout().flush();
    }
    loop {
        if let Some(sig) = signal::sleep(Duration::from_millis(20)) {
            return stop_server(&mut server, sig);
        }
        match server.try_wait() {
            Ok(None) => continue,
            Ok(Some(exit)) => {
                if !exit.success() && exit.code != Some(1) {
                    eprintln!("Error: the server ended: {}", exit.describe());
                }
                return exit_reaped(1);
            }
            Err(e) => {
                eprintln!("Error: waiting for the server: {e}");
                return exit_reaped(1);
            }
        }
    }
}

/// Kills the server, reaps it and its orphans, and returns 128 + `sig`.
fn stop_server(server: &mut crate::sys::Child, sig: i32) -> ExitCode {
    let _ = server.kill_and_reap();
    eprintln!(
        "concbench serve: {} received: server stopped",
        signal::name(sig)
    );
    exit(sig)
}

fn exit_reaped(code: u8) -> ExitCode {
    let _ = process::reap_orphans(REAP_WITHIN);
    ExitCode::from(code)
}
