//! A small runc-style argument parser.
//!
//! clap was measured to add ~0.8 MB of peak RSS to every invocation (2.9 MB vs 2.1 MB
//! for `--version`), more than the whole budget by which a runtime on the container
//! start path must stay under crun. This parser is table-driven and allocation-light:
//! `--flag value`, `--flag=value`, `-f value`, single-dash long flags (`-bundle`, as
//! Go's flag packages accept), `--` to end flags.

use std::collections::HashMap;

/// One accepted flag.
pub struct Flag {
    pub long: &'static str,
    pub short: Option<char>,
    /// Takes a value.
    pub value: bool,
    pub help: &'static str,
}

/// Shorthand constructor for the flag tables.
pub const fn flag(long: &'static str, short: Option<char>, value: bool, help: &'static str) -> Flag {
    Flag { long, short, value, help }
}

/// Parsed flags (by long name) and positionals: what this parser makes of a runtime
/// verb's arguments, and what capsa-image's clap parser hands on for the human-facing
/// verbs (`cli/human`), so the verbs' code reads one shape.
#[derive(Default, Debug)]
pub struct Parsed {
    /// Every value of each flag given, by long name; a boolean flag's is `"true"`.
    pub(crate) flags: HashMap<String, Vec<String>>,
    /// The positional arguments, in order.
    pub pos: Vec<String>,
}

impl Parsed {
    /// Last value of a flag.
    pub fn get(&self, long: &str) -> Option<&str> {
        self.flags.get(long).and_then(|v| v.last()).map(|s| s.as_str())
    }
    /// Every value of a repeatable flag.
    pub fn all(&self, long: &str) -> Vec<String> {
        self.flags.get(long).cloned().unwrap_or_default()
    }
    /// Whether a boolean flag was given (`--flag`, or `--flag=true`).
    pub fn on(&self, long: &str) -> bool {
        self.get(long).is_some_and(|v| v != "false")
    }
}

/// Parse `args` against `defs`. With `stop_at_positional`, everything from the first
/// positional on is positional (for `exec ID CMD -x ...`).
pub fn parse(args: &[String], defs: &[Flag], stop_at_positional: bool) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            p.pos.extend(args[i..].iter().cloned());
            break;
        }
        if a.len() < 2 || !a.starts_with('-') {
            p.pos.push(a.clone());
            if stop_at_positional {
                p.pos.extend(args[i..].iter().cloned());
                break;
            }
            continue;
        }
        let body = a.trim_start_matches('-');
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        // Combined short booleans (`-it`, `-df`), when no single-dash long flag has that name.
        if !a.starts_with("--") && name.len() > 1 && inline.is_none() && !defs.iter().any(|d| d.long == name) {
            let shorts: Option<Vec<&Flag>> =
                name.chars().map(|c| defs.iter().find(|d| d.short == Some(c) && !d.value)).collect();
            if let Some(shorts) = shorts {
                for d in shorts {
                    p.flags.entry(d.long.to_owned()).or_default().push("true".into());
                }
                continue;
            }
        }
        let def = if a.starts_with("--") || name.len() > 1 {
            defs.iter().find(|d| d.long == name)
        } else {
            defs.iter().find(|d| d.short == name.chars().next())
        };
        let Some(def) = def else {
            return Err(format!("unknown flag {a:?}"));
        };
        let val = if def.value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args.get(i).ok_or_else(|| format!("flag --{} needs a value", def.long))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            inline.unwrap_or_else(|| "true".into())
        };
        p.flags.entry(def.long.to_owned()).or_default().push(val);
    }
    Ok(p)
}

/// Help text for a flag table.
pub fn help(usage: &str, about: &str, defs: &[Flag]) -> String {
    let mut s = format!("{about}\n\nUsage: {usage}\n");
    if !defs.is_empty() {
        s.push_str("\nOptions:\n");
        for d in defs {
            let short = d.short.map(|c| format!("-{c}, ")).unwrap_or_default();
            let v = if d.value { " VALUE" } else { "" };
            s.push_str(&format!("  {:<28} {}\n", format!("{short}--{}{v}", d.long), d.help));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFS: &[Flag] =
        &[flag("bundle", Some('b'), true, ""), flag("detach", Some('d'), false, ""), flag("env", Some('e'), true, "")];

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn forms() {
        let p = parse(&v(&["--bundle", "/b", "-d", "id"]), DEFS, false).unwrap();
        assert_eq!(p.get("bundle"), Some("/b"));
        assert!(p.on("detach"));
        assert_eq!(p.pos, ["id"]);
        let p = parse(&v(&["-bundle=/x", "id", "-e", "A=1", "--env=B=2"]), DEFS, false).unwrap();
        assert_eq!(p.get("bundle"), Some("/x"));
        assert_eq!(p.all("env"), ["A=1", "B=2"]);
        let p = parse(&v(&["-d", "id", "sh", "-c", "exit 1"]), DEFS, true).unwrap();
        assert_eq!(p.pos, ["id", "sh", "-c", "exit 1"]);
        assert!(parse(&v(&["--nope"]), DEFS, false).is_err());
        let p = parse(&v(&["-dd", "id"]), DEFS, false).unwrap();
        assert!(p.on("detach"));
        assert!(parse(&v(&["-db", "/x"]), DEFS, false).is_err(), "a value flag cannot be combined");
        assert!(parse(&v(&["--bundle"]), DEFS, false).is_err());
    }
}
