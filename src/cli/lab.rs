//! `capsa lab list | show N | start N | solve N | check N | reset N`: the exercises
//! in `labs/` (one folder each: README.md, README.ko.md, setup.sh, solution.sh,
//! wrong.sh, check.sh, reset.sh). The driver finds the labs, runs a lab's script
//! with bash and this capsa, and returns its exit status (`check`: 0 PASS, 1 FAIL).
//! Linked into `capsa-image` only, whose clap parser (`cli/human/lab.rs`) defines the
//! verbs and their help.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::args::Parsed;

/// Where the labs are.
fn labs_dir() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("CAPSA_LABS") {
        return Ok(PathBuf::from(d));
    }
    let exe = std::fs::read_link("/proc/self/exe").context("find this binary (/proc/self/exe)")?;
    let candidates = [
        exe.parent().and_then(Path::parent).map(|p| p.join("share/capsa/labs")),
        Some(PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/labs"))),
    ];
    candidates.into_iter().flatten().find(|d| d.join("lib.sh").is_file()).context(
        "no labs found: set CAPSA_LABS to the labs/ directory of a capsa checkout (make install puts them in \
         PREFIX/share/capsa/labs)",
    )
}

/// The lab folders (`NN-topic`), in order.
fn all(dir: &Path) -> Result<Vec<(u32, String)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if let Some(n) = name.split('-').next().and_then(|n| n.parse::<u32>().ok()) {
            if dir.join(&name).join("check.sh").is_file() {
                v.push((n, name));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// The lab named by `arg`: its number or folder name.
fn find(dir: &Path, arg: &str) -> Result<String> {
    let labs = all(dir)?;
    let hit = match arg.parse::<u32>() {
        Ok(n) => labs.iter().find(|l| l.0 == n),
        Err(_) => labs.iter().find(|l| l.1 == arg),
    };
    match hit {
        Some(l) => Ok(l.1.clone()),
        None => bail!("lab {arg:?}: no such lab in {} (see 'capsa lab list')", dir.display()),
    }
}

/// The title line of a README ("# Lab 01: the pid namespace ..." without "# ").
fn title(readme: &Path) -> String {
    let text = std::fs::read_to_string(readme).unwrap_or_default();
    let line = text.lines().next().unwrap_or("").trim_start_matches('#').trim();
    line.split_once(": ").map_or(line, |(_, t)| t).to_string()
}

/// `capsa lab VERB [N]`: runs `verb` on its parsed arguments; returns the exit status.
pub fn main(verb: &str, p: &Parsed) -> Result<i32> {
    let dir = labs_dir()?;
    if verb == "list" {
        for (n, name) in all(&dir)? {
            println!("{n:>2}  {:<60} {name}", title(&dir.join(&name).join("README.md")));
        }
        return Ok(0);
    }
    let Some(arg) = p.pos.first() else {
        bail!("lab {verb}: which lab? (capsa lab {verb} N; see 'capsa lab list')");
    };
    let lab = find(&dir, arg)?;
    let script = match verb {
        "show" => {
            let f = if p.on("ko") { "README.ko.md" } else { "README.md" };
            let p = dir.join(&lab).join(f);
            print!("{}", std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?);
            return Ok(0);
        }
        "start" => "setup.sh",
        "check" => "check.sh",
        "solve" => "solution.sh",
        "reset" => "reset.sh",
        v => bail!("lab: unknown verb {v:?} (list, show, start, check, solve, reset)"),
    };
    let path = dir.join(&lab).join(script);
    let exe = std::fs::read_link("/proc/self/exe").context("find this binary (/proc/self/exe)")?;
    let capsa = exe.with_file_name("capsa");
    let mut cmd = Command::new("bash");
    cmd.arg(&path);
    if std::env::var_os("CAPSA").is_none() && capsa.is_file() {
        cmd.env("CAPSA", &capsa);
    }
    let status = cmd.status().with_context(|| format!("run bash {}", path.display()))?;
    Ok(status.code().unwrap_or(1))
}
