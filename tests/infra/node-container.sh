#!/usr/bin/env bash
# One systemd "farm node" container from the node image, with the Molecule nodes' settings
# (.config/molecule/config.yml): host network (so it serves on a loopback address), private cgroup
# namespace, tmpfs /run and /tmp. Used by the demo, the test run's llama.cpp builder and the control
# plane's container-node test.
#   node-container.sh up NAME [LABEL]   start it (again, if it is not running) and wait for systemd
#   node-container.sh down NAME         remove it
set -euo pipefail
image=${ANIMAFLOW_NODE_IMAGE:-animaflow/node:bookworm}
action=${1:?usage: node-container.sh up|down NAME [LABEL]}
name=${2:?usage: node-container.sh up|down NAME [LABEL]}
case "$action" in
  down)
    docker rm -f "$name" >/dev/null 2>&1 && echo "node $name removed" || echo "node $name not running"
    ;;
  up)
    if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != "true" ]; then
      docker rm -f "$name" >/dev/null 2>&1 || true
      docker run -d --name "$name" --hostname "$name" --label "animaflow.node=${3:-$name}" \
        --network host --cap-add SYS_ADMIN --cgroupns private \
        --tmpfs /run --tmpfs /run/lock --tmpfs /tmp:exec --stop-signal SIGRTMIN+3 \
        --add-host "$name:127.0.1.1" "$image" /lib/systemd/systemd >/dev/null
    fi
    for _ in $(seq 1 120); do
      state=$(docker exec "$name" systemctl is-system-running 2>/dev/null || true)
      case "$state" in running|degraded) echo "node $name: systemd $state"; exit 0 ;; esac
      sleep 0.5
    done
    echo "node $name: systemd did not come up" >&2
    exit 1
    ;;
  *) echo "usage: node-container.sh up|down NAME [LABEL]" >&2; exit 2 ;;
esac
