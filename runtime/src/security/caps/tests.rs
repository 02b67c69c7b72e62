//! Unit tests of `caps` (kept out of the source file).

use super::*;
use crate::security::testutil::{assert_child_ok, in_child, Outcome};

fn names(list: &[&str]) -> Option<Vec<String>> {
    Some(list.iter().map(|s| s.to_string()).collect())
}

#[test]
fn parses_names() {
    assert_eq!(cap_from_name("CAP_NET_ADMIN").unwrap(), 12);
    assert_eq!(cap_from_name("NET_ADMIN").unwrap(), 12);
    assert_eq!(cap_from_name("cap_net_admin").unwrap(), 12);
    assert_eq!(cap_from_name("net_admin").unwrap(), 12);
    assert_eq!(cap_from_name("CAP_CHOWN").unwrap(), 0);
    assert_eq!(cap_from_name("CAP_SYS_RESOURCE").unwrap(), 24);
    assert_eq!(cap_from_name("CAP_AUDIT_READ").unwrap(), 37);
    assert_eq!(cap_from_name("CAP_CHECKPOINT_RESTORE").unwrap(), 40);
    for (i, n) in CAP_NAMES.iter().enumerate() {
        assert_eq!(cap_from_name(n).unwrap(), i as u32);
        assert_eq!(cap_name(i as u32), Some(*n));
    }
    for bad in ["", "CAP_", "CAP_FOO", "NET ADMIN", "CAP_NET_ADMIN2"] {
        let e = cap_from_name(bad).unwrap_err();
        assert_eq!(e.to_string(), format!("unknown capability {bad:?}"));
    }
}

#[test]
fn last_cap_matches_kernel() {
    let lc = last_cap();
    assert!((36..64).contains(&lc), "cap_last_cap = {lc}");
}

#[test]
fn from_spec_masks_and_unknowns() {
    let spec = LinuxCapabilities {
        bounding: names(&["CAP_CHOWN", "kill", "CAP_CHECKPOINT_RESTORE"]),
        effective: names(&["CAP_KILL"]),
        inheritable: None,
        permitted: names(&["CAP_CHOWN", "CAP_KILL"]),
        ambient: Some(vec![]),
    };
    let s = CapSets::from_spec_with_last_cap(&spec, 40).unwrap();
    assert_eq!(s.bounding, 1 | 1 << 5 | 1 << 40);
    assert_eq!(s.effective, 1 << 5);
    assert_eq!(s.permitted, 0x21);
    assert_eq!((s.inheritable, s.ambient), (0, 0));
    assert_eq!(mask_names(s.bounding), "CAP_CHOWN|CAP_KILL|CAP_CHECKPOINT_RESTORE");

    // Known but above an older kernel's last cap: skipped with a warning.
    let s = CapSets::from_spec_with_last_cap(&spec, 39).unwrap();
    assert_eq!(s.bounding, 0x21);

    // Unknown, well-formed: error unless the kernel has caps we don't know.
    let future = LinuxCapabilities { bounding: names(&["CAP_FUTURE_THING"]), ..Default::default() };
    assert!(CapSets::from_spec_with_last_cap(&future, 40).is_err());
    assert_eq!(CapSets::from_spec_with_last_cap(&future, 42).unwrap().bounding, 0);
    let garbage = LinuxCapabilities { permitted: names(&["CAP_CHOWN", "not a cap!"]), ..Default::default() };
    let e = CapSets::from_spec_with_last_cap(&garbage, 42).unwrap_err();
    assert_eq!(e.to_string(), "unknown capability \"not a cap!\"");
}

#[test]
fn serde_keys() {
    let json = r#"{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],"inheritable":[],
        "permitted":["CAP_KILL"],"ambient":["CAP_KILL"]}"#;
    let c: LinuxCapabilities = serde_json::from_str(json).unwrap();
    assert_eq!(c.ambient, names(&["CAP_KILL"]));
    assert_eq!(c.inheritable, Some(vec![]));
    let back = serde_json::to_value(&c).unwrap();
    assert_eq!(back["permitted"][0], "CAP_KILL");
    let empty: LinuxCapabilities = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, LinuxCapabilities::default());
}

/// Reads the Cap* lines of /proc/self/status.
fn proc_caps() -> Result<[u64; 5], Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let mut out = [u64::MAX; 5];
    for (i, key) in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"].iter().enumerate() {
        let line = status.lines().find(|l| l.starts_with(key)).ok_or(format!("no {key}"))?;
        out[i] = u64::from_str_radix(line[key.len()..].trim(), 16)?;
    }
    Ok(out)
}

fn small_set() -> LinuxCapabilities {
    let two = names(&["CAP_CHOWN", "CAP_KILL"]);
    LinuxCapabilities {
        bounding: two.clone(),
        effective: two.clone(),
        inheritable: two.clone(),
        permitted: two.clone(),
        ambient: two,
    }
}

#[test]
fn applies_small_set_in_child() {
    let sets = CapSets::from_spec(&small_set()).unwrap();
    assert_child_ok(|| {
        drop_bounding(&sets)?;
        keep_caps_for_setuid()?;
        apply_sets(&sets)?;
        let [inh, prm, eff, bnd, amb] = proc_caps()?;
        if [inh, prm, eff, bnd, amb] != [0x21; 5] {
            return Err(format!("inh={inh:#x} prm={prm:#x} eff={eff:#x} bnd={bnd:#x} amb={amb:#x}").into());
        }
        Ok(0)
    });
}

#[test]
fn keeps_caps_across_setuid_in_child() {
    let mut sets = CapSets::from_spec(&small_set()).unwrap();
    sets.ambient = 1 << 5; // only CAP_KILL ambient
    assert_child_ok(|| {
        drop_bounding(&sets)?;
        keep_caps_for_setuid()?;
        // SAFETY: plain syscalls with integer ids in a single-threaded child.
        if unsafe { libc::setresgid(65534, 65534, 65534) } != 0
            // SAFETY: as above.
            || unsafe { libc::setresuid(65534, 65534, 65534) } != 0
        {
            return Err(format!("setres[ug]id: {}", std::io::Error::last_os_error()).into());
        }
        let [_, prm, eff, ..] = proc_caps()?;
        if prm & 0x21 != 0x21 || eff != 0 {
            return Err(format!("after setuid prm={prm:#x} eff={eff:#x}").into());
        }
        apply_sets(&sets)?;
        let [inh, prm, eff, bnd, amb] = proc_caps()?;
        if [inh, prm, eff, bnd, amb] != [0x21, 0x21, 0x21, 0x21, 0x20] {
            return Err(format!("inh={inh:#x} prm={prm:#x} eff={eff:#x} bnd={bnd:#x} amb={amb:#x}").into());
        }
        Ok(0)
    });
}

#[test]
fn ambient_outside_inheritable_only_warns() {
    let mut sets = CapSets::from_spec(&small_set()).unwrap();
    sets.inheritable = 1; // CAP_CHOWN only; CAP_KILL raise must fail softly
    assert_child_ok(|| {
        apply_sets(&sets)?;
        let amb = proc_caps()?[4];
        if amb != 1 {
            return Err(format!("amb={amb:#x}").into());
        }
        Ok(0)
    });
}

#[test]
fn capset_error_names_request_and_errno() {
    // CAP_SYS_RESOURCE is not in this machine's bounding/permitted set, so
    // asking for it must fail; if a machine has it, drop it first.
    let want = 1u64 | 1 << 24;
    let (outcome, msg) = in_child(|| {
        // SAFETY: PR_CAPBSET_DROP takes an integer capability number.
        unsafe { libc::prctl(libc::PR_CAPBSET_DROP, 24, 0, 0, 0) };
        let sets = CapSets { effective: want, permitted: want, last_cap: last_cap(), ..Default::default() };
        // Permitted may only shrink: remove CAP_SYS_RESOURCE from it first.
        capset(1, 1, 0)?;
        match apply_sets(&sets) {
            Ok(()) => Err("capset unexpectedly succeeded".into()),
            Err(e) if e.errno() == Some(libc::EPERM) => Err(e.into()),
            Err(e) => Err(format!("wrong errno: {e}").into()),
        }
    });
    assert_eq!(outcome, Outcome::Exited(100));
    assert_eq!(
        msg,
        "capset(effective=0x1000001, permitted=0x1000001, inheritable=0x0): \
         Operation not permitted (os error 1)"
    );
}
