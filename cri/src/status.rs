//! Status: RuntimeReady, and NetworkReady while a CNI network config exists.

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
        info: if verbose { crate::service::status_info(cri) } else { Default::default() },
        runtime_handlers: vec![RuntimeHandler {
            name: String::new(),
            features: Some(RuntimeHandlerFeatures { recursive_read_only_mounts: false, user_namespaces: false }),
        }],
        features: Some(RuntimeFeatures { supplemental_groups_policy: false }),
    }
}
