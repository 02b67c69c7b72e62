//! Compiled seccomp programs, kept so a profile is compiled once per host boot.
//!
//! libseccomp needs ~5 ms (idle) to ~30 ms (busy host) of CPU to turn the
//! RuntimeDefault profile into BPF for x86_64 + x86 + x32, on every container
//! start and every exec. [`warm`] runs in the runtime process before it clones
//! the container's init (or an exec'd process): it reads the program from
//! `<root>/.seccomp-cache/` or compiles and stores it there, and keeps it in
//! memory, where the cloned child finds it ([`memoized`], used by
//! `seccomp::compile`). A file is used only if it holds exactly the profile asked
//! for (the whole serialized profile is compared, so a hash collision cannot
//! hand one container another's filter), was written for this libseccomp
//! version, this program format and this architecture, is intact (checksum),
//! and is owned by us and not writable by others. Anything odd is a miss: the
//! profile is compiled as before and the entry rewritten.
//!
//! File: `CAPSASC1`, u32 key length, key, program (`Program::to_bytes`), u64
//! FNV-1a of everything before it.

use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;

use super::seccomp::{self, LinuxSeccomp};
use super::seccomp_bpf::Program;

/// Bump when the stub or the file layout changes.
const FORMAT: u32 = 1;
const MAGIC: &[u8; 8] = b"CAPSASC1";
/// The cache directory under the state root (a name no container id can take).
pub const CACHE_DIR: &str = ".seccomp-cache";
/// Entries beyond this are not written (the cache lives on tmpfs until reboot).
const MAX_ENTRIES: usize = 256;

static MEMO: Mutex<Option<(LinuxSeccomp, Program)>> = Mutex::new(None);

/// [`warm`] for a container's profile, with the cache under the runtime's state root.
pub fn warm_in(state_root: &Path, spec: Option<&LinuxSeccomp>) {
    if let Some(s) = spec {
        warm(s, &state_root.join(CACHE_DIR));
    }
}

/// The program compiled (or read) for `spec` by [`warm`] in this process, if any.
pub fn memoized(spec: &LinuxSeccomp) -> Option<Program> {
    let memo = MEMO.lock().unwrap_or_else(|e| e.into_inner());
    memo.as_ref().filter(|(s, _)| s == spec).map(|(_, p)| p.clone())
}

/// Makes `spec`'s program available to [`memoized`]: from `dir` when cached,
/// else compiled (and stored in `dir`). Never fails: on any error the child
/// compiles the profile itself and reports what is wrong.
pub fn warm(spec: &LinuxSeccomp, dir: &Path) {
    if memoized(spec).is_some() {
        return;
    }
    let Some(key) = key(spec) else { return };
    let file = dir.join(format!("{:016x}", fnv1a(&key)));
    let prog = match read(&file, &key) {
        Some(p) => p,
        None => match seccomp::build_filter(spec).and_then(|ctx| Program::new(spec, &ctx)) {
            Ok(p) => {
                if let Err(e) = write(dir, &file, &key, &p) {
                    tracing::debug!("seccomp cache: not stored in {}: {e}", dir.display());
                }
                p
            }
            Err(e) => {
                tracing::debug!("seccomp cache: not compiled ahead: {e}");
                return;
            }
        },
    };
    *MEMO.lock().unwrap_or_else(|e| e.into_inner()) = Some((spec.clone(), prog));
}

/// What a cache entry must match: format, libseccomp version, architecture and
/// the profile itself.
fn key(spec: &LinuxSeccomp) -> Option<Vec<u8>> {
    let v = libseccomp::ScmpVersion::current().ok()?;
    let mut k = format!(
        "capsa seccomp cache {FORMAT} libseccomp {}.{}.{} {}\n",
        v.major,
        v.minor,
        v.micro,
        std::env::consts::ARCH
    )
    .into_bytes();
    serde_json::to_writer(&mut k, spec).ok()?;
    Some(k)
}

fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Owned by us and writable by nobody else.
fn trusted(m: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid cannot fail.
    m.uid() == unsafe { libc::geteuid() } && m.mode() & 0o022 == 0
}

fn read(file: &Path, key: &[u8]) -> Option<Program> {
    let dir = file.parent()?;
    if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && trusted(&m)) {
        return None;
    }
    let mut f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(file).ok()?;
    let m = f.metadata().ok()?;
    if !m.is_file() || !trusted(&m) || m.len() > 1 << 20 {
        return None;
    }
    let mut data = Vec::with_capacity(m.len() as usize);
    f.read_to_end(&mut data).ok()?;
    let (body, sum) = data.split_at_checked(data.len().checked_sub(8)?)?;
    if fnv1a(body).to_ne_bytes() != sum {
        return None;
    }
    let rest = body.strip_prefix(MAGIC.as_slice())?;
    let (len, rest) = take_u32(rest)?;
    let (stored, rest) = rest.split_at_checked(len as usize)?;
    if stored != key {
        return None;
    }
    Program::from_bytes(rest)
}

fn take_u32(b: &[u8]) -> Option<(u32, &[u8])> {
    let (n, rest) = b.split_at_checked(4)?;
    Some((u32::from_ne_bytes(n.try_into().ok()?), rest))
}

fn write(dir: &Path, file: &Path, key: &[u8], prog: &Program) -> std::io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    if std::fs::read_dir(dir)?.count() >= MAX_ENTRIES {
        return Ok(());
    }
    let mut data = MAGIC.to_vec();
    data.extend_from_slice(&(key.len() as u32).to_ne_bytes());
    data.extend_from_slice(key);
    data.extend_from_slice(&prog.to_bytes());
    data.extend_from_slice(&fnv1a(&data).to_ne_bytes());
    // Volatile: a cache (on tmpfs until reboot); a torn entry fails its checksum.
    capsa_fsutil::write_atomic(file, &data, 0o600, capsa_fsutil::Durability::Volatile).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::seccomp::LinuxSyscall;

    fn spec(errno: u32) -> LinuxSeccomp {
        LinuxSeccomp {
            default_action: "SCMP_ACT_ERRNO".into(),
            architectures: Some(vec!["SCMP_ARCH_X86_64".into(), "SCMP_ARCH_X86".into()]),
            syscalls: Some(vec![LinuxSyscall {
                names: vec!["read".into(), "write".into(), "exit_group".into()],
                action: "SCMP_ACT_ERRNO".into(),
                errno_ret: Some(errno),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    /// A scratch directory removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("capsa-seccomp-cache-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            Scratch(p)
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
    }

    #[test]
    fn stored_read_back_and_verified() {
        let t = Scratch::new("read");
        let dir = t.0.join("cache");
        let s = spec(5);
        let compiled = seccomp::build_filter(&s).and_then(|c| Program::new(&s, &c)).unwrap();
        let k = key(&s).unwrap();
        let file = dir.join(format!("{:016x}", fnv1a(&k)));
        assert!(read(&file, &k).is_none());
        write(&dir, &file, &k, &compiled).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert!(read(&file, &k).unwrap() == compiled);
        assert_eq!(entries(&dir), vec![file.clone()], "no temp file left");

        // Another profile under the same name (a collision): not used.
        let other = key(&spec(6)).unwrap();
        assert!(read(&file, &other).is_none());
        // Writable by others, or truncated: not used.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert!(read(&file, &k).is_none());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let data = std::fs::read(&file).unwrap();
        std::fs::write(&file, &data[..data.len() - 3]).unwrap();
        assert!(read(&file, &k).is_none());
        // One instruction changed: the checksum no longer matches.
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        std::fs::write(&file, &bad).unwrap();
        assert!(read(&file, &k).is_none());
        std::fs::write(&file, &data).unwrap();
        assert!(read(&file, &k).unwrap() == compiled);
        // A symlink in its place: not followed.
        std::fs::remove_file(&file).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &file).unwrap();
        assert!(read(&file, &k).is_none());
    }

    #[test]
    fn warm_memoizes_and_fills_the_cache() {
        let t = Scratch::new("warm");
        let dir = t.0.join("cache");
        let s = spec(7);
        assert!(memoized(&s).is_none());
        warm(&s, &dir);
        let p = memoized(&s).expect("memoized");
        assert_eq!(entries(&dir).len(), 1);
        assert!(memoized(&spec(8)).is_none(), "another profile is not served");
        // A fresh process (memo cleared) reads the same program back.
        *MEMO.lock().unwrap() = None;
        warm(&s, &dir);
        assert!(memoized(&s).unwrap() == p);
        // A profile libseccomp refuses: nothing memoized, nothing stored, no panic.
        let bad = LinuxSeccomp { default_action: "SCMP_ACT_BOGUS".into(), ..spec(9) };
        warm(&bad, &dir);
        assert!(memoized(&bad).is_none());
        assert_eq!(entries(&dir).len(), 1);
    }
}
