//! Pruning: removing unreferenced blobs and snapshots, leftovers of interrupted work,
//! and containers that are not running.

use std::collections::BTreeSet;
use std::fs;

use crate::digest::Digest;

use super::{chain_ids, io_err, unmount, ImageError, ImageStore, Lock, TMP_PREFIX};

impl ImageStore {
    /// Removes unreferenced blobs and snapshots, leftovers of interrupted
    /// work, and containers that are not running. Returns (blobs, snapshots,
    /// containers) removed.
    pub fn prune(&self) -> Result<(usize, usize, usize), ImageError> {
        self.prune_with(true)
    }

    /// Removes unreferenced blobs and snapshots only: every container, running or not,
    /// keeps the snapshots it uses (a CRI `RemoveImage`: kubelet owns its containers'
    /// lifetime). Returns (blobs, snapshots) removed.
    pub fn prune_images(&self) -> Result<(usize, usize), ImageError> {
        self.prune_with(false).map(|(b, s, _)| (b, s))
    }

    fn prune_with(&self, remove_containers: bool) -> Result<(usize, usize, usize), ImageError> {
        let _l = self.lock()?;
        // Containers not running (their lock is free) are removed first, so
        // their snapshots are freed too.
        let cdir = self.root.join("containers");
        let mut used_chains: BTreeSet<Digest> = BTreeSet::new();
        let mut containers = 0;
        for e in fs::read_dir(&cdir).map_err(io_err("list", &cdir))? {
            let e = e.map_err(io_err("list", &cdir))?;
            let p = e.path();
            match Lock::try_acquire(&p.join("lock")) {
                Ok(Some(lock)) if remove_containers => {
                    let _ = unmount(&p.join("rootfs"));
                    self.remove_tree(&p).map_err(io_err("remove container", &p))?;
                    drop(lock);
                    containers += 1;
                }
                _ => {
                    if let Ok(s) = fs::read_to_string(p.join("layers")) {
                        used_chains.extend(s.lines().filter_map(|l| Digest::from_hex(l).ok()));
                    }
                }
            }
        }
        let mut used_blobs: BTreeSet<Digest> = BTreeSet::new();
        for r in self.list()? {
            used_blobs.insert(r.digest.clone());
            if let Ok((m, c)) = self.load(&r.digest) {
                used_blobs.insert(m.config.digest.clone());
                used_blobs.extend(m.layers.iter().map(|l| l.digest.clone()));
                used_chains.extend(chain_ids(&c.rootfs.diff_ids));
            }
        }
        let mut blobs = 0;
        for d in self.blobs.list()? {
            if !used_blobs.contains(&d) && self.blobs.remove(&d)? {
                blobs += 1;
            }
        }
        let mut snaps = 0;
        let sdir = self.snapshots_dir();
        for e in fs::read_dir(&sdir).map_err(io_err("list", &sdir))? {
            let e = e.map_err(io_err("list", &sdir))?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            let keep = Digest::from_hex(&name).is_ok_and(|d| used_chains.contains(&d));
            if !keep {
                let p = e.path();
                self.remove_tree(&p).map_err(io_err("remove snapshot", &p))?;
                if !name.starts_with(TMP_PREFIX) {
                    snaps += 1;
                }
            }
        }
        Ok((blobs, snaps, containers))
    }
}
