//! Managed containers and pods of an unprivileged user: what their `config.json`
//! needs beyond root's (see `capsa_image::rootless` for the store's side), and the
//! pods' namespaces and network ([`net`]).

pub mod net;
pub mod pod;

use capsa_image::rootless::Rootless;
use serde_json::{json, Value};

/// Adapts a managed container's spec to a rootless store: a user namespace with
/// the store's mappings (container root = the user, 1.. = the subordinate range),
/// the overlay the runtime mounts over "/" inside it (`overlay`, first of the
/// mounts), and no mounts an unprivileged user namespace cannot make (cgroupfs;
/// devpts' `gid=5` without a gid range). Cgroup limits stay: the runtime applies
/// them in a delegated cgroup v2 subtree, else skips them with one warning.
pub fn adapt_spec(spec: &mut Value, r: &Rootless, overlay: Option<Value>) -> Result<(), String> {
    let ids = |m: Vec<(u32, u32, u32)>| -> Value {
        m.into_iter().map(|(c, h, n)| json!({"containerID": c, "hostID": h, "size": n})).collect()
    };
    let linux = &mut spec["linux"];
    if let Some(nss) = linux["namespaces"].as_array_mut() {
        if !nss.iter().any(|n| n["type"] == "user") {
            nss.insert(0, json!({"type": "user"}));
        }
        // A joined user namespace (a pod's) has its mappings already.
        if nss.iter().any(|n| n["type"] == "user" && n.get("path").is_some()) {
            linux.as_object_mut().map(|l| (l.remove("uidMappings"), l.remove("gidMappings")));
        } else {
            linux["uidMappings"] = ids(r.uid_mappings());
            linux["gidMappings"] = ids(r.gid_mappings());
        }
    }
    let single = !r.has_ranges();
    if single {
        let u = &spec["process"]["user"];
        let (uid, gid) = (u["uid"].as_u64().unwrap_or(0), u["gid"].as_u64().unwrap_or(0));
        let extra = u["additionalGids"].as_array().is_some_and(|a| !a.is_empty());
        if uid != 0 || gid != 0 || extra {
            return Err(format!(
                "the container runs as uid {uid} gid {gid}{}, but without a subordinate id range \
                 (/etc/subuid, /etc/subgid) only id 0 exists in a rootless container: use --user 0, or ask root \
                 for a range",
                if extra { " (with supplementary groups)" } else { "" }
            ));
        }
    }
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        mounts.retain(|m| m["type"] != "cgroup");
        if single {
            for m in mounts.iter_mut() {
                if let Some(o) = m.get_mut("options").and_then(Value::as_array_mut) {
                    o.retain(|o| o != "gid=5");
                }
            }
        }
        if let Some(o) = overlay {
            mounts.insert(0, o);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use capsa_image::rootless::Range;

    fn user(ranges: bool) -> Rootless {
        let r = ranges.then_some(Range { start: 100000, count: 65536 });
        Rootless { uid: 1001, gid: 1001, subuid: r, subgid: r }
    }

    #[test]
    fn maps_the_user_and_mounts_the_overlay_first() {
        let mut s = capsa_runtime::spec::default_spec();
        let ov = json!({"destination": "/", "type": "overlay", "source": "overlay", "options": ["userxattr"]});
        adapt_spec(&mut s, &user(true), Some(ov.clone())).unwrap();
        assert_eq!(s["linux"]["uidMappings"][1], json!({"containerID": 1, "hostID": 100000, "size": 65536}));
        assert_eq!(s["linux"]["namespaces"][0], json!({"type": "user"}));
        assert_eq!(s["mounts"][0], ov);
        assert!(!s["mounts"].as_array().unwrap().iter().any(|m| m["type"] == "cgroup"));
    }

    #[test]
    fn one_id_refuses_other_users_and_drops_gid5() {
        let mut s = capsa_runtime::spec::default_spec();
        adapt_spec(&mut s, &user(false), None).unwrap();
        assert_eq!(s["linux"]["uidMappings"], json!([{"containerID": 0, "hostID": 1001, "size": 1}]));
        let devpts = s["mounts"].as_array().unwrap().iter().find(|m| m["type"] == "devpts").unwrap().clone();
        assert!(!devpts["options"].as_array().unwrap().contains(&json!("gid=5")));
        let mut s = capsa_runtime::spec::default_spec();
        s["process"]["user"] = json!({"uid": 33, "gid": 33});
        let e = adapt_spec(&mut s, &user(false), None).unwrap_err();
        assert!(e.contains("uid 33") && e.contains("subordinate"), "{e}");
    }
}
