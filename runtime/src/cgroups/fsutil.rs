//! Small cgroupfs helpers: one-write file writes with explicit errors,
//! mkdir -p that records what it created, rmdir with EBUSY retries.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// Open a cgroup file for writing: O_WRONLY|O_CLOEXEC (std always adds
/// O_CLOEXEC), no O_CREAT, no O_TRUNC.
pub fn open_w(path: &Path, value: &str) -> Result<File, CgroupError> {
    OpenOptions::new().write(true).open(path).map_err(|e| write_err(path, value, e))
}

/// Exactly one write(2) of `value`; a short write is an error.
pub fn write_once(f: &mut File, path: &Path, value: &str) -> Result<(), CgroupError> {
    crate::explain::step(crate::explain::Kind::Cgroup, || {
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        crate::explain::Step::new(
            format!("{file} = {}: {}", value.trim(), super::meaning::meaning(&file, value)),
            format!("write({}, {:?})", path.display(), value),
        )
        .field("file", path.display().to_string())
        .field("value", value)
    });
    match f.write(value.as_bytes()) {
        Ok(n) if n == value.len() => Ok(()),
        Ok(n) => Err(write_err(path, value, io::Error::other(format!("short write: {n} of {} bytes", value.len())))),
        Err(e) => Err(write_err(path, value, e)),
    }
}

pub fn write_err(path: &Path, value: &str, e: io::Error) -> CgroupError {
    CgroupError::Write { path: path.to_path_buf(), value: value.to_string(), source: e }
}

/// Write `value` to `dir/file` with a single write(2).
pub fn write_file(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let p = dir.join(file);
    let mut f = open_w(&p, value)?;
    tracing::debug!("cgroup: write {value:?} to {}", p.display());
    write_once(&mut f, &p, value)
}

/// Read `dir/file` (whole file, as the kernel returns it).
pub fn read_file(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let p = dir.join(file);
    let mut s = String::new();
    File::open(&p)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(|e| CgroupError::Read { path: p.clone(), source: e })?;
    Ok(s)
}

/// Read `dir/file` and trim whitespace.
pub fn read_trim(dir: &Path, file: &str) -> Result<String, CgroupError> {
    Ok(read_file(dir, file)?.trim().to_string())
}

/// Parse a whole-number cgroup file.
pub fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let s = read_trim(dir, file)?;
    s.parse().map_err(|_| CgroupError::Read {
        path: dir.join(file),
        source: io::Error::new(io::ErrorKind::InvalidData, format!("not a number: {s:?}")),
    })
}

pub fn is_enoent(e: &CgroupError) -> bool {
    e.errno() == Some(libc::ENOENT)
}

/// `mkdir -p dir` below `mount` (which must exist). Appends every directory it
/// created itself to `created`, top-down. A directory that already exists
/// (EEXIST, e.g. created concurrently by someone else) is not recorded.
///
/// A shared ancestor may vanish between our EEXIST and the next mkdir (the
/// last container using it removed it): ENOENT below the mount restarts the
/// walk, a few times, instead of failing the create.
pub fn mkdir_p(mount: &Path, dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let rel = dir.strip_prefix(mount).map_err(|_| CgroupError::InvalidPath {
        path: dir.display().to_string(),
        reason: format!("not below the cgroup mount {}", mount.display()),
    })?;
    let mut attempts = 0;
    'walk: loop {
        let mut cur = mount.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            match std::fs::create_dir(&cur) {
                Ok(()) => {
                    crate::explain::step(crate::explain::Kind::Cgroup, || {
                        crate::explain::Step::new(
                            format!("new cgroup {}: the kernel fills it with the controllers' files", cur.display()),
                            format!("mkdir({})", cur.display()),
                        )
                        .field("dir", cur.display().to_string())
                    });
                    created.push(cur.clone())
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 5 => {
                    attempts += 1;
                    tracing::debug!(path = %cur.display(), "cgroup parent removed concurrently; retrying mkdir -p");
                    continue 'walk;
                }
                Err(e) => {
                    return Err(CgroupError::Mkdir { path: cur, source: e });
                }
            }
        }
        return Ok(());
    }
}

/// rmdir that retries EBUSY until `deadline` (processes may still be exiting).
/// A missing directory is success.
pub fn rmdir_retry(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    let mut sleep = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(CgroupError::Remove { path: dir.to_path_buf(), source: e });
            }
        }
    }
}

/// Remove `dir` and every cgroup directory below it, deepest first.
pub fn rmdir_tree(dir: &Path, deadline: Instant) -> Result<(), CgroupError> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            for ent in rd.flatten() {
                if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rmdir_tree(&ent.path(), deadline)?;
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CgroupError::Read { path: dir.to_path_buf(), source: e });
        }
    }
    rmdir_retry(dir, deadline)
}

/// PIDs in `dir/cgroup.procs` and in every cgroup below it. A missing `dir`
/// yields nothing.
pub fn procs_recursive(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    match read_file(dir, "cgroup.procs") {
        Ok(s) => out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
        Err(e) if is_enoent(&e) => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for ent in rd.flatten() {
            if ent.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                procs_recursive(&ent.path(), out)?;
            }
        }
    }
    Ok(())
}
