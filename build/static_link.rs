//! Links one binary of the package statically against glibc (`libc.a`), from a
//! build script: `static_link::bin("capsa-shim")`.
//!
//! Why: a dynamically linked capsa binary maps the whole of `libc.so.6`, and the
//! kernel's fault-around makes ~850 KB of it resident in every process; the static
//! binary carries only the libc objects it uses. Measured: the idle shim's RSS
//! 1,400 -> ~950 KB (CI profile), and the runtime starts without the dynamic loader.
//!
//! How, on stable Cargo (which has no per-binary `-C target-feature=+crt-static`):
//! the build script passes `-static-pie` to that binary's link, and the linker
//! wrapper `build/linker/cc` (set in `.cargo/config.toml`) then drops rustc's
//! `-Wl,-Bdynamic`, so `-lc`, `-lm`, ... resolve to the static archives. rustc also
//! asks for `-lgcc_s`, which has no archive: a directory holding `libgcc_s.a`, a
//! link to its static counterpart `libgcc_eh.a`, goes on that binary's search
//! path. Only the named binary: the package's other binaries and tests link as
//! usual. `CAPSA_LINK_DYNAMIC=1` turns it off; a toolchain without the static
//! archives (`libc6-dev` ships them) gets a warning and a dynamic binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Links binary `bin` of this package statically (see the module docs).
pub fn bin(bin: &str) {
    println!("cargo:rerun-if-env-changed=CAPSA_LINK_DYNAMIC");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("CAPSA_LINK_DYNAMIC") == "1" || var("CARGO_CFG_TARGET_OS") != "linux" || var("CARGO_CFG_TARGET_ENV") != "gnu"
    {
        return;
    }
    let dir = PathBuf::from(var("OUT_DIR")).join("static-libs");
    match link_dir(&dir) {
        Ok(()) => {
            println!("cargo:rustc-link-arg-bin={bin}=-static-pie");
            println!("cargo:rustc-link-arg-bin={bin}=-L{}", dir.display());
        }
        Err(why) => println!("cargo:warning={bin} is linked dynamically: {why}"),
    }
}

/// Checks for the static C library and fills `dir` (see the module docs).
fn link_dir(dir: &Path) -> Result<(), String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // libc.a is only checked for; libgcc_s.a is the link rustc's -lgcc_s finds.
    for (name, archive) in [(None, "libc.a"), (Some("libgcc_s.a"), "libgcc_eh.a")] {
        let out = Command::new(&cc)
            .arg(format!("-print-file-name={archive}"))
            .output()
            .map_err(|e| format!("{cc} -print-file-name: {e}"))?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        // The compiler prints the bare name when it has no such file.
        if !path.is_absolute() || !path.exists() {
            return Err(format!("{cc} has no {archive} (install libc6-dev)"));
        }
        let Some(name) = name else { continue };
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&path, &link).map_err(|e| format!("{}: {e}", link.display()))?;
    }
    Ok(())
}
