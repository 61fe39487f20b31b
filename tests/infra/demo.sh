#!/usr/bin/env bash
# `make demo`: a local farm node (a systemd container from animaflow/node:bookworm on the host network,
# serving on 127.0.0.21), the local artifact mirror, llama.cpp installed and started with SmolLM2-135M,
# then one chat question through the OpenAI API with the API key.
#   demo.sh [up]   the whole demo        demo.sh node   only the node container        demo.sh down   remove it
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
name=animaflow-local-node
bin=${ANIMAFLOW_VENV:-$root/.venv}/bin
export ANSIBLE_CONFIG="$root/ansible.cfg"
inventory=inventories/local/hosts.yml
address=127.0.0.21
port=8000
key=$(awk -F': ' '/^animaflow_api_key:/ {print $2}' inventories/local/group_vars/farm.yml)
model=$(awk -F': ' '/^animaflow_model:/ {print $2}' inventories/local/group_vars/farm.yml)

node_up() {
  bash "$here/dockerd.sh" start >/dev/null
  bash "$here/node-image.sh" >/dev/null
  bash "$here/node-container.sh" up "$name" demo
}

case "${1:-up}" in
  down)
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
"$bin/ansible-playbook" -i "$inventory" playbooks/install.yml -e backend=llamacpp
"$bin/ansible-playbook" -i "$inventory" playbooks/start.yml -e backend=llamacpp

question="In one sentence: what is the capital of France?"
echo
echo "Q: $question"
"$bin/python" - "$address" "$port" "$key" "$model" "$question" <<'PY'
import sys

import httpx

address, port, key, model, question = sys.argv[1:]
endpoint = f"http://{address}:{port}/v1"
reply = httpx.post(
    f"{endpoint}/chat/completions",
    headers={"Authorization": f"Bearer {key}"},
    json={"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 64, "temperature": 0},
    timeout=60,
)
reply.raise_for_status()
print("A:", reply.json()["choices"][0]["message"]["content"].strip())
print()
print(f"endpoint: {endpoint}  (OpenAI API, model {model!r}, header 'Authorization: Bearer {key}')")
print("stop it:  make demo-down")
PY
