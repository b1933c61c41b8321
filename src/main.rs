//! The `citysense` binary: parse the CLI, set up logging, run, map errors to exit codes.

use citysense::cli::{Cli, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's malloc: the pipeline allocates and frees many small objects
/// per record (decoded records, window results, payload buffers). On the core bench's loop
/// it cut CPU time by about a quarter and page faults from ~48,600 to ~1,600 (glibc gave
/// freed memory back to the kernel and faulted it in again); see BENCHMARKS.md. With the
/// crate's `override` feature librdkafka's C allocations use mimalloc too (src/allocator.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    citysense::allocator::use_small_pages();
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("CITYSENSE_LOG").unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,librdkafka=warn"));
    let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => subscriber.json().init(),
        LogFormat::Text => subscriber.init(),
    }
    match citysense::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}
