//! `capsa lab VERB [N]` in clap (run by `cli/lab.rs`).

use clap::Command;

use super::{operand, switch};

const WHERE: &str = "\
N is the lab's number (1 or 01) or its folder name. The labs are found in $CAPSA_LABS,
else <prefix>/share/capsa/labs beside the installed binaries, else the source tree's labs/.
Every script runs as root with bash; its scratch files are in /tmp/capsa-lab/<lab>.";

/// A verb on one lab.
fn on_lab(name: &'static str, about: &'static str) -> Command {
    Command::new(name).about(about).arg(operand("N", "the lab: its number or folder name"))
}

/// `capsa lab`.
pub(super) fn command() -> Command {
    Command::new("lab")
        .about("Exercises on namespaces, cgroups and pods that check themselves.")
        .subcommand_value_name("VERB")
        .after_help(WHERE)
        .subcommand(Command::new("list").about("The exercises, numbered."))
        .subcommand(on_lab("show", "Its README.").arg(switch("ko", None, "in Korean (README.ko.md)")))
        .subcommand(on_lab("start", "Prepare it (setup.sh)."))
        .subcommand(on_lab("check", "Verify what you did: PASS or FAIL, with the reason (check.sh)."))
        .subcommand(on_lab("solve", "Do it the right way (solution.sh), to compare."))
        .subcommand(on_lab("reset", "Remove everything the lab made (reset.sh)."))
}
