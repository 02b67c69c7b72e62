//! Unix socket paths longer than a `sockaddr_un` holds.
//!
//! `sun_path` is 108 bytes, NUL included: a console socket or attach socket under
//! a deep state directory (a CRI daemon's `state_dir/exec/<64-hex id>.sock`) does
//! not fit. The kernel resolves the path like any other, so the same socket is
//! reached through the directory's fd: `/proc/self/fd/N/name` is short whatever
//! the directory's depth. runc has the same limit and no way around it; capsa
//! takes the detour only when the path is too long.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Longest path that fits `sun_path` with its NUL.
const SUN_PATH_MAX: usize = 107;

/// Calls `f` with `path`, or with `/proc/self/fd/N/<name>` (N an fd of the
/// parent directory, open for the call) when `path` is too long.
fn with_short_path<T>(path: &Path, f: impl FnOnce(&Path) -> io::Result<T>) -> io::Result<T> {
    if path.as_os_str().len() <= SUN_PATH_MAX {
        return f(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let dir = std::fs::File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })?;
    let short = Path::new("/proc/self/fd").join(dir.as_raw_fd().to_string()).join(name);
    if short.as_os_str().len() > SUN_PATH_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("socket name {:?} is longer than a unix socket address holds", name),
        ));
    }
    f(&short)
}

/// `UnixStream::connect`, for paths of any length.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    with_short_path(path, |p| UnixStream::connect(p))
}

/// `UnixListener::bind`, for paths of any length.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    with_short_path(path, |p| UnixListener::bind(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_longer_than_sun_path_binds_and_connects() {
        let base = std::env::temp_dir().join(format!("capsa-fsutil-sock-{}", std::process::id()));
        let deep = base.join("d".repeat(60)).join("e".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let path = deep.join("console.sock");
        assert!(path.as_os_str().len() > 108);
        assert!(UnixListener::bind(&path).is_err(), "std refuses the long path itself");
        let l = bind(&path).unwrap();
        assert!(path.exists(), "the socket is at the long path");
        let _c = connect(&path).unwrap();
        let (_s, _) = l.accept().unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_short_path_is_used_as_given() {
        let dir = std::env::temp_dir().join(format!("capsa-fsutil-sock-s-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _l = bind(&path).unwrap();
        connect(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
