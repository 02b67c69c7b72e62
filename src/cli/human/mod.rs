//! The human-facing verbs in clap: `image`, `pod`, `lab`, the managed containers'
//! verbs (`ps`, `logs`, `attach`, `stop`, `rm`, `inspect`, `stats`), `completion`
//! and `man`. Their flags, operands and help texts are defined here once, and serve
//! the parsing, `--help`, the shell completions and the man page alike.
//!
//! Compiled into capsa-image only (`src/image_main.rs` includes this module by path):
//! the runtime binary keeps its small hand-written parser (`cli/args.rs`; clap
//! measured ~0.8 MB more peak RSS there), and execs capsa-image for these verbs. The
//! global flags (`--root`, `--log`, ...) are parsed before the verb by that parser,
//! as in the runtime binary; clap sees the verb and what follows it.
//!
//! The parse hands the verbs' code a [`Parsed`] (flags by long name, operands in
//! order), the shape the runtime verbs get from the hand parser, so the code that
//! runs a verb does not depend on which parser read it.

mod gen;
mod image;
mod lab;
mod managed;
mod pod;

use clap::{Arg, ArgAction, ArgMatches, Command, ValueHint};

use crate::cli::args::Parsed;
use crate::cli::HumanArgs;

/// A flag that takes a value (repeatable: the verbs read the last one, or every one
/// where the help says so).
fn opt(long: &'static str, short: Option<char>, value: &'static str, help: &'static str) -> Arg {
    let a = Arg::new(long).long(long).value_name(value).action(ArgAction::Append).help(help);
    match short {
        Some(c) => a.short(c),
        None => a,
    }
}

/// A boolean flag.
fn switch(long: &'static str, short: Option<char>, help: &'static str) -> Arg {
    let a = Arg::new(long).long(long).action(ArgAction::SetTrue).help(help);
    match short {
        Some(c) => a.short(c),
        None => a,
    }
}

/// A required operand.
fn operand(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).value_name(name).required(true).help(help)
}

/// An operand that may be repeated (`required`: at least one).
fn operands(name: &'static str, required: bool, help: &'static str) -> Arg {
    Arg::new(name).value_name(name).num_args(1..).action(ArgAction::Append).required(required).help(help)
}

/// `--store DIR` (`what`: the help text).
fn store(what: &'static str) -> Arg {
    opt("store", None, "DIR", what).value_hint(ValueHint::DirPath)
}

/// `--store` of the container verbs (managed containers, pods).
fn container_store() -> Arg {
    store("image and container store (default /var/lib/capsa; rootless: $XDG_DATA_HOME/capsa)")
}

/// The clap definition of one human-facing verb, `None` for any other.
pub(crate) fn verb(name: &str) -> Option<Command> {
    match name {
        "image" => Some(image::command()),
        "pod" => Some(pod::command()),
        "lab" => Some(lab::command()),
        "completion" => Some(gen::completion_command()),
        "man" => Some(gen::man_command()),
        n => managed::command(n),
    }
}

/// Parses `capsa NAME ARGS...` for a human-facing verb (the [`crate::cli::HumanParser`]
/// of capsa-image). Help, completion scripts and man pages are printed here.
pub fn parse(name: &str, args: &[String]) -> anyhow::Result<HumanArgs> {
    let Some(cmd) = verb(name) else { anyhow::bail!("{name}: not a verb of capsa-image") };
    let mut top = Command::new("capsa").subcommand(cmd).disable_help_subcommand(true);
    let argv = std::iter::once("capsa").chain(std::iter::once(name)).chain(args.iter().map(String::as_str));
    let m = match top.try_get_matches_from_mut(argv) {
        Ok(m) => m,
        Err(e) => return clap_error(&top, name, args, e),
    };
    // Down to the verb that was named: `capsa pod create ...` is ["pod", "create"].
    let (mut cmd, mut m) = (&top, &m);
    let mut path = Vec::new();
    while let Some((sub, sm)) = m.subcommand() {
        path.push(sub.to_owned());
        cmd = cmd.find_subcommand(sub).expect("clap matched a subcommand it has");
        m = sm;
    }
    if cmd.has_subcommands() {
        // `capsa pod` alone: its help, and a usage error.
        print!("{}", cmd.clone().render_help());
        return Ok(Err(2));
    }
    let p = parsed(cmd, m);
    match path.first().map(String::as_str) {
        Some("completion") => gen::completion(p.pos.first().map_or("", String::as_str)).map(Err),
        Some("man") => gen::man(&p.pos).map(Err),
        _ => Ok(Ok((path, p))),
    }
}

/// Flags and operands of the matched `cmd`, in the hand parser's shape. A global flag
/// of a verb group (`capsa image --store DIR ls`) is among the subcommand's: clap
/// copies it there, with its value.
fn parsed(cmd: &Command, m: &ArgMatches) -> Parsed {
    let mut p = Parsed::default();
    for a in cmd.get_arguments() {
        let id = a.get_id().as_str();
        let values: Vec<String> = match a.get_action() {
            ArgAction::SetTrue if m.get_flag(id) => vec!["true".into()],
            ArgAction::Append | ArgAction::Set => {
                m.get_many::<String>(id).map(|v| v.cloned().collect()).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        if values.is_empty() {
            continue;
        }
        if a.is_positional() {
            p.pos.extend(values);
        } else {
            p.flags.insert(id.to_owned(), values);
        }
    }
    p
}

/// A clap error: help and the like printed as clap prints them (exit 0; a verb group
/// named alone, 2); a usage error as one line, `capsa: pod rm: ... (see 'capsa pod rm
/// --help')`, through the logger like every other error (exit 1).
fn clap_error(top: &Command, name: &str, args: &[String], e: clap::Error) -> anyhow::Result<HumanArgs> {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            Ok(Err(0))
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            Ok(Err(2))
        }
        _ => {
            // The verb path for the pointer to its help: `pod rm`.
            let mut path = name.to_owned();
            if let Some(group) = top.find_subcommand(name) {
                if let Some(sub) = args.iter().find(|a| group.find_subcommand(a.as_str()).is_some()) {
                    path = format!("{name} {sub}");
                }
            }
            anyhow::bail!("{path}: {} (see 'capsa {path} --help')", one_line(&e.to_string()))
        }
    }
}

/// clap's rendered error (`error: ...`, a blank line, `tip: ...`, the usage, a pointer
/// to --help) as one line: the message and its tips.
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    let lines = rendered.lines().map(str::trim);
    for l in lines.filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")) {
        if !out.is_empty() {
            // A list under its heading (`not provided:` / `<NAME>`) reads on; the rest are tips.
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(l.strip_prefix("error: ").unwrap_or(l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(name: &str, args: &[&str]) -> (Vec<String>, Parsed) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(name, &args).expect("parses").expect("a verb to run")
    }

    #[test]
    fn flags_and_operands_reach_the_verbs() {
        let (path, p) =
            parse_ok("pod", &["create", "--network", "none", "-l", "a=1", "--label=b=2", "-p", "80:80", "x"]);
        assert_eq!(path, ["pod", "create"]);
        assert_eq!(p.get("network"), Some("none"));
        assert_eq!(p.all("label"), ["a=1", "b=2"]);
        assert_eq!(p.pos, ["x"]);
        let (path, p) = parse_ok("ps", &["-aq", "--filter", "label=x", "--filter", "name=y"]);
        assert_eq!(path, ["ps"]);
        assert!(p.on("all") && p.on("quiet") && !p.on("format"));
        assert_eq!(p.all("filter"), ["label=x", "name=y"]);
        let (_, p) = parse_ok("stop", &["-t", "1", "a", "b"]);
        assert_eq!((p.get("time"), p.pos.as_slice()), (Some("1"), &["a".to_string(), "b".to_string()][..]));
        // `--store` before the image verb, as the tests and scripts give it.
        let (path, p) = parse_ok("image", &["--store", "/s", "import", "-q", "oci:/x", "bb"]);
        assert_eq!(path, ["image", "import"]);
        assert_eq!((p.get("store"), p.on("quiet")), (Some("/s"), true));
        assert_eq!(p.pos, ["oci:/x", "bb"]);
        // bundle: everything after DIR is the command, flags included.
        let (_, p) = parse_ok("image", &["bundle", "-e", "A=1", "bb", "/d", "sh", "-c", "echo -q"]);
        assert_eq!(p.pos, ["bb", "/d", "sh", "-c", "echo -q"]);
        assert_eq!(p.all("env"), ["A=1"]);
        let (path, p) = parse_ok("lab", &["show", "7", "--ko"]);
        assert_eq!((path[1].as_str(), p.pos[0].as_str(), p.on("ko")), ("show", "7", true));
    }

    #[test]
    fn usage_errors_are_one_line() {
        let args = vec!["rm".to_string(), "--bogus".to_string(), "p".to_string()];
        let e = parse("pod", &args).unwrap_err().to_string();
        assert!(e.starts_with("pod rm: unexpected argument '--bogus'"), "{e}");
        assert!(e.ends_with("(see 'capsa pod rm --help')") && !e.contains('\n'), "{e}");
        assert!(parse("logs", &[]).is_err(), "logs needs a name");
    }

    #[test]
    fn managed_ps_matches_the_routing_table() {
        // The runtime binary routes `ps` with managed::PS: same flags, same values.
        let cmd = verb("ps").unwrap();
        for f in crate::cli::managed::PS.iter().filter(|f| f.long != "help") {
            let a = cmd.get_arguments().find(|a| a.get_long() == Some(f.long)).unwrap_or_else(|| panic!("{}", f.long));
            assert_eq!(a.get_short(), f.short, "{}", f.long);
            assert_eq!(a.get_action().takes_values(), f.value, "{}", f.long);
        }
    }
}
