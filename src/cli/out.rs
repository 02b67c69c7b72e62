//! Standard output for commands whose reader may go away (`events ID | head`).

use std::io::Write;

/// Write `text` and a newline to stdout, flushed. A reader that closed the pipe
/// ends the process quietly (see `closed_pipe`); other write errors are returned.
pub fn line(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => closed_pipe(),
        r => r,
    }
}

/// The reader of stdout is gone: end the way runc, docker and every Go program do,
/// killed by SIGPIPE without a word (a shell shows status 141; `set -o pipefail`
/// sees the same as with runc). Rust ignores SIGPIPE, so restore its default first.
pub fn closed_pipe() -> ! {
    // SAFETY: signal(2) and raise(3) with constant arguments; nothing else runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached: the default action of SIGPIPE ends the process.
    std::process::exit(128 + libc::SIGPIPE)
}

/// Make every `println!` into a closed pipe end as `closed_pipe` does: std panics
/// with "failed printing to stdout: Broken pipe" there; other panics keep the
/// default report.
pub fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("os error 32") {
            closed_pipe();
        }
        default(info);
    }));
}
