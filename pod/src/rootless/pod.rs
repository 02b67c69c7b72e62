//! A rootless pod's creation: [`crate::pods::create_sandbox`] for an unprivileged
//! user's store (namespaces held by a process, pasta for the network).

use capsa_image::images::ImageStore;

use crate::error::{PodError, Result};
use crate::pods::{make_pod_dir, save, write_files, PodCreate, PodRecord};

/// [`crate::pods::create_sandbox`] for a rootless store: the namespaces held by a process, pasta
/// for the network (see [`crate::rootless::net`]).
pub(crate) fn create(
    store: &ImageStore,
    req: &PodCreate,
    r: &capsa_image::rootless::Rootless,
    network: &str,
    during: &mut dyn FnMut(&PodRecord) -> Result<()>,
) -> Result<PodRecord> {
    use crate::rootless::net;
    let network = match network {
        "bridge" | "pasta" => "pasta",
        "none" => "none",
        other => {
            return Err(PodError::msg(format!(
                "pod {}: network {other:?} needs root; a rootless pod has --network pasta (the default) or none",
                req.name
            )))
        }
    };
    let dir = make_pod_dir(store, &req.name)?;
    let hostname = req.hostname.clone().unwrap_or_else(|| req.name.clone());
    let mut rec = PodRecord {
        name: req.name.clone(),
        created: capsa_runtime::time::now_rfc3339(),
        network: network.to_owned(),
        ports: req.ports.clone(),
        hostname: hostname.clone(),
        labels: req.labels.clone(),
        manifest: req.manifest.clone(),
        ..PodRecord::default()
    };
    let made = (|| -> Result<()> {
        let holder = net::start_holder(r, &net::shim_beside_self()?, &hostname)?;
        rec.rootless = Some(net::PodNet { holder, pasta: None });
        save(&dir, &rec)?;
        write_files(&dir, &rec)?;
        during(&rec)?;
        if network == "pasta" {
            let h = rec.rootless.as_ref().map(|n| n.holder.clone()).expect("set above");
            let pasta = net::start_pasta(&h, &rec.ports, &dir)?;
            rec.rootless = Some(net::PodNet { holder: h, pasta: Some(pasta) });
        }
        save(&dir, &rec)
    })();
    if let Err(e) = made {
        if let Some(n) = &rec.rootless {
            n.stop();
        }
        if let Err(ce) = store.remove_tree(&dir) {
            tracing::warn!("clean up pod {}: {ce}", rec.name);
        }
        return Err(e);
    }
    Ok(rec)
}
