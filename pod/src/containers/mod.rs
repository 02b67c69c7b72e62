//! Managed containers: the docker-like layer over images, the runtime and the shim.
//!
//! A managed container `NAME` is a directory `<store>/containers/NAME/` (made by
//! the image store: `config.json`, `rootfs/`, the overlay upper dir, `lock`)
//! plus what this module adds:
//!
//! | path            | content |
//! |-----------------|---------|
//! | `capsa.json`    | [`Meta`]: image, command, restart policy, pod, stop signal |
//! | `shim/`         | the shim's state dir: `shim.json`, `exit`, `attach`, `container.log` (see `capsa_shim::proto`) |
//! | `lost`          | written when the shim was found dead (the container was then killed and deleted) |
//!
//! The runtime container id is the name, under the runtime root the CLI was
//! given (`capsa --root`, default /run/capsa), so `capsa exec NAME ...`,
//! `capsa kill NAME` and `capsa list` work on managed containers as on any other.
//!
//! The store's per-container lock (`lock`, a flock) is handed to the shim, which
//! holds it for as long as the container may run: `capsa image prune` never
//! removes a live container, and `rm` knows when the shim is gone.

mod meta;
mod shim;
mod spec;
mod state;
mod stats;
mod stop;

pub use meta::{config, container_dir, load_meta, log_path, shim_dir, Meta, LOG_MAX_SIZE};
pub use shim::{reopen_log, run_detached, run_detached_with, start, ShimOptions};
pub use spec::{write_bundle, write_bundle_with, Customize, PodJoin, Request, CGROUP_PARENT_ENV};
pub use state::{inspect_state, list, Info, State};
pub use stats::{stats, Sample};
pub use stop::{remove, stop, stop_with, Grace};
