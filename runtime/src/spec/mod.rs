//! The OCI runtime-spec `config.json`: serde types, loading and validation.
//!
//! capsa keeps its own types instead of the `oci-spec` crate: they parse in one pass
//! with no builders, accept every runtime-spec 1.0–1.3 document (unknown fields are
//! ignored, as the spec asks), and let validation errors name the exact field.

mod defaults;
mod types;
mod validate;

pub use defaults::{default_spec, features, make_rootless};
pub use types::*;
pub use validate::{load, validate, SpecError};

/// Oldest and newest runtime-spec versions this runtime accepts.
pub const OCI_VERSION_MIN: &str = "1.0.0";
/// Newest runtime-spec version understood (what `capsa spec` writes).
pub const OCI_VERSION_MAX: &str = "1.3.0";
