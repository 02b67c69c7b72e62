//! capsa-image: the image side of capsa.
//!
//! - [`chunks`]: a byte stream handed between threads (inflate while applying,
//!   unpack while downloading);
//! - [`digest`]: `sha256:<hex>` digests and verifying readers/writers;
//! - [`store`]: the content store (`blobs/sha256/<hex>`, verified, atomic);
//! - [`oci`]: OCI / Docker manifest, index and config types;
//! - [`layout`]: reading OCI image layouts, resolving a tag and platform;
//! - [`docker_archive`]: `docker save` archives (classic and Docker 25+) and `oci-archive` tars;
//! - [`source`]: the [`ImageSource`] trait they share, and the import into the store;
//! - [`reference`]: transport references (`oci:`, `docker-archive:`, `docker://`...);
//! - [`registry`]: pulling from a registry (distribution API v2);
//! - [`images`]: the local image store (names, snapshots, prune);
//! - [`progress`]: per-layer progress bars on a terminal;
//! - [`rootfs`]: container root filesystems (overlay or copy), `unpack`;
//! - [`bundle`]: image config → runtime `config.json`;
//! - [`seccomp`]: the default seccomp profile (RuntimeDefault), docker-format profiles;
//! - [`apply`]: the safe layer applier, capsa's security boundary against
//!   hostile layers (openat2 `RESOLVE_IN_ROOT`, `*at()` syscalls only).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod apply;
pub mod bundle;
pub mod chunks;
pub mod digest;
pub mod docker_archive;
pub mod images;
pub mod layout;
pub mod oci;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
mod sniff;
pub mod source;
pub mod store;

pub use apply::{apply_layer, apply_layer_verified, ApplyError, ApplyOptions, ApplyStats};
pub use digest::Digest;
pub use docker_archive::DockerArchive;
pub use layout::{OciLayout, ResolvedImage};
pub use source::ImageSource;
pub use store::Store;
