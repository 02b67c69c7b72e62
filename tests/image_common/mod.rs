//! Command helpers shared by the image tests (tests/image_*.rs).
#![allow(dead_code)]

use std::process::{Command, Stdio};

/// Exit code and captured output of a command.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` with stdin from /dev/null and capture its output.
pub fn run(cmd: &mut Command) -> Out {
    let o = cmd.stdin(Stdio::null()).output().expect("spawn");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Run a bash command line.
pub fn sh(cmd: &str) -> Out {
    run(Command::new("bash").args(["-c", cmd]))
}
