use std::process::ExitCode;

use clap::Parser;

/// mimalloc, for what each allocation asks (`breadbox_api::alloc`).
#[global_allocator]
static GLOBAL: breadbox_api::alloc::Allocator = breadbox_api::alloc::Allocator;

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
