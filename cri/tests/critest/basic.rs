//! critest's runtime info, PodSandbox, Container, Multiple Containers and Image
//! Manager specs (pkg/validate/{runtime_info,pod,pod_linux,container,
//! multi_container_linux,image}.go), ported to crictl.

use std::fs;
use std::time::Duration;

use serde_json::{json, Value};

use super::ctx::{ensure, Ctx, R};
use crate::cricmp::wait_until;

// ---- Runtime info ------------------------------------------------------------------

pub fn version(c: &mut Ctx) -> R {
    let v = c.ok(&["version"])?;
    for k in ["Version:", "RuntimeName:", "RuntimeVersion:", "RuntimeApiVersion:"] {
        ensure!(v.lines().any(|l| l.starts_with(k) && l.len() > k.len()), "no {k} in {v}");
    }
    Ok(())
}

pub fn conditions(c: &mut Ctx) -> R {
    let info = c.json(&["info"])?;
    let conds = info["status"]["conditions"].as_array().cloned().unwrap_or_default();
    for t in ["RuntimeReady", "NetworkReady"] {
        ensure!(conds.iter().any(|x| x["type"] == t && x["status"] == true), "{t} is not true: {conds:?}");
    }
    Ok(())
}

// ---- PodSandbox --------------------------------------------------------------------

fn pod_listed(c: &Ctx, id: &str) -> R<bool> {
    Ok(c.ok(&["pods", "-q", "--id", id])?.lines().any(|l| l == id))
}

fn pod_state(c: &Ctx, id: &str) -> R<String> {
    Ok(c.json(&["inspectp", "-o", "json", id])?["status"]["state"].as_str().unwrap_or("").to_owned())
}

pub fn run_pod(c: &mut Ctx) -> R {
    let (id, _) = c.default_pod()?;
    ensure!(pod_state(c, &id)? == "SANDBOX_READY", "not ready");
    ensure!(pod_listed(c, &id)?, "not listed");
    Ok(())
}

pub fn stop_pod(c: &mut Ctx) -> R {
    let (id, _) = c.default_pod()?;
    c.ok(&["stopp", &id])?;
    ensure!(pod_state(c, &id)? == "SANDBOX_NOTREADY", "not NOTREADY");
    Ok(())
}

pub fn remove_pod(c: &mut Ctx) -> R {
    let (id, _) = c.default_pod()?;
    c.ok(&["stopp", &id])?;
    c.ok(&["rmp", &id])?;
    ensure!(!pod_listed(c, &id)?, "still listed");
    Ok(())
}

pub fn pod_attributes(c: &mut Ctx) -> R {
    let cfg = c.pod_config("attrs", json!({"labels": {"foo": "bar"}, "annotations": {"abc": "def"}}));
    let (id, _) = c.run_pod(&cfg)?;
    let st = c.json(&["inspectp", "-o", "json", &id])?["status"].clone();
    ensure!(st["metadata"] == cfg["metadata"], "metadata {} vs {}", st["metadata"], cfg["metadata"]);
    ensure!(st["labels"]["foo"] == "bar" && st["annotations"]["abc"] == "def", "{st}");
    let list = c.json(&["pods", "-o", "json", "--id", &id])?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    ensure!(items.len() == 1, "{} pods listed", items.len());
    ensure!(items[0]["metadata"] == cfg["metadata"] && items[0]["labels"]["foo"] == "bar", "{}", items[0]);
    ensure!(items[0]["annotations"]["abc"] == "def", "{}", items[0]);
    Ok(())
}

fn sysctl(c: &mut Ctx, key: &str, value: &str, path: &str) -> R {
    let cfg = c.pod_config("sysctl", json!({"linux": {"sysctls": {key: value}}}));
    let (id, p) = c.run_pod(&cfg)?;
    let ctr = c.default_container(&id, &p)?;
    c.start(&ctr)?;
    let out = c.exec_ok(&ctr, &["cat", path])?;
    ensure!(out.trim() == value, "{path}: {out:?}");
    Ok(())
}

pub fn safe_sysctls(c: &mut Ctx) -> R {
    sysctl(c, "kernel.shm_rmid_forced", "1", "/proc/sys/kernel/shm_rmid_forced")
}

pub fn unsafe_sysctls(c: &mut Ctx) -> R {
    sysctl(c, "fs.mqueue.msg_max", "100", "/proc/sys/fs/mqueue/msg_max")
}

// ---- Container ---------------------------------------------------------------------

fn listed(c: &Ctx, id: &str) -> R<bool> {
    Ok(c.ok(&["ps", "-a", "-q", "--id", id])?.lines().any(|l| l == id))
}

pub fn create_container(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    ensure!(listed(c, &id)?, "not listed");
    Ok(())
}

pub fn start_container(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start_running(&id)
}

pub fn stop_container(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    c.ok(&["stop", "-t", "60", &id])?;
    c.wait_state(&id, "CONTAINER_EXITED")
}

pub fn remove_container(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.ok(&["rm", &id])?;
    ensure!(!listed(c, &id)?, "still listed");
    Ok(())
}

pub fn exec_sync(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let out = c.exec_ok(&id, &["echo", "hello"])?;
    ensure!(out == "hello\n", "{out:?}");
    Ok(())
}

pub fn exec_sync_timeout(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let o = c.crictl(&["exec", "-s", "--timeout", "1", &id, "sleep", "600"]);
    ensure!(o.code != 0, "exec should time out");
    // (busybox has no pgrep: ps)
    let out = c.exec_ok(&id, &["sh", "-c", "ps -o comm | grep -x sleep || true"])?;
    ensure!(out.trim().is_empty(), "the timed-out exec is still there: {out:?}");
    Ok(())
}

fn stats_of(c: &Ctx, args: &[&str]) -> R<Vec<Value>> {
    let mut a = vec!["stats", "-o", "json"];
    a.extend(args);
    Ok(c.json(&a)?["stats"].as_array().cloned().unwrap_or_default())
}

fn stats_complete(s: &Value) -> R {
    ensure!(s["cpu"]["timestamp"].as_str().is_some_and(|t| t != "0"), "no cpu timestamp: {s}");
    ensure!(s["memory"]["timestamp"].as_str().is_some_and(|t| t != "0"), "no memory timestamp: {s}");
    ensure!(s["memory"]["workingSetBytes"].is_object(), "no memory working set: {s}");
    ensure!(s["writableLayer"]["usedBytes"].is_object(), "no writable layer usage: {s}");
    Ok(())
}

pub fn container_stats(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let s = c.grpc.container_stats(&id).map_err(|e| format!("ContainerStats: {e}"))?;
    let s = s.ok_or("ContainerStats: no stats")?;
    ensure!(s.attributes.as_ref().is_some_and(|a| a.id == id), "attributes: {:?}", s.attributes);
    ensure!(s.cpu.as_ref().is_some_and(|x| x.timestamp != 0), "cpu: {:?}", s.cpu);
    ensure!(s.memory.as_ref().is_some_and(|x| x.timestamp != 0), "memory: {:?}", s.memory);
    Ok(())
}

pub fn list_container_stats(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let id = c.default_container(&pod, &p)?;
    c.start(&id)?;
    let all = stats_of(c, &[])?;
    let one = all.iter().find(|s| s["attributes"]["id"] == id.as_str()).ok_or("not in the list")?;
    stats_complete(one)
}

pub fn list_container_stats_filter(c: &mut Ctx) -> R {
    let (pod, p) = c.default_pod()?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let cfg =
            c.container_config("stats", &c.busybox(), &["sh", "-c", "top"], json!({"labels": {"n": i.to_string()}}));
        let id = c.create(&pod, &p, &cfg)?;
        c.start(&id)?;
        ids.push(id);
    }
    let by_id = stats_of(c, &["--id", &ids[0]])?;
    ensure!(by_id.len() == 1 && by_id[0]["attributes"]["id"] == ids[0].as_str(), "by id: {by_id:?}");
    stats_complete(&by_id[0])?;
    let by_pod = stats_of(c, &["--pod", &pod])?;
    ensure!(by_pod.len() == 3, "by pod: {} stats", by_pod.len());
    let by_label = stats_of(c, &["--label", "n=2"])?;
    ensure!(by_label.len() == 1 && by_label[0]["attributes"]["id"] == ids[2].as_str(), "by label: {by_label:?}");
    Ok(())
}

fn volume(c: &mut Ctx, symlink: bool) -> R {
    let (pod, p) = c.default_pod()?;
    let host = c.host_dir("vol");
    fs::write(host.join("testVolume.file"), "").unwrap();
    let path = if symlink {
        let l = host.with_extension("symlink");
        let _ = fs::remove_file(&l);
        std::os::unix::fs::symlink(&host, &l).unwrap();
        l
    } else {
        host.clone()
    };
    let hp = path.display().to_string();
    let cfg = c.container_config(
        "vol",
        &c.busybox(),
        &["sh", "-c", "top"],
        json!({"mounts": [{"host_path": hp, "container_path": hp, "selinux_relabel": true}]}),
    );
    let id = c.create(&pod, &p, &cfg)?;
    c.start_running(&id)?;
    let out = c.exec_ok(&id, &["ls", "-A", &hp])?;
    if symlink {
        let _ = fs::remove_file(&path);
    }
    ensure!(!out.is_empty(), "{hp} is empty in the container");
    Ok(())
}

pub fn volume_plain(c: &mut Ctx) -> R {
    volume(c, false)
}

pub fn volume_symlink(c: &mut Ctx) -> R {
    volume(c, true)
}

pub fn container_log(c: &mut Ctx) -> R {
    let (pod, p, dir) = c.pod_with_logs(json!({}))?;
    let mut cfg = c.container_config("log", &c.busybox(), &["echo", "hello World"], json!({}));
    let log = format!("{}.log", cfg["metadata"]["name"].as_str().unwrap());
    cfg["log_path"] = json!(log);
    let id = c.create(&pod, &p, &cfg)?;
    c.start(&id)?;
    c.wait_state(&id, "CONTAINER_EXITED")?;
    c.expect_log(&dir.join(&log), "stdout", "hello World")
}

pub fn reopen_log(c: &mut Ctx) -> R {
    let (pod, p, dir) = c.pod_with_logs(json!({}))?;
    let script = "while true; do echo hello World; sleep 1; done";
    let mut cfg = c.container_config("reopen", &c.busybox(), &["sh", "-c", script], json!({}));
    let log = format!("{}.log", cfg["metadata"]["name"].as_str().unwrap());
    cfg["log_path"] = json!(log);
    let id = c.create(&pod, &p, &cfg)?;
    c.start(&id)?;
    let path = dir.join(&log);
    ensure!(wait_until(Duration::from_secs(60), || !c.log_lines(&path).is_empty()), "no log");
    let renamed = dir.join(format!("{log}.new"));
    fs::rename(&path, &renamed).unwrap();
    c.grpc.reopen_container_log(&id).map_err(|e| format!("ReopenContainerLog: {e}"))?;
    ensure!(path.exists(), "the new log file was not created");
    ensure!(wait_until(Duration::from_secs(60), || !c.log_lines(&path).is_empty()), "nothing in the new log");
    let n = c.log_lines(&renamed).len();
    std::thread::sleep(Duration::from_secs(4));
    ensure!(c.log_lines(&renamed).len() == n, "the old log still grows");
    Ok(())
}

// ---- Multiple Containers -----------------------------------------------------------

/// A pod with a web server (the nginx stand-in) and a busybox container; their ids.
fn two_containers(c: &mut Ctx) -> R<(std::path::PathBuf, String, String, String, String)> {
    let (pod, p, dir) = c.pod_with_logs(json!({}))?;
    let mut web = c.container_config("web", &c.image("webserver:1"), &[], json!({}));
    let web_log = format!("{}.log", web["metadata"]["name"].as_str().unwrap());
    web["log_path"] = json!(web_log);
    let w = c.create(&pod, &p, &web)?;
    c.start_running(&w)?;
    let mut bb = c.container_config("bb", &c.busybox(), &["sh", "-c", "echo hello from busybox; top"], json!({}));
    let bb_log = format!("{}.log", bb["metadata"]["name"].as_str().unwrap());
    bb["log_path"] = json!(bb_log);
    let b = c.create(&pod, &p, &bb)?;
    c.start_running(&b)?;
    Ok((dir, w, web_log, b, bb_log))
}

pub fn multi_network(c: &mut Ctx) -> R {
    let (_, _, _, b, _) = two_containers(c)?;
    let mut out = String::new();
    let ok = wait_until(Duration::from_secs(30), || {
        out = c.exec(&b, &["wget", "-qO-", "http://127.0.0.1:80/"]).stdout;
        out.contains("hello from busybox httpd")
    });
    ensure!(ok, "the web server is not reachable over localhost: {out:?}");
    Ok(())
}

pub fn multi_log(c: &mut Ctx) -> R {
    let (dir, _, web_log, _, bb_log) = two_containers(c)?;
    c.expect_log(&dir.join(web_log), "stdout", "nginx stand-in serving on 80")?;
    c.expect_log(&dir.join(bb_log), "stdout", "hello from busybox")
}

pub fn multi_exec(c: &mut Ctx) -> R {
    let (_, w, _, b, _) = two_containers(c)?;
    for id in [w, b] {
        let out = c.exec_ok(&id, &["echo", "hello"])?;
        ensure!(out == "hello\n", "{out:?}");
    }
    Ok(())
}

// ---- Image Manager -----------------------------------------------------------------

fn image_status(c: &Ctx, r: &str) -> Option<Value> {
    let o = c.crictl(&["inspecti", "-o", "json", r]);
    (o.code == 0).then(|| serde_json::from_str::<Value>(&o.stdout).ok()).flatten().map(|v| v["status"].clone())
}

fn remove_image(c: &Ctx, r: &str) -> R {
    if let Some(st) = image_status(c, r) {
        c.ok(&["rmi", st["id"].as_str().unwrap_or("")])?;
    }
    Ok(())
}

fn pull_and_remove(c: &mut Ctx, r: &str, check: impl Fn(&Value) -> R) -> R {
    remove_image(c, r)?;
    c.ok(&["pull", r])?;
    let st = image_status(c, r).ok_or("no image status after the pull")?;
    ensure!(st["id"].as_str().is_some_and(|s| !s.is_empty()), "no id: {st}");
    ensure!(st["size"].as_str().is_some_and(|s| s != "0"), "no size: {st}");
    check(&st)?;
    remove_image(c, r)?;
    ensure!(image_status(c, r).is_none(), "still there after rmi");
    Ok(())
}

pub fn image_with_tag(c: &mut Ctx) -> R {
    let r = c.image("test-image-tag:test");
    pull_and_remove(c, &r.clone(), |st| {
        ensure!(st["repoTags"] == json!([r]), "repoTags {}", st["repoTags"]);
        Ok(())
    })
}

pub fn image_without_tag(c: &mut Ctx) -> R {
    let r = c.image("test-image-latest");
    pull_and_remove(c, &r.clone(), |st| {
        ensure!(st["repoTags"] == json!([format!("{r}:latest")]), "repoTags {}", st["repoTags"]);
        Ok(())
    })
}

pub fn image_with_digest(c: &mut Ctx) -> R {
    let d = c.e.registry().digest(&c.e.ns, "test-image-digest", "1");
    let r = format!("{}@{d}", c.image("test-image-digest"));
    pull_and_remove(c, &r.clone(), |st| {
        ensure!(st["repoTags"].as_array().is_none_or(|a| a.is_empty()), "repoTags {}", st["repoTags"]);
        ensure!(st["repoDigests"] == json!([r]), "repoDigests {}", st["repoDigests"]);
        Ok(())
    })
}

pub fn image_all_references(c: &mut Ctx) -> R {
    let r = c.image("test-image-tags:1");
    remove_image(c, &r)?;
    c.ok(&["pull", &r])?;
    let st = image_status(c, &r).ok_or("no status")?;
    let mut refs = vec![st["id"].as_str().unwrap_or("").to_owned()];
    for k in ["repoTags", "repoDigests"] {
        refs.extend(st[k].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)));
    }
    for x in refs {
        let other = image_status(c, &x).ok_or(format!("no status by {x}"))?;
        ensure!(other == st, "status by {x} differs: {other} vs {st}");
    }
    remove_image(c, &r)?;
    ensure!(image_status(c, &r).is_none(), "still there after rmi");
    Ok(())
}

pub fn image_user_fields(c: &mut Ctx) -> R {
    for (name, uid, user) in [
        ("test-image-user-uid", Some("1002"), ""),
        ("test-image-user-username", None, "www-data"),
        ("test-image-user-uid-group", Some("1003"), ""),
        ("test-image-user-username-group", None, "www-data"),
    ] {
        let r = c.image(name);
        c.ok(&["pull", &r])?;
        let st = image_status(c, &r).ok_or("no status")?;
        let got_uid = st["uid"]["value"].as_str().map(str::to_owned);
        let got_uid = got_uid.filter(|v| v != "0");
        let _ = remove_image(c, &r);
        ensure!(got_uid.as_deref() == uid, "{name}: uid {} (want {uid:?})", st["uid"]);
        ensure!(st["username"].as_str().unwrap_or("") == user, "{name}: username {}", st["username"]);
    }
    Ok(())
}

pub fn list_three_images(c: &mut Ctx) -> R {
    let names: Vec<String> =
        ["test-image-1", "test-image-2", "test-image-3"].iter().map(|n| c.image(&format!("{n}:latest"))).collect();
    let mut ids = Vec::new();
    for n in &names {
        remove_image(c, n)?;
        c.ok(&["pull", n])?;
        ids.push(image_status(c, n).ok_or("no status")?["id"].clone());
    }
    let list = c.json(&["images", "-o", "json"])?["images"].clone();
    let mut uniq = ids.clone();
    uniq.dedup();
    let r = (|| {
        ensure!(uniq.len() == 3, "{} distinct ids", uniq.len());
        for (n, id) in names.iter().zip(&ids) {
            let img = list.as_array().into_iter().flatten().find(|i| i["id"] == *id).ok_or("not listed")?;
            ensure!(img["repoTags"] == json!([n]), "{n}: repoTags {}", img["repoTags"]);
        }
        Ok(())
    })();
    for n in &names {
        let _ = remove_image(c, n);
    }
    r
}

pub fn list_three_tags(c: &mut Ctx) -> R {
    let names: Vec<String> = ["1", "2", "3"].iter().map(|t| c.image(&format!("test-image-tags:{t}"))).collect();
    let mut ids = Vec::new();
    for n in &names {
        remove_image(c, n)?;
    }
    for n in &names {
        c.ok(&["pull", n])?;
        ids.push(image_status(c, n).ok_or("no status")?["id"].clone());
    }
    let list = c.json(&["images", "-o", "json"])?["images"].clone();
    let r = (|| {
        ensure!(ids.iter().all(|i| *i == ids[0]), "ids differ: {ids:?}");
        let img = list.as_array().into_iter().flatten().find(|i| i["id"] == ids[0]).ok_or("not listed")?;
        let mut tags: Vec<String> =
            img["repoTags"].as_array().into_iter().flatten().filter_map(|x| x.as_str().map(str::to_owned)).collect();
        tags.sort();
        ensure!(tags == names, "repoTags {tags:?}");
        Ok(())
    })();
    let _ = remove_image(c, &names[0]);
    r
}
