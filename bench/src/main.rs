use std::process::ExitCode;

use clap::Parser;

/// mimalloc: glibc malloc was an eighth of the request path in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use breadbox_bench::BenchArgs;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    match breadbox_bench::run(&args) {
        Ok(report) => {
            report.print(args.json);
            if report.had_errors() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("breadbox-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
