//! `capsa-image`: the capsa CLI with the image commands built in
//! (`capsa image ...`, `capsa run IMAGE`). `capsa` execs it for those, so the
//! runtime binary on the container start path does not carry the image code.

#[path = "cli/mod.rs"]
mod cli;

/// See `src/main.rs`.
const IMAGE_BUILTIN: bool = true;

fn main() {
    std::process::exit(cli::main());
}
