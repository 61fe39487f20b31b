#!/usr/bin/env bash
# Start or stop a Docker daemon for the farm-node containers. PID 1 is not systemd on these
# machines, so we run dockerd ourselves, with host networking only: no bridge means no
# private-range address is ever created or targeted.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
state="$root/.cache/dockerd"
mkdir -p "$state"
case "${1:-start}" in
  start)
    if docker info >/dev/null 2>&1; then echo "dockerd: already running"; exit 0; fi
    command -v dockerd >/dev/null || { echo "dockerd not found: apt-get install -y docker.io" >&2; exit 1; }
    nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
      --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
    for _ in $(seq 1 60); do
      docker info >/dev/null 2>&1 && { echo "dockerd: started"; exit 0; }
      sleep 1
    done
    echo "dockerd did not answer within 60 s; see $state/dockerd.log" >&2
    tail -n 20 "$state/dockerd.log" >&2
    exit 1
    ;;
  stop)
    # Only stop a daemon we started ourselves.
    [ -f "$state/dockerd.pid" ] || exit 0
    pid=$(cat "$state/dockerd.pid")
    docker ps -aq --filter label=animaflow.node | xargs -r docker rm -f >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    rm -f "$state/dockerd.pid"
    ;;
  *) echo "usage: dockerd.sh start|stop" >&2; exit 2 ;;
esac
