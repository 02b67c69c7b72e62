//! capsa-shim: one small monitor per container (as conmon is for podman/CRI-O).
//!
//! It daemonizes, becomes a child subreaper, starts the container through a
//! runc-compatible runtime CLI (`capsa create` / `start` / `delete`), holds the
//! container's stdio (pipes, or a pty received over `--console-socket`), writes the log
//! in the CRI format with a size cap and rotation, records the exit (code, signal, OOM),
//! serves attach on a unix socket, and restarts the container on request with backoff.
//!
//! One thread, one `poll` loop over a signalfd, the stdio fds and the attach sockets;
//! fixed buffers; no async runtime. See [`proto`] for the files and socket protocol a CLI
//! relies on.

pub mod config;
pub mod log;
pub mod pause;
pub mod proto;
pub mod shim;
pub mod sys;
