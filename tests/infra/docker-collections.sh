#!/usr/bin/env bash
# Give the venv what Galaxy would: community.docker (Molecule's docker driver and the docker
# connection) and its dependencies, taken from the PyPI wheel of the `ansible` bundle because
# Galaxy is unreachable here. Also puts .collections on sys.path so Python code outside Ansible
# imports this collection as ansible_collections.animaflow.inference.
set -euo pipefail
venv=${1:?usage: docker-collections.sh VENV}
root=$(cd "$(dirname "$0")/../.." && pwd)
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$root/.collections" > "$site/animaflow-collection.pth"
if [ -d "$site/ansible_collections/community/docker" ]; then exit 0; fi
cache="$root/.cache/wheels"
mkdir -p "$cache"
wheel=$(ls "$cache"/ansible-12.3.0-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  "$venv/bin/pip" download -q --no-deps -d "$cache" ansible==12.3.0
  wheel=$(ls "$cache"/ansible-12.3.0-*.whl | head -n1)
fi
"$venv/bin/python" - "$wheel" "$site" <<'PY'
import sys
import zipfile

wheel, site = sys.argv[1], sys.argv[2]
wanted = (
    "ansible_collections/community/docker/",
    "ansible_collections/community/library_inventory_filtering_v1/",
    "ansible_collections/ansible/posix/",
)
with zipfile.ZipFile(wheel) as zf:
    members = [m for m in zf.namelist() if m.startswith(wanted)]
    zf.extractall(site, members)
print(f"extracted {len(members)} files of community.docker, library_inventory_filtering_v1, ansible.posix")
PY
