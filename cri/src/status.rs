//! Status: RuntimeReady, and NetworkReady while a CNI network config exists.

use std::collections::HashMap;

use crate::daemon::Cri;
use crate::proto::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus, StatusResponse,
};

/// The Status answer.
pub fn status(cri: &Cri, verbose: bool) -> StatusResponse {
    let runtime =
        RuntimeCondition { r#type: "RuntimeReady".into(), status: true, reason: String::new(), message: String::new() };
    let network = match capsa_pod::cni::first_network(&cri.net.conf_dir) {
        Ok(Some(_)) => RuntimeCondition { r#type: "NetworkReady".into(), status: true, ..Default::default() },
        Ok(None) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: format!(
                "Network plugin returns error: cni plugin not initialized (no network config in {})",
                cri.net.conf_dir.display()
            ),
        },
        Err(e) => RuntimeCondition {
            r#type: "NetworkReady".into(),
            status: false,
            reason: "NetworkPluginNotReady".into(),
            message: format!("Network plugin returns error: {e}"),
        },
    };
    StatusResponse {
        status: Some(RuntimeStatus { conditions: vec![runtime, network] }),
        info: if verbose { status_info(cri) } else { Default::default() },
        runtime_handlers: vec![RuntimeHandler {
            name: String::new(),
            features: Some(RuntimeHandlerFeatures { recursive_read_only_mounts: false, user_namespaces: false }),
        }],
        features: Some(RuntimeFeatures { supplemental_groups_policy: false }),
    }
}

/// The `info` map of a verbose Status: capsa-cri's configuration and CNI state.
pub fn status_info(c: &Cri) -> HashMap<String, String> {
    let cfg = serde_json::json!({
        "listen": c.cfg.listen,
        "stateDir": c.cfg.state_dir,
        "storeDir": c.cfg.store_dir,
        "runtimeRoot": c.cfg.runtime_root,
        "runtime": c.tools.runtime,
        "shim": c.tools.shim,
        "cgroupDriver": c.cfg.cgroup_driver,
        "defaultSeccompProfile": c.cfg.default_seccomp_profile,
        "cni": {"confDir": c.cfg.cni.conf_dir, "binDirs": c.cfg.cni.bin_dirs, "cacheDir": c.cfg.cni.cache_dir},
        "registry": {"insecure": c.cfg.registry.insecure, "mirrors": c.cfg.registry.mirrors},
        "streamAddress": c.cfg.stream.address,
        "podCIDR": *c.pod_cidr.lock().unwrap_or_else(|p| p.into_inner()),
    });
    HashMap::from([("config".to_owned(), cfg.to_string())])
}
