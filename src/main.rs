//! The `shadowtap` binary: parse the command line, run, exit with the run's status.

// Messages are allocated by capture threads and freed by output threads; mimalloc handles
// that cross-thread traffic far better than glibc's arenas (measured in examples/bench-capture.sh).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let argv: Vec<String> = match shadowtap::cli::process_argv() {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("shadowtap: {e:#}");
            std::process::exit(shadowtap::EXIT_USAGE);
        }
    };
    std::process::exit(shadowtap::run_cli(argv));
}
