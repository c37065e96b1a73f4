use std::process::ExitCode;

use clap::Parser;

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
