//! `capsa image VERB ...` in clap (run by `cli/image`).

use clap::{Arg, Command, ValueHint};

use super::{operand, operands, opt, store, switch};

fn platform() -> Arg {
    opt("platform", None, "PLATFORM", "os/arch[/variant] to pick from an index (default: the host's)")
}

/// The flags of every verb that may import or pull.
fn transport() -> [Arg; 5] {
    [
        platform(),
        switch("quiet", Some('q'), "no progress lines"),
        switch("insecure", None, "registry over plain http (loopback hosts always are)"),
        opt("creds", None, "CREDENTIALS", "registry credentials USER:PASSWORD"),
        opt("authfile", None, "FILE", "docker-style auth file (default: REGISTRY_AUTH_FILE, ~/.docker/config.json)")
            .value_hint(ValueHint::FilePath),
    ]
}

const REF: &str = "an image: a local name or id, oci:DIR[:TAG], oci-archive:FILE[:TAG], \
                   docker-archive:FILE[:NAME] or docker://HOST[:PORT]/NAME[:TAG|@DIGEST]";

/// `capsa image`.
pub(super) fn command() -> Command {
    let import = |name: &'static str, about: &'static str| {
        Command::new(name)
            .about(about)
            .arg(operand("REF", REF))
            .arg(Arg::new("NAME").help("the name to give it in the store (default: from REF)"))
            .args(transport())
    };
    Command::new("image")
        .about("Manage images: the local store, unpack, bundles.")
        .subcommand_value_name("VERB")
        .arg(store("image store directory (default /var/lib/capsa; rootless: $XDG_DATA_HOME/capsa)").global(true))
        .subcommand(import("import", "Copy an image into the local store and name it."))
        .subcommand(import("pull", "Same as import; REF docker://HOST[:PORT]/NAME[:TAG|@DIGEST] pulls."))
        .subcommand(
            Command::new("ls")
                .about("List the images of the local store.")
                .arg(opt("format", Some('f'), "FORMAT", "table or json"))
                .arg(switch("quiet", Some('q'), "print only the names")),
        )
        .subcommand(
            Command::new("inspect")
                .about("Print an image's manifest, config and snapshots as JSON.")
                .arg(operand("NAME", "an image name or id")),
        )
        .subcommand(Command::new("rm").about("Remove image names (blobs stay until prune).").arg(operands(
            "NAME",
            true,
            "image names or ids",
        )))
        .subcommand(Command::new("prune").about("Remove unreferenced blobs and snapshots and stopped containers."))
        .subcommand(
            Command::new("unpack")
                .about("Unpack an image flattened into DEST (like umoci raw unpack).")
                .arg(operand("REF", REF))
                .arg(operand("DEST", "the directory to unpack into").value_hint(ValueHint::DirPath))
                .args(transport()),
        )
        .subcommand(
            Command::new("bundle")
                .about("Write an OCI bundle: DIR/config.json + DIR/rootfs.")
                .arg(operand("REF", REF))
                .arg(operand("DIR", "the bundle directory").value_hint(ValueHint::DirPath))
                .arg(
                    operands("CMD", false, "the command and its arguments (default: the image's)")
                        .trailing_var_arg(true)
                        .allow_hyphen_values(true)
                        .value_hint(ValueHint::CommandWithArguments),
                )
                .arg(opt("env", Some('e'), "KEY=VALUE", "set KEY=VALUE; repeatable"))
                .arg(opt("entrypoint", None, "CMD", "replace the image's Entrypoint"))
                .arg(opt("workdir", Some('w'), "DIR", "working directory"))
                .arg(opt("user", Some('u'), "USER", "user[:group]"))
                .arg(switch("tty", Some('t'), "process.terminal = true"))
                .arg(opt(
                    "security-opt",
                    None,
                    "OPT",
                    "seccomp=unconfined, seccomp=FILE (docker's profile format) or no-new-privileges; repeatable \
                     (default: the RuntimeDefault seccomp profile)",
                ))
                .args(transport()),
        )
}
