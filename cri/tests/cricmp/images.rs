//! The images the tests pull, built locally (no internet): stand-ins for the images
//! critest pulls from registry.k8s.io and gcr.io.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{run, shared, unique};

/// Where the OCI layouts are kept (built once per machine, reused).
const CACHE: &str = "/tmp/capsa-cricmp-images-v3";

/// (name:tag pushed to the registry, layout:ref).
pub const PUSHED: &[(&str, &str)] = &[
    ("pause:3.9", "pause:3.9"),
    ("e2e-busybox:1", "busybox:extra"),
    ("webserver:1", "busybox:webserver"),
    ("nonewprivs:1", "busybox:nonewprivs"),
    ("test-image-tag:test", "busybox:tag"),
    ("test-image-latest:latest", "busybox:latest-label"),
    ("test-image-digest:1", "busybox:digest"),
    ("test-image-tags:1", "busybox:tags"),
    ("test-image-tags:2", "busybox:tags"),
    ("test-image-tags:3", "busybox:tags"),
    ("test-image-1:latest", "busybox:one"),
    ("test-image-2:latest", "busybox:two"),
    ("test-image-3:latest", "busybox:three"),
    ("test-image-user-uid:latest", "busybox:user-uid"),
    ("test-image-user-username:latest", "busybox:user-username"),
    ("test-image-user-uid-group:latest", "busybox:user-uid-group"),
    ("test-image-user-username-group:latest", "busybox:user-username-group"),
];

/// The sandbox's process of the pause image: sleeps until SIGINT/SIGTERM, reaps
/// whatever is reparented to it.
const PAUSE_C: &str = r#"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void on_term(int s) { (void)s; _exit(0); }
static void on_chld(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
  struct sigaction t = {.sa_handler = on_term}, c = {.sa_handler = on_chld, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &t, 0); sigaction(SIGTERM, &t, 0); sigaction(SIGCHLD, &c, 0);
  for (;;) pause();
}
"#;

/// critest's nonewprivs image: a setuid-root program that prints its effective uid.
const NNP_C: &str = r#"
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("Effective uid: %d\n", (int)geteuid()); return 0; }
"#;

/// `e2e-busybox:1` is busybox plus what critest's images have (the accounts,
/// /bin/ls as a hard link). The nginx stand-in: `nginx` is a shell script (so `pidof nginx` finds it),
/// writes /var/run/nginx.pid, serves /var/www on port 80 with busybox httpd, and
/// its command line says "master process" as nginx's does.
const WEBSERVER: &str = "#!/bin/sh\n\
    echo $$ > /var/run/nginx.pid\n\
    echo \"nginx stand-in serving on ${PORT:-80}\"\n\
    httpd -f -p ${PORT:-80} -h /var/www &\n\
    trap 'kill $!; exit 0' TERM INT\n\
    wait\n";

/// Builds (once) and returns the directory holding the `busybox` and `pause`
/// OCI layouts with every ref of [`PUSHED`].
pub fn layouts() -> PathBuf {
    let cache = PathBuf::from(CACHE);
    if cache.join("done").exists() {
        return cache;
    }
    let tmp = PathBuf::from(format!("{CACHE}.tmp{}", unique("")));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).unwrap();
    build(&tmp);
    fs::write(tmp.join("done"), "").unwrap();
    // Another test process may have won the race: then keep its copy.
    if fs::rename(&tmp, &cache).is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    assert!(cache.join("done").exists(), "image cache {CACHE}");
    cache
}

fn sh(script: &str) {
    let o = run(Command::new("bash").args(["-euo", "pipefail", "-c", script]));
    assert_eq!(o.code, 0, "{script}\n{}{}", o.stdout, o.stderr);
}

fn build(dir: &Path) {
    let d = dir.display();
    fs::write(dir.join("pause.c"), PAUSE_C).unwrap();
    fs::write(dir.join("nnp.c"), NNP_C).unwrap();
    fs::write(dir.join("nginx"), WEBSERVER).unwrap();
    let bb = shared().join("harness/lib/make-busybox-oci.sh");
    let bb = bb.display();
    sh(&format!(
        "cd {d}
gcc -static -Os -s -o pause.bin pause.c
gcc -static -Os -s -o nnp nnp.c
umoci init --layout pause
umoci new --image pause:3.9
umoci unpack --image pause:3.9 b >/dev/null
install -m 0755 pause.bin b/rootfs/pause
umoci repack --image pause:3.9 b >/dev/null
rm -rf b
umoci config --image pause:3.9 --config.entrypoint /pause --config.user 65535:65535 \\
  --architecture amd64 --os linux >/dev/null
umoci gc --layout pause
HARNESS_IMG_DIR={d}/bb {bb} {d}/bb >/dev/null
cp -a bb/layout busybox
rm -rf bb
# busybox plus the nginx stand-in, the setuid program and two more accounts
umoci unpack --image busybox:latest b >/dev/null
install -m 0755 nginx b/rootfs/usr/sbin/nginx
mkdir -p b/rootfs/usr/local/bin b/rootfs/var/run
install -m 4755 nnp b/rootfs/usr/local/bin/nnp
# /bin/ls a hard link, as in critest's busybox image (its MaskedPaths spec masks it)
rm b/rootfs/bin/ls
ln b/rootfs/bin/busybox b/rootfs/bin/ls
echo 'www-data:x:33:33:www-data:/var/www:/bin/false' >> b/rootfs/etc/passwd
printf 'users:x:100:\\nwww-data:x:33:\\n' >> b/rootfs/etc/group
umoci repack --image busybox:extra b >/dev/null
rm -rf b
umoci config --image busybox:extra --tag webserver --config.entrypoint nginx --config.cmd -g \\
  --config.cmd 'daemon off; master process' --config.exposedports 80/tcp >/dev/null
umoci config --image busybox:extra --tag nonewprivs --config.entrypoint /usr/local/bin/nnp >/dev/null
umoci config --image busybox:extra --tag user-uid --config.user 1002 >/dev/null
umoci config --image busybox:extra --tag user-username --config.user www-data >/dev/null
umoci config --image busybox:extra --tag user-uid-group --config.user 1003:users >/dev/null
umoci config --image busybox:extra --tag user-username-group --config.user www-data:users >/dev/null
# distinct images (a label each): distinct ids
for n in tag latest-label digest tags one two three; do
  umoci config --image busybox:latest --tag $n --config.label cricmp=$n >/dev/null
done
umoci gc --layout busybox
"
    ));
}
