#!/usr/bin/env python3
"""owned-image.py OUTDIR [BUSYBOX]: an OCI image layout whose files have many owners.

Two uncompressed layers, made with Python's tarfile (no root needed):
  1. /bin/busybox (+ sh, id, stat, ls, cat, sleep, echo, test links), /etc/passwd and
     /etc/group with www-data (33:33), /data/www owned 33:33 mode 0640, /data/setgid
     owned 0:33 mode 2755, a character device /dev/null-ish node (1:3, which an
     unprivileged unpack must skip), /opq/old and /gone.
  2. /opq/.wh..wh..opq + /opq/new (an opaque directory), /.wh.gone (a whiteout),
     /data/top owned 1000:1000.
The rootless tests check that owners arrive in the container as the image says, the
device node is skipped with a note, and the whiteouts hold.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

out = sys.argv[1]
busybox = sys.argv[2] if len(sys.argv) > 2 else "/bin/busybox"


def entry(t, name, kind=tarfile.REGTYPE, data=b"", uid=0, gid=0, mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.uid, ti.gid, ti.mode, ti.mtime = kind, uid, gid, mode, 0
    for k, v in kw.items():
        setattr(ti, k, v)
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
    else:
        t.addfile(ti)


def layer(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        build(t)
    return buf.getvalue()


def base(t):
    for d in ["bin", "etc", "data", "dev", "opq", "tmp", "proc", "sys"]:
        entry(t, d, tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
    with open(busybox, "rb") as f:
        entry(t, "bin/busybox", data=f.read(), mode=0o755)
    for a in ["sh", "id", "stat", "ls", "cat", "sleep", "echo", "test", "wc"]:
        entry(t, "bin/" + a, tarfile.SYMTYPE, linkname="busybox", mode=0o777)
    entry(t, "etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www:/var/www:/bin/sh\n")
    entry(t, "etc/group", data=b"root:x:0:\nwww-data:x:33:\n")
    entry(t, "data/www", data=b"owned by www-data\n", uid=33, gid=33, mode=0o640)
    entry(t, "data/setgid", tarfile.DIRTYPE, uid=0, gid=33, mode=0o2755)
    entry(t, "dev/node", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
    entry(t, "opq/old", data=b"old\n")
    entry(t, "gone", data=b"gone\n")


def top(t):
    entry(t, "opq", tarfile.DIRTYPE, mode=0o755)
    entry(t, "opq/.wh..wh..opq")
    entry(t, "opq/new", data=b"new\n")
    entry(t, ".wh.gone")
    entry(t, "data/top", data=b"top\n", uid=1000, gid=1000)


os.makedirs(os.path.join(out, "blobs", "sha256"), exist_ok=True)


def blob(data):
    h = hashlib.sha256(data).hexdigest()
    with open(os.path.join(out, "blobs", "sha256", h), "wb") as f:
        f.write(data)
    return "sha256:" + h, len(data)


layers = [layer(base), layer(top)]
descs = []
for data in layers:
    d, n = blob(data)
    descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
config = {
    "architecture": "amd64",
    "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [x["digest"] for x in descs]},
}
cd, cn = blob(json.dumps(config).encode())
manifest = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
    "layers": descs,
}
md, mn = blob(json.dumps(manifest).encode())
index = {
    "schemaVersion": 2,
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
                   "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
}
with open(os.path.join(out, "index.json"), "w") as f:
    json.dump(index, f)
with open(os.path.join(out, "oci-layout"), "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
