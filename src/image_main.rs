//! `capsa-image`: the capsa CLI with the image commands built in
//! (`capsa image ...`, `capsa run IMAGE`) and the other human-facing verbs (managed
//! containers, pods, labs, completions, man pages), parsed with clap (`cli/human`).
//! `capsa` execs it for those, so the runtime binary on the container start path
//! carries neither the image code nor clap.

#[path = "cli/mod.rs"]
mod cli;

#[path = "cli/human/mod.rs"]
mod human;

/// See `src/main.rs`.
const IMAGE_BUILTIN: bool = true;

/// The clap parser of the human-facing verbs.
const HUMAN: Option<cli::HumanParser> = Some(human::parse);

fn main() {
    std::process::exit(cli::main());
}
