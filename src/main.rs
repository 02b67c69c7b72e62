//! `capsa`: a runc-compatible OCI runtime CLI. Thin: parse flags, call
//! capsa-runtime, print, map errors to exit codes.

mod cli;

/// Whether image commands run in this binary (`capsa-image`) or are
/// handed to it (`capsa`): see `cli::image`.
const IMAGE_BUILTIN: bool = false;

/// The parser of the human-facing verbs: none here (no clap in the runtime binary);
/// capsa-image has it, and `capsa` execs capsa-image for those verbs.
const HUMAN: Option<cli::HumanParser> = None;

fn main() {
    std::process::exit(cli::main());
}
