//! The daemon's records: one JSON file per sandbox and per container under
//! `<state_dir>/{sandboxes,containers}/<id>.json`, written atomically, loaded at
//! start-up; in memory an index by id (with unique-prefix lookup, as containerd's
//! truncindex) and the reserved names.
//!
//! Records hold what kubelet sent (the configs, verbatim) and what capsa-cri decided
//! (times, log path, image); the live state (running, exited, IP) comes from the pod
//! crate's records and the shims' files, so nothing here goes stale when a container
//! exits while capsa-cri is down.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proto::{ContainerConfig, PodSandboxConfig};
use capsa_fsutil::{write_atomic, Durability};

/// A sandbox: a capsa pod named by its id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxRecord {
    pub id: String,
    /// The reserved name: `<name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    /// Nanoseconds since the epoch.
    pub created_at: i64,
    /// StopPodSandbox ran: NOTREADY from then on.
    pub stopped: bool,
    /// The pinned network namespace (empty with the host's network).
    pub netns_path: String,
    /// The pod's IPs from CNI, first the primary.
    pub ips: Vec<String>,
}

/// A container of a sandbox: a capsa managed container named by its id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerRecord {
    pub id: String,
    /// The reserved name: `<name>_<sandbox name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    pub sandbox_id: String,
    pub config: ContainerConfig,
    /// The image as kubelet named it, its first repo tag, digest reference and id.
    pub image_name: String,
    pub image_ref: String,
    pub image_id: String,
    pub created_at: i64,
    /// 0 until StartContainer.
    pub started_at: i64,
    /// The CRI log (absolute; empty when kubelet gave no log path).
    pub log_path: String,
    /// StartContainer failed with this: reported EXITED (StartError), removable.
    pub start_error: Option<String>,
}

/// What kind of object a name or id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Sandbox,
    Container,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandboxes",
            Kind::Container => "containers",
        }
    }
    fn what(self) -> &'static str {
        match self {
            Kind::Sandbox => "sandbox",
            Kind::Container => "container",
        }
    }
}

#[derive(Default)]
struct Inner {
    sandboxes: BTreeMap<String, SandboxRecord>,
    containers: BTreeMap<String, ContainerRecord>,
    names: HashMap<(Kind, String), String>,
}

/// The records, on disk and in memory.
pub struct State {
    dir: PathBuf,
    inner: Mutex<Inner>,
    ops: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn read_dir_json<T: for<'de> Deserialize<'de>>(dir: &Path) -> Vec<(PathBuf, T)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let read = || -> std::result::Result<T, Box<dyn std::error::Error>> {
            Ok(serde_json::from_slice(&std::fs::read(&p)?)?)
        };
        match read() {
            Ok(v) => out.push((p, v)),
            Err(e) => tracing::warn!("skipping unreadable record {}: {e}", p.display()),
        }
    }
    out
}

impl State {
    /// Opens the state directory (made if missing, 0700) and loads every record.
    pub fn open(dir: &Path) -> std::io::Result<State> {
        use std::os::unix::fs::PermissionsExt;
        for k in [Kind::Sandbox, Kind::Container] {
            std::fs::create_dir_all(dir.join(k.dir()))?;
        }
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let mut inner = Inner::default();
        for (_, r) in read_dir_json::<SandboxRecord>(&dir.join("sandboxes")) {
            inner.names.insert((Kind::Sandbox, r.name.clone()), r.id.clone());
            inner.sandboxes.insert(r.id.clone(), r);
        }
        for (_, r) in read_dir_json::<ContainerRecord>(&dir.join("containers")) {
            inner.names.insert((Kind::Container, r.name.clone()), r.id.clone());
            inner.containers.insert(r.id.clone(), r);
        }
        Ok(State { dir: dir.to_path_buf(), inner: Mutex::new(inner), ops: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated (every
        // update is one insert or remove), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, kind: Kind, id: &str) -> PathBuf {
        self.dir.join(kind.dir()).join(format!("{id}.json"))
    }

    /// Reserves `name` for `id`; `AlreadyExists` when another object holds it.
    pub fn reserve(&self, kind: Kind, name: &str, id: &str) -> Result<()> {
        let mut g = self.lock();
        match g.names.get(&(kind, name.to_owned())) {
            Some(other) if other != id => {
                let k = kind.what();
                Err(Error::already_exists(format!("{k} name {name:?} is reserved for {k} {other}")))
            }
            _ => {
                g.names.insert((kind, name.to_owned()), id.to_owned());
                Ok(())
            }
        }
    }

    /// Releases a reservation made for `id`.
    pub fn release(&self, kind: Kind, name: &str, id: &str) {
        let mut g = self.lock();
        if g.names.get(&(kind, name.to_owned())).map(String::as_str) == Some(id) {
            g.names.remove(&(kind, name.to_owned()));
        }
    }

    fn write(&self, kind: Kind, id: &str, v: &impl Serialize) -> Result<()> {
        let p = self.path(kind, id);
        let data = serde_json::to_vec(v).map_err(|e| Error::unknown(format!("encode {}: {e}", p.display())))?;
        // 0666 minus the umask, as before (the directory is 0700). Durable: the records
        // are loaded again at start-up, after a reboot too.
        write_atomic(&p, &data, 0o666, Durability::Durable)
            .map_err(|e| Error::unknown(format!("write {}: {e}", p.display())))
    }

    /// Saves (and indexes) a sandbox record.
    pub fn put_sandbox(&self, r: &SandboxRecord) -> Result<()> {
        self.write(Kind::Sandbox, &r.id, r)?;
        self.lock().sandboxes.insert(r.id.clone(), r.clone());
        Ok(())
    }

    /// Saves (and indexes) a container record.
    pub fn put_container(&self, r: &ContainerRecord) -> Result<()> {
        self.write(Kind::Container, &r.id, r)?;
        self.lock().containers.insert(r.id.clone(), r.clone());
        Ok(())
    }

    /// Deletes a record and releases its name.
    pub fn remove(&self, kind: Kind, id: &str) -> Result<()> {
        let p = self.path(kind, id);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::unknown(format!("remove {}: {e}", p.display()))),
        }
        let mut g = self.lock();
        let name = match kind {
            Kind::Sandbox => g.sandboxes.remove(id).map(|r| r.name),
            Kind::Container => g.containers.remove(id).map(|r| r.name),
        };
        if let Some(n) = name {
            if g.names.get(&(kind, n.clone())).map(String::as_str) == Some(id) {
                g.names.remove(&(kind, n));
            }
        }
        drop(g);
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        Ok(())
    }

    /// The full id of `id_or_prefix`: exact, or a unique prefix.
    pub fn resolve(&self, kind: Kind, id_or_prefix: &str) -> Result<String> {
        let g = self.lock();
        let keys: Box<dyn Iterator<Item = &String>> = match kind {
            Kind::Sandbox => Box::new(g.sandboxes.range(id_or_prefix.to_owned()..).map(|(k, _)| k)),
            Kind::Container => Box::new(g.containers.range(id_or_prefix.to_owned()..).map(|(k, _)| k)),
        };
        let hits: Vec<&String> = keys.take_while(|k| k.starts_with(id_or_prefix)).take(2).collect();
        match hits.as_slice() {
            _ if id_or_prefix.is_empty() => Err(Error::not_found(format!("{} id is empty", kind.what()))),
            [one] => Ok((*one).clone()),
            [] => Err(Error::not_found(format!("{} {id_or_prefix:?} not found", kind.what()))),
            _ => Err(Error::unknown(format!("{} id prefix {id_or_prefix:?} is ambiguous", kind.what()))),
        }
    }

    /// A sandbox by id or unique prefix.
    pub fn sandbox(&self, id: &str) -> Result<SandboxRecord> {
        let id = self.resolve(Kind::Sandbox, id)?;
        self.lock().sandboxes.get(&id).cloned().ok_or_else(|| Error::not_found(format!("sandbox {id:?} not found")))
    }

    /// A container by id or unique prefix.
    pub fn container(&self, id: &str) -> Result<ContainerRecord> {
        let id = self.resolve(Kind::Container, id)?;
        self.lock().containers.get(&id).cloned().ok_or_else(|| Error::not_found(format!("container {id:?} not found")))
    }

    /// Every sandbox record, by id.
    pub fn sandboxes(&self) -> Vec<SandboxRecord> {
        self.lock().sandboxes.values().cloned().collect()
    }

    /// Every container record, by id.
    pub fn containers(&self) -> Vec<ContainerRecord> {
        self.lock().containers.values().cloned().collect()
    }

    /// The containers of a sandbox.
    pub fn containers_of(&self, sandbox_id: &str) -> Vec<ContainerRecord> {
        self.lock().containers.values().filter(|c| c.sandbox_id == sandbox_id).cloned().collect()
    }

    /// Serializes the state-changing calls on one object (start, stop, remove, ...):
    /// the guard is held for the length of the operation.
    pub async fn op_lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = self.ops.lock().unwrap_or_else(|p| p.into_inner()).entry(id.to_owned()).or_default().clone();
        m.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(id: &str, name: &str) -> SandboxRecord {
        SandboxRecord { id: id.into(), name: name.into(), ..Default::default() }
    }

    #[test]
    fn records_names_and_prefixes() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(d.path()).unwrap();
        s.reserve(Kind::Sandbox, "web_default_u1_0", "abc1").unwrap();
        assert_eq!(s.reserve(Kind::Sandbox, "web_default_u1_0", "abd2").unwrap_err().code, tonic::Code::AlreadyExists);
        // The same name for a container is another namespace.
        s.reserve(Kind::Container, "web_default_u1_0", "c1").unwrap();
        s.put_sandbox(&sb("abc1", "web_default_u1_0")).unwrap();
        s.put_sandbox(&sb("abd2", "other_default_u2_0")).unwrap();
        assert_eq!(s.resolve(Kind::Sandbox, "abc").unwrap(), "abc1");
        assert_eq!(s.resolve(Kind::Sandbox, "ab").unwrap_err().code, tonic::Code::Unknown);
        assert_eq!(s.resolve(Kind::Sandbox, "x").unwrap_err().code, tonic::Code::NotFound);
        assert_eq!(s.resolve(Kind::Sandbox, "").unwrap_err().code, tonic::Code::NotFound);
        assert_eq!(s.resolve(Kind::Container, "abc1").unwrap_err().code, tonic::Code::NotFound);
        // Reloaded from disk: records and their names.
        let s2 = State::open(d.path()).unwrap();
        assert_eq!(s2.sandboxes().len(), 2);
        assert_eq!(s2.reserve(Kind::Sandbox, "web_default_u1_0", "zzz").unwrap_err().code, tonic::Code::AlreadyExists);
        s2.remove(Kind::Sandbox, "abc1").unwrap();
        s2.reserve(Kind::Sandbox, "web_default_u1_0", "zzz").unwrap();
        assert_eq!(State::open(d.path()).unwrap().sandboxes().len(), 1);
    }
}
