#!/bin/bash
# Lab 05 setup: pod lab05 from a manifest: an init container writes a page, lab05-web serves it on port 8080.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
rm_containers lab05
capsa pod rm -f lab05 >/dev/null 2>&1 || true
rm -f "$WORK/pod-ip" "$WORK/token"
busybox_image
token=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
echo "$token" >"$WORK/token"
cat >"$WORK/pod.yaml" <<YAML
# lab05: a web server and the init container that writes its page (cf. rootfs-examples/pods/pod-web-sidecar.yaml)
apiVersion: v1
kind: Pod
metadata:
  name: lab05
spec:
  volumes:
    - name: www
      emptyDir: {}
  initContainers:
    - name: init-www
      image: busybox
      command: ["sh", "-c", "echo hello from lab05-web $token > /www/index.html"]
      volumeMounts:
        - name: www
          mountPath: /www
  containers:
    - name: web
      image: busybox
      command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
      volumeMounts:
        - name: www
          mountPath: /www
YAML
out=$(capsa pod apply -f "$WORK/pod.yaml" 2>&1) || { echo "$out" >&2; exit 1; }
echo "pod lab05 is up: lab05-web serves a page on port 8080 of the pod; add a sidecar that reads it over 127.0.0.1"
