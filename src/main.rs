//! The `shadowtap` binary: parse the command line, run, exit with the run's status.

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
