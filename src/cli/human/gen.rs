//! `capsa completion bash|zsh|fish` and `capsa man [VERB [SUBVERB]]`: the shell
//! completion scripts and the man pages, generated from one clap tree of every verb.
//! The human-facing verbs come from their clap definitions (the ones that parse
//! them); the runtime verbs, hand-parsed in the runtime binary, from their flag
//! tables (`cli::COMMANDS`, `cli::GLOBAL`), so what the pages and completions offer
//! is what the parsers accept.

use anyhow::{bail, Context};
use clap::{Arg, ArgAction, Command, ValueHint};
use clap_mangen::roff::{bold, roman, Roff};

use super::{operand, operands};
use crate::cli::args::Flag;
use crate::cli::{COMMANDS, GLOBAL};

/// `capsa completion`.
pub(super) fn completion_command() -> Command {
    Command::new("completion")
        .about("Print the shell completion script for bash, zsh or fish.")
        .arg(operand("SHELL", "the shell").value_parser(["bash", "zsh", "fish"]))
        .after_help(
            "Installed by `make install` (bash-completion, zsh site-functions, fish vendor_completions.d); \
             or for this shell only: source <(capsa completion bash)",
        )
}

/// `capsa man`.
pub(super) fn man_command() -> Command {
    Command::new("man")
        .about("Print the man page (roff) of capsa, or of one verb.")
        .arg(
            operands("VERB", false, "a verb, and a subverb (capsa man pod create): its page instead of capsa's")
                .num_args(0..=2),
        )
        .after_help("Read it with: capsa man | man -l -")
}

/// A runtime flag from its table.
fn from_flag(f: &Flag) -> Arg {
    let mut a = Arg::new(f.long).long(f.long).help(f.help);
    if let Some(c) = f.short {
        a = a.short(c);
    }
    if f.long == "explain" {
        // The one flag with an optional value: --explain or --explain=json.
        return a.num_args(0..=1).require_equals(true).value_name("FORMAT").value_parser(["text", "json"]);
    }
    if !f.value {
        return a.action(ArgAction::SetTrue);
    }
    let hint = match f.long {
        "root" | "bundle" | "cwd" => ValueHint::DirPath,
        "log" | "pid-file" | "console-socket" | "process" | "resources" => ValueHint::FilePath,
        _ => ValueHint::Other,
    };
    a.action(ArgAction::Append).value_name("VALUE").value_hint(hint)
}

/// A runtime verb from its `COMMANDS` entry and flag table(s) (a flag in two tables once).
fn runtime_verb(name: &'static str, usage: &'static str, about: &'static str, defs: &[&'static Flag]) -> Command {
    let mut cmd = Command::new(name).about(about).override_usage(usage);
    let mut seen = Vec::new();
    for f in defs.iter().filter(|f| f.long != "help") {
        if !seen.contains(&f.long) {
            seen.push(f.long);
            cmd = cmd.arg(from_flag(f));
        }
    }
    // The operands, as the usage above shows them (hidden: the usage says it better).
    cmd.arg(Arg::new("ARGS").num_args(0..).trailing_var_arg(true).allow_hyphen_values(true).hide(true))
}

/// Every verb of capsa, with the global flags.
pub(crate) fn tree() -> Command {
    let mut top = Command::new("capsa")
        .about("A lightweight OCI container runtime (runc-compatible CLI).")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_version_flag(true)
        .disable_help_subcommand(true)
        .subcommand_value_name("COMMAND")
        .after_help("Run 'capsa COMMAND --help' for a command's options, 'capsa man COMMAND' for its man page.");
    for f in GLOBAL.iter().filter(|f| f.long != "help") {
        top = top.arg(from_flag(f));
    }
    for &(name, usage, about, defs, _) in COMMANDS {
        let cmd = match super::verb(name) {
            Some(cmd) => cmd,
            None => {
                let mut flags: Vec<&'static Flag> = defs.iter().collect();
                if name == "run" {
                    flags.extend(crate::cli::image::RUN.iter());
                }
                runtime_verb(name, usage, about, &flags)
            }
        };
        top = top.subcommand(cmd);
    }
    top
}

/// Prints the completion script for `shell`.
pub(super) fn completion(shell: &str) -> anyhow::Result<i32> {
    use clap_complete::Shell;
    let shell = match shell {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        "fish" => Shell::Fish,
        s => bail!("completion: {s:?} is not bash, zsh or fish"),
    };
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut tree(), "capsa", &mut out);
    print!("{}", String::from_utf8(out).context("completion: the script is not UTF-8")?);
    Ok(0)
}

/// Prints the man page of capsa, or of the verb at `path` (`["pod", "create"]`).
pub(super) fn man(path: &[String]) -> anyhow::Result<i32> {
    let mut cmd = tree();
    cmd.build();
    let mut title = String::from("capsa");
    for v in path {
        cmd = match cmd.find_subcommand(v) {
            Some(sub) => sub.clone(),
            None => bail!("man: no verb {:?} (see 'capsa {}--help')", path.join(" "), command_prefix(&title)),
        };
        title = format!("{title}-{v}");
    }
    let mut out = Vec::new();
    page(cmd.display_name(title.clone()), &title, !path.is_empty(), &mut out).context("man: render the page")?;
    print!("{}", String::from_utf8(out).context("man: the page is not UTF-8")?);
    Ok(0)
}

/// A man page: clap_mangen's sections, and one COMMANDS section that holds every verb
/// below `cmd` in full (usage, about, operands, flags) rather than pointers to pages of
/// their own, so `capsa.1` alone documents the whole CLI.
fn page(cmd: Command, title: &str, extra: bool, w: &mut dyn std::io::Write) -> std::io::Result<()> {
    let has_subcommands = cmd.has_subcommands();
    let man = clap_mangen::Man::new(cmd.clone())
        .title(title.to_uppercase())
        .source(format!("capsa {}", env!("CARGO_PKG_VERSION")))
        .manual("capsa manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if has_subcommands {
        let mut roff = Roff::new();
        roff.control("SH", ["COMMANDS"]);
        verbs(&mut roff, &cmd);
        roff.to_writer(w)?;
    }
    if extra && cmd.get_after_help().is_some() {
        man.render_extra_section(w)?;
    }
    Ok(())
}

/// Every verb below `cmd`, depth first.
fn verbs(roff: &mut Roff, cmd: &Command) {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let usage = sub.clone().render_usage().to_string();
        let usage = usage.trim().trim_start_matches("Usage:").trim();
        roff.control("SS", [sub.get_bin_name().unwrap_or(sub.get_name())]);
        for (i, form) in usage.lines().map(str::trim).enumerate() {
            if i > 0 {
                roff.control("br", []);
            }
            roff.text([bold(form)]);
        }
        if let Some(about) = sub.get_about() {
            roff.control("PP", []);
            roff.text([roman(about.to_string())]);
        }
        for a in sub.get_arguments().filter(|a| !a.is_hide_set() && a.get_id() != "help") {
            roff.control("TP", []);
            roff.text([bold(label(a))]);
            roff.text([roman(a.get_help().map(|h| h.to_string()).unwrap_or_default())]);
        }
        if let Some(after) = sub.get_after_help() {
            roff.control("PP", []);
            roff.text([roman(after.to_string())]);
        }
        verbs(roff, sub);
    }
}

/// How an argument is written: `-p, --publish <PORTS>`, `--explain[=<FORMAT>]`, `<NAME>...`.
fn label(a: &Arg) -> String {
    let names = a.get_value_names().map(|v| v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" "));
    let value = names.unwrap_or_else(|| a.get_id().to_string());
    let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
    if a.is_positional() {
        let v = if a.is_required_set() { format!("<{value}>") } else { format!("[{value}]") };
        return if many { format!("{v}...") } else { v };
    }
    let mut s: Vec<String> = a.get_short().map(|c| format!("-{c}")).into_iter().collect();
    s.extend(a.get_long().map(|l| format!("--{l}")));
    let mut s = s.join(", ");
    if a.get_action().takes_values() {
        match a.get_num_args() {
            Some(n) if n.min_values() == 0 => s.push_str(&format!("[=<{value}>]")),
            _ => s.push_str(&format!(" <{value}>")),
        }
    }
    s
}

/// `capsa-pod` as the words before `--help`: `pod `.
fn command_prefix(title: &str) -> String {
    title.split('-').skip(1).map(|w| format!("{w} ")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tree_of_every_verb() {
        // clap's own checks (duplicate flags, operand order...): they run where clap_builder
        // has debug assertions, as .ci/run builds it for this test binary
        // (--config 'profile.release.package.clap_builder.debug-assertions=true').
        tree().debug_assert();
        let mut t = tree();
        t.build();
        for (name, ..) in COMMANDS {
            assert!(t.find_subcommand(name).is_some(), "{name}");
        }
        let pod = t.find_subcommand("pod").unwrap();
        assert!(pod.find_subcommand("apply").is_some());
        let run = t.find_subcommand("run").unwrap();
        for f in ["bundle", "detach", "rm", "env", "volume", "pod"] {
            assert!(run.get_arguments().any(|a| a.get_long() == Some(f)), "run --{f}");
        }
    }
}
