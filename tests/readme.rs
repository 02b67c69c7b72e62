//! The README, walked: every ```` ```sh ```` block of `README.md`, in order, runs as
//! one `bash -euo pipefail` script, as a newcomer pasting the blocks into a root shell
//! would run them. A command that fails fails the test, naming its README line.
//!
//! Conventions (checked here, so a new section cannot silently opt out):
//! - ```` ```sh ````: walked, every line literal and runnable (no placeholders);
//!   no `&&` lists (bash's `-e` ignores a failure on the left of `&&`).
//! - ```` ```console ````, ```` ```text ````, ```` ```toml ```` ...: shown, not walked
//!   (e.g. containerd and podman need a daemon or a setup of their own).
//! - ```` ```bash ```` / ```` ```shell ````: refused (say which of the two you mean).
//!
//! [`SKIPPED`] lists the few walked lines that must not run here, each matching
//! exactly one README line: installing packages (checked instead: each must be
//! installed), building (the binaries this test was built with are used), and the
//! test suite itself.
//!
//! The sandbox: new pid, mount, network and cgroup namespaces (`unshare`). Fresh tmpfs
//! over `/tmp`, `/run`, `/usr/local` (so `capsa` reaches PATH only through the README's
//! `make install`), `/var/lib/capsa`, `/var/lib/cni` and `/etc/capsa` if it exists;
//! `/var/lib` is an overlay whose writes stay in the sandbox; a loopback-only network
//! namespace (pods, their bridge and iptables rules, the registry on 127.0.0.1:5000,
//! curl to 127.0.0.1:18080 all live there); a cgroup namespace rooted at
//! `/capsa-readme-<pid>` in every hierarchy, so the containers' `/capsa/...` and
//! `/capsa-examples/...` cgroups are made below it. The test's binaries are
//! bind-mounted at `target/release` when they were built elsewhere (a debug
//! `cargo test`). After the walk, the sandbox checks that the README removed what it
//! made (no container, managed container, pod, mount, cgroup or process left); the
//! end of the pid namespace kills anything left anyway, and the test removes its
//! cgroups.
//!
//! Only the top-level README.md is walked. Every command, with its README line and a
//! time stamp, and its output go to `target/tmp/readme-walk.log`. Needs root, the
//! packages of the README's apt-get line, `unshare` (util-linux) and `ip` (iproute2).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Walked lines that are not run, as (line prefix, why); each matches one README line.
const SKIPPED: &[(&str, &str)] = &[
    ("apt-get update && apt-get install -y ", "installs packages: the test checks that each one is installed instead"),
    ("cargo build --release", "the binaries this test was built with stand in for it (at target/release)"),
    ("bash .ci/run", "runs the whole test suite, this test included"),
];

/// A hung command fails the walk after this long (a guard, not a timing assertion).
const HANG_GUARD: Duration = Duration::from_secs(300);

/// The README turned into a script.
#[derive(Debug)]
struct Walk {
    /// Line N of the script is line N of the README (blank where nothing runs).
    script: String,
    /// README line numbers that run.
    walked: Vec<usize>,
    /// (README line, prefix) of each skipped line.
    skipped: Vec<(usize, &'static str)>,
    /// The packages of the skipped `apt-get install` line.
    packages: Vec<String>,
}

/// Parses `readme`: the ```sh blocks, the skip list applied (see the module doc).
fn walk_of(readme: &str) -> Result<Walk, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = vec![String::new(); lines.len()];
    let mut walked = Vec::new();
    let mut skipped = Vec::new();
    let mut packages = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].trim_start().strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = info.split_whitespace().next().unwrap_or("");
        let open = i + 1;
        let close = (open..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or_else(|| format!("README.md:{open}: the ``` block is never closed"))?;
        match lang {
            "sh" => {}
            "bash" | "shell" | "zsh" | "shell-session" => {
                return Err(format!(
                    "README.md:{open}: ```{lang}: use ```sh for a block the walk runs, ```console for one it only shows"
                ))
            }
            _ => {
                i = close + 1;
                continue;
            }
        }
        // Logical lines: a trailing backslash continues onto the next line.
        let mut j = open;
        while j < close {
            let first = j;
            while lines[j].ends_with('\\') && j + 1 < close {
                j += 1;
            }
            let logical = lines[first..=j].join("\n");
            let text = logical.trim_start();
            if let Some((prefix, _)) = SKIPPED.iter().find(|(p, _)| text.starts_with(p)) {
                skipped.push((first + 1, *prefix));
                if prefix.starts_with("apt-get") {
                    let list = text.split("install -y").nth(1).unwrap_or("");
                    let list = list.split('#').next().unwrap_or("");
                    packages.extend(list.split_whitespace().map(str::to_owned));
                }
            } else {
                if !text.starts_with('#') && logical.contains("&&") {
                    return Err(format!(
                        "README.md:{}: `&&` in a walked line: bash -e ignores a failure on its left; \
                         write the commands on their own lines or with `;`",
                        first + 1
                    ));
                }
                for (k, l) in lines.iter().enumerate().take(j + 1).skip(first) {
                    out[k] = (*l).to_owned();
                    if !l.trim().is_empty() {
                        walked.push(k + 1);
                    }
                }
            }
            j += 1;
        }
        i = close + 1;
    }
    for (prefix, why) in SKIPPED {
        let n = skipped.iter().filter(|(_, p)| p == prefix).count();
        if n != 1 {
            return Err(format!(
                "the skip list's {prefix:?} ({why}) matches {n} walked README lines, not 1: \
                 update SKIPPED in tests/readme.rs with the README"
            ));
        }
    }
    // Line 1 carries the trap that names the failing README line; it is never walked
    // (a README starts with its title).
    if !out[0].is_empty() {
        return Err("README.md:1 is a walked line; the walk needs line 1 for itself".into());
    }
    out[0] =
        "trap '{ rc=$?; set +x; } 2>/dev/null; echo \"README.md:$LINENO: exit status $rc: $BASH_COMMAND\" >&2' ERR; \
              PS4='+ ${EPOCHREALTIME%???} README.md:$LINENO: '; set -x"
            .into();
    let mut script = out.join("\n");
    script.push('\n');
    Ok(Walk { script, walked, skipped, packages })
}

/// Runs in the new namespaces as their pid 1: mounts the sandbox, runs the walk,
/// then checks that the README removed everything it made.
/// Arguments: REPO BINDIR WALK_SCRIPT BINARY... (the workspace's binaries).
const SANDBOX: &str = r#"
set -euo pipefail
REPO=$1 BIN=$2 WALK=$3
shift 3
fail() { echo "readme walk: $*" >&2; exit 1; }
mount --make-rprivate /

# cgroups: remount every hierarchy so its root is this cgroup namespace's root (the
# test's /capsa-readme-PID), and move this shell into a leaf, /walk (a v2 cgroup with
# processes cannot give its controllers to children).
CGMOUNTS=()
while read -r _ _ _ _ mp _ rest; do
  fs=${rest#*- }; fstype=${fs%% *}; opts=${fs##* }
  case $fstype in cgroup|cgroup2) ;; *) continue ;; esac
  umount "$mp"
  mount -t "$fstype" -o "$opts" "$fstype" "$mp"
  mkdir "$mp/walk"
  if [ -f "$mp/cpuset.cpus" ]; then
    cat "$mp/cpuset.cpus" >"$mp/walk/cpuset.cpus"; cat "$mp/cpuset.mems" >"$mp/walk/cpuset.mems"
  fi
  echo $$ >"$mp/walk/cgroup.procs"
  CGMOUNTS+=("$mp")
done < <(grep -E ' - cgroup2? ' /proc/self/mountinfo)
[ ${#CGMOUNTS[@]} -gt 0 ] || fail "no cgroup hierarchy mounted"

mount -t tmpfs -o mode=1777 readme-tmp /tmp
mount -t tmpfs -o mode=755 readme-run /run
mount -t tmpfs -o mode=755 readme-usr-local /usr/local
mkdir /run/.varlib /run/.varlib/upper /run/.varlib/work
mount -t overlay -o lowerdir=/var/lib,upperdir=/run/.varlib/upper,workdir=/run/.varlib/work readme-var-lib /var/lib
for d in /var/lib/capsa /var/lib/cni; do mkdir -p "$d"; mount -t tmpfs -o mode=755 readme-state "$d"; done
[ ! -d /etc/capsa ] || mount -t tmpfs -o mode=755 readme-etc-capsa /etc/capsa
ip link set lo up
if [ "$BIN" != "$REPO/target/release" ]; then mount --bind "$BIN" "$REPO/target/release"; fi
if command -v capsa >/dev/null; then fail "capsa is already on PATH ($(command -v capsa)); only make install may put it there"; fi

cd "$REPO"
mounts_before=$(awk '{ print $1 }' /proc/self/mountinfo)
bash -euo pipefail "$WALK" </dev/null

# The README's install step installed every binary of the workspace.
for b in "$@"; do [ -x "/usr/local/bin/$b" ] || fail "the README did not install $b in /usr/local/bin"; done
# What the README made, it removed.
left=$(capsa list -q; capsa ps -a -q; capsa pod ls -q)
[ -z "$left" ] || fail "containers or pods left: $left"
for mp in "${CGMOUNTS[@]}"; do
  cgs=$(find "$mp" -mindepth 1 -type d ! -path "$mp/walk" ! -path "$mp/capsa" ! -path "$mp/capsa-examples")
  [ -z "$cgs" ] || fail "cgroups left: $cgs"
  rmdir "$mp/capsa" "$mp/capsa-examples" 2>/dev/null || true
done
mounts=$(awk 'NR == FNR { before[$1] = 1; next } !($1 in before) { print $5 }' <(echo "$mounts_before") /proc/self/mountinfo)
[ -z "$mounts" ] || fail "mounts left: $mounts"
procs=$(for p in /proc/[0-9]*; do
  p=${p#/proc/}
  [ "$p" = 1 ] || [ "$p" = "$BASHPID" ] || [ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" = Z ] || [ ! -e "/proc/$p" ] ||
    echo "$p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"
done)
[ -z "$procs" ] || fail "processes left: $procs"
echo "readme walk: ok"
"#;

/// `/capsa-readme-PID` in every cgroup hierarchy; removed (after killing what is left
/// in it) on drop.
struct Cgroups {
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    fn new(name: &str) -> Cgroups {
        let info = fs::read_to_string("/proc/self/mountinfo").expect("read /proc/self/mountinfo");
        let mut cg = Cgroups { dirs: Vec::new() };
        for l in info.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            let Some(dash) = f.iter().position(|x| *x == "-") else { continue };
            if !matches!(f.get(dash + 1), Some(&"cgroup") | Some(&"cgroup2")) {
                continue;
            }
            let dir = Path::new(f[4]).join(name);
            fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            cg.dirs.push(dir.clone());
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(Path::new(f[4]).join(file)) {
                    fs::write(dir.join(file), v).unwrap_or_else(|e| panic!("write {file}: {e}"));
                }
            }
        }
        assert!(!cg.dirs.is_empty(), "no cgroup hierarchy mounted");
        cg
    }

    /// Every cgroup below (and including) ours, deepest first.
    fn tree(&self) -> Vec<PathBuf> {
        fn walk(p: &Path, acc: &mut Vec<PathBuf>) {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        walk(&e.path(), acc);
                    }
                }
            }
            acc.push(p.to_path_buf());
        }
        let mut acc = Vec::new();
        for d in &self.dirs {
            walk(d, &mut acc);
        }
        acc
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut busy = false;
            for d in self.tree() {
                if let Ok(procs) = fs::read_to_string(d.join("cgroup.procs")) {
                    for pid in procs.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                        busy = true;
                        // SAFETY: kill with integer arguments; the pid is in a cgroup this test made.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
                let _ = fs::remove_dir(&d);
            }
            if !busy || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let left: Vec<_> = self.dirs.iter().filter(|d| d.exists()).collect();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("cgroups left behind: {left:?}");
        }
    }
}

/// The workspace's member packages, its default members, and their binaries (name →
/// the package's directory).
fn workspace() -> (BTreeSet<String>, BTreeSet<String>, BTreeMap<String, PathBuf>) {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--offline", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let ids = |k: &str| -> BTreeSet<String> {
        v[k].as_array()
            .unwrap_or_else(|| panic!("cargo metadata: no {k}"))
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    };
    let (members, defaults) = (ids("workspace_members"), ids("workspace_default_members"));
    let mut bins = BTreeMap::new();
    for p in v["packages"].as_array().unwrap() {
        if members.contains(p["id"].as_str().unwrap()) {
            let dir = Path::new(p["manifest_path"].as_str().unwrap()).parent().unwrap().to_path_buf();
            for t in p["targets"].as_array().unwrap() {
                if t["kind"].as_array().unwrap().iter().any(|k| k == "bin") {
                    bins.insert(t["name"].as_str().unwrap().to_owned(), dir.clone());
                }
            }
        }
    }
    (members, defaults, bins)
}

fn root_or_skip() -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "needs root (CI=true)");
    eprintln!("skipping: needs root");
    false
}

/// The most recently modified file below `dir` (`target/` left out), and its time.
fn newest_file(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut best: Option<(SystemTime, PathBuf)> = None;
    for e in fs::read_dir(dir).ok()?.flatten() {
        let (p, t) = (e.path(), e.file_type().ok()?);
        let found = if t.is_dir() && e.file_name() != "target" {
            newest_file(&p)
        } else if t.is_file() {
            e.metadata().and_then(|m| m.modified()).ok().map(|m| (m, p))
        } else {
            None
        };
        if let Some(f) = found {
            let newer = match &best {
                Some(b) => f.0 > b.0,
                None => true,
            };
            if newer {
                best = Some(f);
            }
        }
    }
    best
}

/// Which of `packages` dpkg does not list as installed.
fn missing_packages(packages: &[String]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| {
            let o = Command::new("dpkg-query").args(["-W", "-f", "${Status}", p]).output();
            !matches!(o, Ok(o) if String::from_utf8_lossy(&o.stdout).ends_with(" installed"))
        })
        .cloned()
        .collect()
}

#[test]
fn plain_cargo_build_builds_every_binary_and_make_install_installs_them() {
    let (members, defaults, bins) = workspace();
    assert_eq!(defaults, members, "default-members in Cargo.toml must list every crate (the README's build line)");
    let makefile = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Makefile")).expect("read Makefile");
    let listed: BTreeSet<&str> = makefile
        .lines()
        .filter(|l| l.starts_with("BINS :=") || l.starts_with("OPTIONAL_BINS :="))
        .flat_map(|l| l.split_once(":=").unwrap().1.split_whitespace())
        .collect();
    for b in bins.keys() {
        assert!(listed.contains(b.as_str()), "the Makefile does not install {b} (BINS / OPTIONAL_BINS)");
    }
}

#[test]
fn readme_conventions_are_checked() {
    let ok = "# t\n```sh\necho a \\\n  b\napt-get update && apt-get install -y jq curl # x\ncargo build --release\nbash .ci/run\n```\n```console\nfalse && true\n```\n";
    let w = walk_of(ok).unwrap();
    assert_eq!(w.walked, vec![3, 4]);
    assert_eq!(w.packages, vec!["jq", "curl"]);
    assert_eq!(w.skipped.iter().map(|s| s.0).collect::<Vec<_>>(), vec![5, 6, 7]);
    assert_eq!(w.script.lines().nth(2), Some("echo a \\"));
    assert_eq!(w.script.lines().nth(4), Some(""));
    for (bad, why) in [
        (ok.replace("```console", "```bash"), "```bash"),
        (ok.replace("echo a", "true && echo a"), "&&"),
        (ok.replace("bash .ci/run\n", ""), "matches 0"),
        (ok.replace("cargo build --release\n", "cargo build --release\ncargo build --release\n"), "matches 2"),
        (ok.trim_end().trim_end_matches("```").to_owned(), "never closed"),
    ] {
        let e = walk_of(&bad).unwrap_err();
        assert!(e.contains(why), "{why}: {e}");
    }
}

#[test]
fn readme_runs_as_pasted() {
    if !root_or_skip() {
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(repo.join("README.md")).expect("read README.md");
    let walk = walk_of(&readme).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "walking {} README lines; skipped: {}",
        walk.walked.len(),
        walk.skipped.iter().map(|(l, p)| format!("{l} ({p})")).collect::<Vec<_>>().join(", ")
    );
    let missing = missing_packages(&walk.packages);
    assert!(missing.is_empty(), "packages of the README's apt-get line not installed here: {missing:?}");

    // The binaries: this test's own build, with the other packages' binaries beside them.
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_capsa")).parent().unwrap().to_path_buf();
    let (_, _, bins) = workspace();
    for (b, dir) in &bins {
        let built = fs::metadata(bin.join(b)).and_then(|m| m.modified());
        let built = built.unwrap_or_else(|_| panic!("{} is not built: cargo test --workspace", bin.join(b).display()));
        // Cargo builds only this package's binaries for this test; another package's
        // must not be older than its sources (a cheap guard against a stale capsa-shim).
        if dir != repo {
            if let Some((newest, path)) = newest_file(dir) {
                assert!(
                    newest <= built,
                    "{} is older than {}: cargo test --workspace (or cargo build) first",
                    bin.join(b).display(),
                    path.display()
                );
            }
        }
    }
    let release = repo.join("target/release");
    fs::create_dir_all(&release).unwrap();

    let dir = tempfile::Builder::new().prefix("readme-walk").tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (script, sandbox, log) = (dir.path().join("walk.sh"), dir.path().join("sandbox.sh"), dir.path().join("log"));
    fs::write(&script, &walk.script).unwrap();
    fs::write(&sandbox, SANDBOX).unwrap();

    let cgroups = Cgroups::new(&format!("capsa-readme-{}", std::process::id()));
    let procs: Vec<std::ffi::CString> = cgroups
        .dirs
        .iter()
        .map(|d| std::ffi::CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap())
        .collect();
    let logf = fs::File::create(&log).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--cgroup", "--mount", "--net", "--pid", "--fork", "--mount-proc", "--propagation", "private", "bash"])
        .arg(&sandbox)
        .arg(repo)
        .arg(&bin)
        .arg(&script)
        .args(bins.keys())
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf);
    // SAFETY: only open/write/close (async-signal-safe) on paths built before the fork:
    // the child moves itself into the test's cgroups, so that the cgroup namespace
    // unshare makes is rooted there.
    unsafe {
        cmd.pre_exec(move || {
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn unshare");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > HANG_GUARD {
            let _ = child.kill(); // pid 1 of the namespace: every process in it dies too
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let took = started.elapsed();
    drop(cgroups);
    let text = fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(80).collect::<Vec<_>>().into_iter().rev().collect();
    let ok = matches!(status, Some(s) if s.success()) && text.ends_with("readme walk: ok\n");
    // Kept after the run (the temp dir is not): what each README line printed, with times.
    let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-walk.log");
    let _ = fs::copy(&log, &kept);
    if !ok {
        let _ = std::io::stderr()
            .write_all(format!("---- walk log (last 80 lines) ----\n{}\n", tail.join("\n")).as_bytes());
        panic!("the README does not run as pasted ({status:?} after {took:?}); the whole log: {}", kept.display());
    }
    eprintln!("README walked in {:.1} s", took.as_secs_f64());
}
