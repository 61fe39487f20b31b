#!/usr/bin/env bash
# `make demo`: a local farm node (a systemd container from animaflow/node:bookworm on the host network,
# serving on 127.0.0.21), the local artifact mirror, llama.cpp installed and started with SmolLM2-135M,
# the studio gateway in front of it (127.0.0.21:4000), then one chat question through the gateway with
# the official openai client, and the URL, key and model name an assistant needs.
#   demo.sh [up]   the whole demo        demo.sh node   only the node container        demo.sh down   remove it
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
print("stop it:  make demo-down")
PY
