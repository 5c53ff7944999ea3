//! The `concbench` binary: all logic lives in the library; see `concbench --help`.

fn main() -> std::process::ExitCode {
    concbench::cli::main()
}
