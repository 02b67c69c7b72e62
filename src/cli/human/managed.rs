//! The managed containers' verbs in clap (run by `cli/managed.rs`): `ps`, `logs`,
//! `attach`, `stop`, `rm`, `inspect`, `stats`.

use clap::Command;

use super::{container_store, operand, operands, opt, switch};

/// A managed verb, with `--store`.
fn verb(name: &'static str, about: &'static str) -> Command {
    Command::new(name).about(about).arg(container_store())
}

/// The clap definition of managed verb `name`, `None` for any other.
pub(super) fn command(name: &str) -> Option<Command> {
    Some(match name {
        "ps" => verb("ps", "List managed containers.")
            .after_help("With a container id, `capsa ps [--format table|json] ID [PS-ARGS...]` is runc's: the processes of that container.")
            .arg(switch("all", Some('a'), "also stopped containers"))
            .arg(opt("format", Some('f'), "FORMAT", "table or json"))
            .arg(switch("quiet", Some('q'), "print only the names"))
            .arg(opt(
                "filter",
                None,
                "FILTER",
                "label=KEY, label=KEY=VALUE (all must match), name=SUBSTR or status=STATE (any matches); repeatable",
            )),
        "logs" => verb("logs", "Print a container's log (stdout and stderr).")
            .arg(operand("NAME", "a managed container"))
            .arg(switch("follow", Some('f'), "keep printing new output until the container exits"))
            .arg(opt("tail", Some('n'), "N", "only the last N lines"))
            .arg(switch("timestamps", Some('t'), "prefix each line with its time (RFC3339Nano)")),
        "attach" => verb("attach", "Attach to a running container's output (and stdin with -i).")
            .arg(operand("NAME", "a managed container"))
            .arg(switch("no-stdin", None, "do not forward stdin")),
        "stop" => verb("stop", "Stop containers: stop signal, then SIGKILL.")
            .arg(operands("NAME", true, "managed containers"))
            .arg(opt(
                "time",
                Some('t'),
                "SECONDS",
                "seconds to wait after the stop signal before SIGKILL (default 10)",
            )),
        "rm" => verb("rm", "Remove stopped containers (-f: running ones too).")
            .arg(operands("NAME", true, "managed containers"))
            .arg(switch("force", Some('f'), "kill a running container first")),
        "inspect" => verb(
            "inspect",
            "Print containers' state and configuration as JSON; with --namespaces, what the kernel gave a \
             running container next to what the host has.",
        )
        .override_usage(
            "capsa inspect [--store DIR] NAME...\n\
             capsa [--root R] inspect --namespaces [--format text|json] NAME|ID...",
        )
        .arg(operands("NAME", true, "managed containers (with --namespaces: also runtime and CRI container ids)"))
        .arg(switch(
            "namespaces",
            None,
            "both sides: namespaces against the host's, cgroup usage against limits, host and container pids \
             (also runtime and CRI containers, by id under --root)",
        ))
        .arg(opt("format", Some('f'), "FORMAT", "with --namespaces: text (default) or json; without: json")),
        "stats" => verb("stats", "Resource usage of running containers.")
            .arg(operands("NAME", false, "managed containers (default: every running one)"))
            .arg(opt("format", Some('f'), "FORMAT", "table or json"))
            .arg(switch("no-stream", None, "accepted for docker compatibility (one sample is the default)")),
        _ => return None,
    })
}
