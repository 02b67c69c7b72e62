//! `capsa pod VERB ...` in clap (run by `cli/pod.rs`).

use clap::{Command, ValueHint};

use super::{container_store, operand, operands, opt, switch};

/// A pod verb: its about, operands and flags, with `--store`.
fn verb(name: &'static str, about: &'static str) -> Command {
    Command::new(name).about(about).arg(container_store())
}

/// `-f FILE` and `-q` of apply and delete.
fn manifest(name: &'static str, about: &'static str) -> Command {
    verb(name, about)
        .arg(
            opt("file", Some('f'), "FILE", "the manifest (YAML, one or more v1/Pod documents; - for stdin)")
                .required(true)
                .value_hint(ValueHint::FilePath),
        )
        .arg(switch("quiet", Some('q'), "no progress lines"))
}

/// `capsa pod`.
pub(super) fn command() -> Command {
    Command::new("pod")
        .about("Pods: containers sharing network, ipc and uts.")
        .subcommand_value_name("VERB")
        .subcommand(
            verb("create", "Create a pod: pinned net/ipc/uts namespaces and a CNI network.")
                .arg(operand("NAME", "the pod's name"))
                .arg(opt(
                    "network",
                    None,
                    "NETWORK",
                    "bridge (default: capsa's CNI network), none, host, or a network in /etc/capsa/net.d",
                ))
                .arg(opt("publish", Some('p'), "PORTS", "publish a port HOSTPORT:PORT[/tcp|udp]; repeatable"))
                .arg(opt("hostname", None, "NAME", "the pod's hostname (default: its name)"))
                .arg(opt("label", Some('l'), "KEY=VALUE", "KEY=VALUE; repeatable")),
        )
        .subcommand(
            verb("ls", "List pods.")
                .arg(opt("format", None, "FORMAT", "table or json"))
                .arg(switch("quiet", Some('q'), "names only"))
                .arg(opt(
                    "filter",
                    None,
                    "FILTER",
                    "label=KEY, label=KEY=VALUE (all must match) or name=SUBSTR; repeatable",
                )),
        )
        .subcommand(
            verb("inspect", "Print a pod, its IP, namespaces and containers as JSON.").arg(operand("NAME", "a pod")),
        )
        .subcommand(
            verb("check", "Ask the CNI plugins to verify the pod's network (CNI CHECK).").arg(operand("NAME", "a pod")),
        )
        .subcommand(
            verb("logs", "Print the logs of a pod's containers.")
                .arg(operand("NAME", "a pod"))
                .arg(opt("container", Some('c'), "CONTAINER", "only this container (its manifest name or full name)"))
                .arg(opt("tail", Some('n'), "N", "only the last N lines of each container"))
                .arg(switch("timestamps", Some('t'), "prefix each line with its time"))
                .arg(switch("follow", Some('f'), "follow (needs -c when the pod has several containers)")),
        )
        .subcommand(
            verb("stop", "Stop every container of a pod (the pod stays).")
                .arg(operands("NAME", true, "pods"))
                .arg(opt("time", Some('t'), "SECONDS", "grace period in seconds (default 10)")),
        )
        .subcommand(
            verb("rm", "Remove a pod: containers, network, namespaces.")
                .arg(operands("NAME", true, "pods"))
                .arg(switch("force", Some('f'), "kill running containers first")),
        )
        .subcommand(manifest("apply", "Create the pods of a Kubernetes v1/Pod manifest."))
        .subcommand(manifest("delete", "Remove the pods a manifest names."))
}
