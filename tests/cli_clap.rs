//! The human-facing verbs' clap surface (capsa-image, reached through `capsa`): the
//! shell completions and the man page generated from it, `--help`, usage errors; and
//! the runtime binary staying free of clap. Needs no root: nothing here runs a
//! container or opens a store.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn capsa(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_capsa")).args(args).output().expect("run capsa");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn ok(args: &[&str]) -> String {
    let o = capsa(args);
    assert_eq!(o.code, 0, "capsa {args:?}: {}{}", o.stdout, o.stderr);
    o.stdout
}

/// Whether `prog` is on PATH.
fn have(prog: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(prog).is_file()))
}

/// Feeds `input` to `prog args...`; returns (success, stderr).
fn pipe(prog: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut c = Command::new(prog)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{prog}: {e}"));
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Writes `text` into a temp file for a shell's syntax check.
fn script(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("completion");
    std::fs::write(&f, text).unwrap();
    (dir, f)
}

fn syntax_ok(shell: &str, flag: &str, file: &Path) {
    let o = Command::new(shell).arg(flag).arg(file).output().unwrap();
    assert!(o.status.success(), "{shell} {flag}: {}", String::from_utf8_lossy(&o.stderr));
}

const VERBS: &[&str] =
    &["create", "run", "exec", "image", "pod", "lab", "logs", "stop", "inspect", "completion", "man"];

#[test]
fn bash_completion_is_valid_bash_with_every_verb() {
    let text = ok(&["completion", "bash"]);
    for v in VERBS.iter().chain(&["apply", "import", "bundle", "--store", "--namespaces"]) {
        assert!(text.contains(v), "bash completion lacks {v}");
    }
    let (_dir, f) = script(&text);
    syntax_ok("bash", "-n", &f);
    // And it completes: a subverb, a verb's flags after a global flag, a shell.
    for (words, want) in [
        ("capsa pod cr", "create"),
        ("capsa --root /x logs --t", "--tail --timestamps"),
        ("capsa completion f", "fish"),
    ] {
        let call = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _capsa capsa \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; echo \"${{COMPREPLY[*]}}\"",
            f.display()
        );
        let o = Command::new("bash").arg("-c").arg(&call).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), want, "{words}: {}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn zsh_and_fish_completions_name_the_verbs() {
    for (shell, check) in [("zsh", "-n"), ("fish", "--no-execute")] {
        let text = ok(&["completion", shell]);
        assert!(text.len() > 1000, "{shell}: {text}");
        for v in VERBS {
            assert!(text.contains(v), "{shell} completion lacks {v}");
        }
        if have(shell) {
            let (_dir, f) = script(&text);
            syntax_ok(shell, check, &f);
        } else {
            eprintln!("{shell} is not installed: its syntax is not checked");
        }
    }
    let o = capsa(&["completion", "tcsh"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("tcsh"), "{}", o.stderr);
}

#[test]
fn man_page_renders_and_documents_every_verb() {
    let page = ok(&["man"]);
    assert!(page.lines().any(|l| l.starts_with(".TH CAPSA 1")), "{page}");
    for v in ["capsa create", "capsa pod apply", "capsa image bundle", "capsa lab check", "capsa logs"] {
        assert!(page.contains(&format!(".SS \"{v}\"")), "no section for {v}");
    }
    let verb = ok(&["man", "pod", "create"]);
    assert!(verb.lines().any(|l| l.starts_with(".TH CAPSA-POD-CREATE 1")), "{verb}");
    assert!(verb.contains("network"), "{verb}");
    assert_ne!(capsa(&["man", "nosuch"]).code, 0);
    if have("groff") {
        for p in [&page, &verb] {
            let (ok, err) = pipe("groff", &["-man", "-Tutf8", "-ww", "-z"], p);
            assert!(ok && err.is_empty(), "groff: {err}");
        }
    } else {
        eprintln!("groff is not installed: the page is not rendered");
    }
}

#[test]
fn help_lists_the_subcommands() {
    let want = ["import", "pull", "ls", "inspect", "rm", "prune", "unpack", "bundle", "--store"];
    let help = ok(&["image", "--help"]);
    for w in want {
        assert!(help.contains(w), "image --help lacks {w}: {help}");
    }
    // No verb: the same listing, and a usage error's status.
    let o = capsa(&["image"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stdout.contains("unpack"), "{}", o.stdout);
    let help = ok(&["pod", "--help"]);
    for w in ["create", "ls", "apply", "delete", "logs"] {
        assert!(help.contains(w), "pod --help lacks {w}: {help}");
    }
    assert!(ok(&["pod", "create", "--help"]).contains("--publish"));
    assert!(ok(&["lab", "--help"]).contains("CAPSA_LABS"));
    assert!(ok(&["logs", "--help"]).contains("--timestamps"));
}

#[test]
fn a_bad_flag_is_a_clear_error() {
    for (args, path, flag) in [
        (&["pod", "rm", "--bogus", "p"][..], "pod rm", "--bogus"),
        (&["image", "ls", "--nope"][..], "image ls", "--nope"),
        (&["logs", "--follw", "c"][..], "logs", "--follw"),
    ] {
        let o = capsa(args);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        let line = o.stderr.trim();
        assert!(line.starts_with(&format!("capsa: {path}: unexpected argument '{flag}'")), "{line}");
        assert!(line.ends_with(&format!("(see 'capsa {path} --help')")) && !line.contains('\n'), "{line}");
    }
    // A near miss is named.
    assert!(capsa(&["logs", "--follw", "c"]).stderr.contains("--follow"));
    // A missing operand, an unknown verb.
    let o = capsa(&["logs"]);
    assert!(o.code == 1 && o.stderr.contains("<NAME>"), "{}", o.stderr);
    let o = capsa(&["pod", "creat", "x"]);
    assert!(o.code == 1 && o.stderr.contains("'create'"), "{}", o.stderr);
}

/// The runtime binary links no clap (capsa-image does: the check would see it).
#[test]
fn the_runtime_binary_has_no_clap() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_capsa"));
    let has = |p: &Path| std::fs::read(p).unwrap().windows(4).any(|w| w == b"clap");
    assert!(!has(&bin), "{} links clap", bin.display());
    assert!(has(&bin.with_file_name("capsa-image")));
}
