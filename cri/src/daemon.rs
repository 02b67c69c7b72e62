//! The daemon's shared context: configuration, the image/container store, the
//! runtime tools, the CNI settings, the records and the event stream.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use capsa_image::images::ImageStore;
use capsa_pod::cni::Cni;
use capsa_pod::pods::NetConfig;
use capsa_pod::runtime_cli::Tools;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::start_error::{io, StartError};
use crate::state::State;

/// Everything a CRI call works with.
pub struct Cri {
    pub cfg: Config,
    pub store: ImageStore,
    pub tools: Tools,
    pub net: NetConfig,
    pub state: State,
    pub events: Events,
    /// The pod CIDR kubelet gave with UpdateRuntimeConfig (reported by Status).
    pub pod_cidr: Mutex<String>,
    /// The last CPU sample per container: (time ns, usage ns), for usage_nano_cores.
    pub cpu_samples: Mutex<HashMap<String, (i64, u64)>>,
    /// The streaming server, once started (its URLs go to kubelet and crictl).
    pub stream: std::sync::OnceLock<Arc<capsa_stream::Server>>,
}

impl Cri {
    /// Opens the store and the records named by `cfg`.
    pub fn open(cfg: Config) -> Result<Cri, StartError> {
        for d in [&cfg.store_dir, &cfg.state_dir, &cfg.runtime_root] {
            std::fs::create_dir_all(d).map_err(io("create", d))?;
        }
        let store = ImageStore::open(&cfg.store_dir)
            .map_err(|source| StartError::Store { path: cfg.store_dir.clone(), source })?;
        let exe = std::env::current_exe().map_err(StartError::OwnPath)?;
        let mut tools = Tools::beside(&exe, cfg.runtime_root.clone());
        if !cfg.runtime_path.is_empty() {
            tools.runtime = PathBuf::from(&cfg.runtime_path);
        }
        if !cfg.shim_path.is_empty() {
            tools.shim = PathBuf::from(&cfg.shim_path);
        }
        for (what, p) in [("runtime", &tools.runtime), ("shim", &tools.shim)] {
            if !p.is_file() {
                return Err(StartError::MissingBinary { what, path: p.clone() });
            }
        }
        let cni = Cni { plugin_dirs: cfg.cni.bin_dirs.clone(), cache_dir: cfg.cni.cache_dir.clone(), ..Cni::new() };
        // The network is the node's: its bridge outlives the pods (as with containerd).
        let net = NetConfig { conf_dir: cfg.cni.conf_dir.clone(), cni, keep_shared: true };
        let state = State::open(&cfg.state_dir).map_err(io("open the records in", &cfg.state_dir))?;
        Ok(Cri {
            cfg,
            store,
            tools,
            net,
            state,
            events: Events::new(),
            pod_cidr: Mutex::new(String::new()),
            cpu_samples: Mutex::new(HashMap::new()),
            stream: std::sync::OnceLock::new(),
        })
    }
}

/// Runs `f` on the blocking pool (filesystem, processes, CNI plugins, locks): the
/// async threads keep serving other calls meanwhile.
pub async fn blocking<T, F>(cri: &Arc<Cri>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Cri) -> Result<T> + Send + 'static,
{
    let c = cri.clone();
    tokio::task::spawn_blocking(move || f(&c)).await.map_err(|e| Error::unknown(format!("internal error: {e}")))?
}
