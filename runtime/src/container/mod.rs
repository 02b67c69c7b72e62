//! Containers on disk: the persisted state, the state store with per-container locks,
//! and the status derived from the kernel (a state file never lies about a dead process).

mod state;
mod status;
mod store;

pub use state::{Phase, State};
pub use status::{proc_start_time, Status};
pub use store::{validate_id, Store, StoreError};
