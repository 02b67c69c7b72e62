//! `capsa`: a runc-compatible OCI runtime CLI. Thin: parse flags, call
//! capsa-runtime, print, map errors to exit codes.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
