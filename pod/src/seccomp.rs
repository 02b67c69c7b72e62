//! Seccomp profiles of managed and pod containers (`--security-opt seccomp=...`,
//! manifests' `securityContext.seccompProfile`), checked against the runtime's rules
//! before anything is created. The default profile itself lives in
//! [`capsa_image::seccomp`].

use std::path::PathBuf;

use capsa_image::bundle::{Seccomp, DEFAULT_CAPS};
use capsa_image::images::ImageStore;
use capsa_runtime::spec::LinuxSeccomp;

use crate::manifest::SeccompProfile;

/// Why a seccomp profile is refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profile does not read, parse or convert to the OCI form.
    #[error(transparent)]
    Convert(#[from] capsa_image::seccomp::SeccompError),
    /// The converted profile is not a valid OCI `linux.seccomp`.
    #[error("seccomp profile: {0}")]
    Decode(#[source] serde_json::Error),
    /// The runtime refuses it (actions, operators, architectures, flags).
    #[error(transparent)]
    Invalid(#[from] capsa_runtime::security::SecurityError),
}

/// Where manifests' `Localhost` profiles live: `<store>/seccomp/` (the kubelet's is
/// `/var/lib/kubelet/seccomp/`).
pub fn profile_dir(store: &ImageStore) -> PathBuf {
    store.root().join("seccomp")
}

/// Checks that a chosen profile converts for the default capabilities and that the
/// runtime accepts it (actions, operators, architectures, flags).
pub fn check(choice: &Seccomp) -> Result<(), ProfileError> {
    let Seccomp::Profile(v) = choice else { return Ok(()) };
    let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let oci = capsa_image::seccomp::from_profile(v, &caps)?;
    let spec: LinuxSeccomp = serde_json::from_value(oci).map_err(ProfileError::Decode)?;
    capsa_runtime::security::seccomp::validate(&spec)?;
    Ok(())
}

/// The profile of a manifest container: its own `seccompProfile`, else the pod's,
/// else RuntimeDefault. `Localhost` files are read (and checked) now.
pub fn for_manifest(store: &ImageStore, profile: Option<&SeccompProfile>) -> Result<Seccomp, ProfileError> {
    match profile {
        None | Some(SeccompProfile::RuntimeDefault) => Ok(Seccomp::Default),
        Some(SeccompProfile::Unconfined) => Ok(Seccomp::Unconfined),
        Some(SeccompProfile::Localhost(rel)) => {
            let v = capsa_image::seccomp::read_file(&profile_dir(store).join(rel))?;
            let choice = Seccomp::Profile(v);
            check(&choice)?;
            Ok(choice)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The default profile is one the runtime accepts and libseccomp compiles, with
    /// the ENOSYS stub (an EPERM default with architectures).
    #[test]
    fn default_profile_compiles() {
        let caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let spec: LinuxSeccomp = serde_json::from_value(capsa_image::seccomp::default_profile(&caps)).unwrap();
        capsa_runtime::security::seccomp::validate(&spec).unwrap();
        let prog = capsa_runtime::security::seccomp::compile(&spec).unwrap();
        assert!(prog.stub_len() > 0 && prog.len() > prog.stub_len(), "{prog:?}");
    }

    #[test]
    fn checks_and_localhost_profiles() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(store_dir.path()).unwrap();
        check(&Seccomp::Default).unwrap();
        check(&Seccomp::Unconfined).unwrap();
        let bad = Seccomp::Profile(
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOPE"}]}),
        );
        assert_eq!(
            check(&bad).unwrap_err().to_string(),
            "seccomp: unknown action \"SCMP_ACT_NOPE\" for syscalls [read]"
        );

        assert_eq!(for_manifest(&store, None).unwrap(), Seccomp::Default);
        assert_eq!(for_manifest(&store, Some(&SeccompProfile::Unconfined)).unwrap(), Seccomp::Unconfined);
        let local = SeccompProfile::Localhost("audit.json".into());
        let e = for_manifest(&store, Some(&local)).unwrap_err().to_string();
        assert!(e.contains(&format!("read {}/seccomp/audit.json: No such file", store.root().display())), "{e}");
        std::fs::create_dir_all(profile_dir(&store)).unwrap();
        let p = json!({"defaultAction": "SCMP_ACT_LOG"});
        std::fs::write(profile_dir(&store).join("audit.json"), p.to_string()).unwrap();
        assert_eq!(for_manifest(&store, Some(&local)).unwrap(), Seccomp::Profile(p));
    }
}
