//! Which invocations fork processes that end up inside a container, and so run
//! from a protected copy of the binary (see `capsa_runtime::security::exe`). The
//! other verbs (`state`, `list`, `kill`, ...) never pay for it.

use capsa_runtime::security::exe;

use super::image;

/// Whether `capsa NAME CARGS...` clones container processes in this process.
fn forks_container_processes(name: &str, cargs: &[String]) -> bool {
    match name {
        "create" | "exec" => true,
        // Image mode: `capsa` hands it to `capsa-image`, which protects itself;
        // a detached run is made by capsa-shim through `capsa create`.
        "run" if image::is_image_mode(cargs) => crate::IMAGE_BUILTIN && !image::runs_detached(cargs),
        "run" => true,
        _ => false,
    }
}

/// Re-exec from a protected copy when `name` needs it (does not return then).
/// On failure: the exit code for the error (already reported).
pub fn protect(name: &str, cargs: &[String]) -> Result<(), i32> {
    if !forks_container_processes(name, cargs) {
        return Ok(());
    }
    match exe::ensure_protected() {
        Ok(how) => {
            tracing::debug!("running from {}", how.describe());
            Ok(())
        }
        Err(e) => {
            super::logging::error(&format!("{name}: protect the runtime binary from the container: {e}"));
            Err(if name == "exec" { super::exec::FAILED } else { 1 })
        }
    }
}
