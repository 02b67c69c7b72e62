//! `tests/helpers/syscall.c` built as a static binary (once per test process) for
//! tests that check what a syscall returns inside a container: `syscall NR[,ARG...]`
//! prints one `ARGS ok` or `ARGS errno N` line per call. Needs a C compiler and a
//! static libc (`CC`, default `cc`; Debian: build-essential).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The helper's path on the host, in a directory only it occupies (for bind
/// mounts) under cargo's target tmp dir (a build artifact: nothing to clean up).
pub fn path() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("syscall-helper");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("syscall");
        // Test binaries build it concurrently: compile to a private name, rename.
        let tmp = dir.join(format!(".syscall.{}", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/syscall.c");
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let o = Command::new(&cc)
            .args(["-static", "-O2", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("run {cc} for the syscall helper: {e}"));
        assert!(o.status.success(), "{cc} -static {}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// The directory holding only the helper.
pub fn dir() -> &'static Path {
    path().parent().unwrap()
}

/// Parses the helper's output into (call, None for ok / Some(errno)).
pub fn results(stdout: &str) -> Vec<(String, Option<i32>)> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let call = w.next()?.to_string();
            match (w.next()?, w.next()) {
                ("ok", None) => Some((call, None)),
                ("errno", Some(n)) => Some((call, Some(n.parse().ok()?))),
                _ => None,
            }
        })
        .collect()
}

/// The result of the call `call` (as passed on the command line) in `stdout`.
pub fn result_of(stdout: &str, call: &str) -> Option<i32> {
    results(stdout)
        .into_iter()
        .find(|(c, _)| c == call)
        .unwrap_or_else(|| panic!("no result for {call} in helper output:\n{stdout}"))
        .1
}
