#!/bin/bash
# Lab 12 setup: a flaky service script in a state volume, and a pod manifest with restartPolicy: Never.
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
capsa pod rm -f lab12-pod >/dev/null 2>&1 || true
rm_containers lab12
rm -rf "$WORK/state" "$WORK/restarts" "$WORK/pod.yaml"
mkdir -p "$WORK/state"
busybox_image
cat >"$WORK/state/flaky.sh" <<'SH'
#!/bin/sh
# A flaky service: it crashes on its first two starts, then stays up.
# /state is a host directory (a volume): the run counter outlives each run.
n=$(( $(cat /state/runs 2>/dev/null || echo 0) + 1 ))
echo "$n" >/state/runs
# Field 22 of /proc/PID/stat: when this process started, in clock ticks since boot.
tick=$(cut -d' ' -f22 /proc/$$/stat)
echo "run $n tick $tick" >>/state/history
if [ "$n" -le 2 ]; then
  echo "run $n (started at tick $tick): cannot reach my database, exiting with status 1"
  exit 1
fi
echo "run $n (started at tick $tick): up"
exec sleep 1d
SH
cat >"$WORK/pod.yaml" <<'YAML'
# Lab 12: an app that crashes on its first start in this pod, then stays up.
apiVersion: v1
kind: Pod
metadata:
  name: lab12-pod
spec:
  restartPolicy: Never
  hostNetwork: true
  volumes:
    - name: scratch
      emptyDir: {}
  containers:
    - name: app
      image: busybox
      command:
        - sh
        - -c
        - |
          if [ ! -e /scratch/crashed ]; then
            touch /scratch/crashed
            echo "first start in this pod: crashing"
            exit 1
          fi
          echo "started again: up"
          exec sleep 1d
      volumeMounts:
        - name: scratch
          mountPath: /scratch
YAML
echo "ready: $WORK/state/flaky.sh (a service that crashes twice) and $WORK/pod.yaml (restartPolicy: Never)"
