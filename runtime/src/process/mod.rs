//! Processes: creating the container's init, exec'ing into it, the sync protocol,
//! terminals, and foreground waiting.

pub mod console;
pub mod create;
pub mod exec;
pub mod finalize;
mod idmap;
pub mod init;
pub mod seccomp_agent;
pub mod signal;
mod spawn;
pub mod sync;
pub mod wait;

pub use idmap::IdMapError;
