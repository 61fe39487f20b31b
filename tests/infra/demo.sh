#!/usr/bin/env bash
# `make demo`: a local farm node (a systemd container from animaflow/node:bookworm on the host network,
# serving on 127.0.0.21), the local artifact mirror, the node's facts, llama.cpp installed and started
# with SmolLM2-135M, the studio gateway in front of it (127.0.0.21:4000), one chat question through the
# gateway with the official openai client, and the URL, key and model name an assistant needs. It ends
# with the dashboard (the control plane) serving on 127.0.0.1:8800, the node already on its grid,
# installed and running, and prints the URL and the sign-in token.
#   demo.sh [up]   the whole demo     demo.sh node   only the node container
#   demo.sh down   stop the dashboard and remove the node
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
name=animaflow-local-node
bin=${ANIMAFLOW_VENV:-$root/.venv}/bin
export ANSIBLE_CONFIG="$root/ansible.cfg"
# The directory: the node (hosts.yml) and the studio gateway on it (gateway.yml).
inventory=inventories/local
address=127.0.0.21
port=4000
key=$(awk -F': ' '/^ *animaflow_gateway_key:/ {print $2}' inventories/local/gateway.yml)
model=$(awk -F': ' '/^animaflow_model:/ {print $2}' inventories/local/group_vars/farm.yml)

node_up() {
  bash "$here/dockerd.sh" start >/dev/null
  bash "$here/node-image.sh" >/dev/null
  bash "$here/node-container.sh" up "$name" demo
}

# The dashboard: `animaflow serve` on its defaults (inventories/local, .state/, 127.0.0.1:8800), detached
# from this shell so that it outlives `make demo`; its pid and log under .cache/demo/.
dashboard_dir="$root/.cache/demo"
dashboard_url=http://127.0.0.1:8800

dashboard_down() {
  local pid
  pid=$(cat "$dashboard_dir/control.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  rm -f "$dashboard_dir/control.pid"
}

dashboard_up() {
  dashboard_down # a second `make demo` serves this checkout's code, not the first one's
  mkdir -p "$dashboard_dir"
  setsid nohup "$bin/animaflow" serve >"$dashboard_dir/control.log" 2>&1 </dev/null &
  echo $! >"$dashboard_dir/control.pid"
  for _ in $(seq 1 60); do
    "$bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "$dashboard_url/healthz" 2>/dev/null && return 0
    kill -0 "$(cat "$dashboard_dir/control.pid")" 2>/dev/null || break
    sleep 1
  done
  echo "the dashboard did not start; its log, $dashboard_dir/control.log, ends with:" >&2
  tail -n 20 "$dashboard_dir/control.log" >&2
  exit 1
}

case "${1:-up}" in
  down)
    dashboard_down
    bash "$here/node-container.sh" down "$name"
    exit 0
    ;;
  node)
    node_up
    exit 0
    ;;
  up) ;;
  *) echo "usage: demo.sh [up|node|down]" >&2; exit 2 ;;
esac

node_up
bash "$here/prepare-mirror.sh" >/dev/null
"$bin/ansible-playbook" -i "$inventory" playbooks/facts.yml
"$bin/ansible-playbook" -i "$inventory" playbooks/install.yml -e backend=llamacpp
"$bin/ansible-playbook" -i "$inventory" playbooks/start.yml -e backend=llamacpp
"$bin/ansible-playbook" -i "$inventory" playbooks/gateway.yml

question="In one sentence: what is the capital of France?"
echo
echo "Q: $question"
"$bin/python" - "$address" "$port" "$key" "$model" "$question" <<'PY'
import sys

from openai import OpenAI

address, port, key, model, question = sys.argv[1:]
base_url = f"http://{address}:{port}/v1"
client = OpenAI(base_url=base_url, api_key=key)
reply = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": question}], max_tokens=64, temperature=0
)
print("A:", reply.choices[0].message.content.strip())
print()
print("An assistant (any OpenAI client) needs only these, whichever node and backend serve:")
print(f"  base URL: {base_url}")
print(f"  API key:  {key}   (the studio key; one per application in gateway_app_keys)")
print(f"  model:    {model}")
PY

dashboard_up
echo
echo "The dashboard: $dashboard_url  (the node local-node is on its grid, llama.cpp running)"
echo "  sign in with the admin token: $(cat "$root/.state/control/admin-token")"
echo "  (kept in .state/control/admin-token, mode 0600; create operator and viewer tokens under Tokens)"
echo "stop it all:  make demo-down"
