//! The system calls more than one capsa crate makes, each written once: libc only,
//! no allocation on the success path (the runtime calls some of them between fork
//! and exec, in a child that must not allocate).
//!
//! - [`openat2`]: open a path resolved inside a directory fd (`RESOLVE_IN_ROOT`),
//!   for the runtime's rootfs lookups and the image layer applier;
//! - [`send_with_fd`] / [`recv_with_fd`]: one message with an fd attached
//!   (SCM_RIGHTS), for the console socket (runtime, shim, CRI exec), the seccomp
//!   agent and the runtime's bind-source helper;
//! - [`ProcStat`]: the fields of `/proc/PID/stat` capsa reads (a process's start
//!   time tells a live process from a reused pid: runtime, shim, pod holder, `top`).
//!
//! Errors are [`Errno`](crate::Errno) or `io::Error` (its raw errno kept): each
//! caller adds the step it was doing in its own error type.

mod fdpass;
mod openat2;
mod procstat;

pub use fdpass::{recv_with_fd, send_with_fd};
pub use openat2::{openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
pub use procstat::ProcStat;
