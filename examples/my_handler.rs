//! Your own code under every model, without writing a harness:
//! `cargo run --release --example my_handler` prints the summary table and writes
//! `results/my_handler/results.json`. For criterion, see `concbench::criterion::bench_models`.

use concbench::runner::{RunOptions, run_suite};

/// Stand-in for a request handler: some arithmetic on its input.
fn my_handler(input: u64) -> u64 {
    (0..2_000u64).fold(input, |x, i| x.rotate_left(5) ^ i.wrapping_mul(0x9E37_79B9))
}

fn main() -> anyhow::Result<()> {
    let suite = concbench::custom::suite("my_handler", my_handler);
    let opts = RunOptions {
        out_dir: "results/my_handler".into(),
        progress: true,
        skip_idle_wait: false,
        self_exe: None,
    };
    let results = run_suite(&suite, &opts)?;
    print!("{}", concbench::report::table::render(&results));
    Ok(())
}
