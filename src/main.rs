//! The `concbench` binary: all logic lives in the library; see `concbench --help`.

fn main() -> std::process::ExitCode {
    // `concbench __noop` exits at once, before any parsing: the fork+exec spawn mechanic
    // execs it to measure the cost of exec itself, not of concbench's start-up.
    if std::env::args_os().nth(1).is_some_and(|a| a == "__noop") {
        return std::process::ExitCode::SUCCESS;
    }
    concbench::cli::main()
}
