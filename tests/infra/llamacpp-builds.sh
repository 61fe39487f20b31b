#!/usr/bin/env bash
# Build each llama.cpp release of the test mirror once per machine, the way a farm gets it: the shipped
# install playbook on a throwaway node container ("animaflow-builder", 127.0.0.19), which leaves each
# build in the controller cache (.cache/controller/llamacpp/builds/<version>-<kind>). Every Molecule
# scenario and test then copies the cached build instead of building it again (the roles skip a
# cached build; tests/infra/llama_build.py and the Ollama stand-in look there first). A release already
# in the cache is not built again. molecule/llamacpp still builds its b-broken release through the role.
# Oldest first: molecule/llamacpp and molecule/benchmark install it, and llamacpp, the longest scenario,
# needs the newest only for its upgrade (side_effect.yml waits for it there); the other tests need the newest.
# With ANIMAFLOW_BUILDS_DIR set (make test runs this in the background), <dir>/<version>.done is
# written as each release lands in the cache, for the tests that wait on it (tests/builds.py).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
bin=${ANIMAFLOW_VENV:-$root/.venv}/bin
export ANSIBLE_CONFIG="$root/ansible.cfg" ANSIBLE_FORCE_COLOR=0
cache=${ANIMAFLOW_CACHE_DIR:-$root/.cache/controller}
name=animaflow-builder
versions=$("$bin/python" -c 'import sys; sys.path.insert(0, "tests/infra"); import llama_build; print(*llama_build.known_versions())')
done_dir=${ANIMAFLOW_BUILDS_DIR:-}
built() { [ -z "$done_dir" ] || touch "$done_dir/$1.done"; }
missing=()
for version in $versions; do
  if compgen -G "$cache/llamacpp/builds/$version-cpu-*/llama-server" >/dev/null; then built "$version"; else missing+=("$version"); fi
done
if [ ${#missing[@]} -eq 0 ]; then echo "llama.cpp builds: $versions cached"; exit 0; fi
# The CPU the builder container used, in ms (cgroup v2, else v1), for make test's time per stage.
cpu_ms() {
  docker exec "$name" sh -c 'if [ -r /sys/fs/cgroup/cpu.stat ]; then awk "/^usage_usec/ {print int(\$2 / 1000)}" /sys/fs/cgroup/cpu.stat;
    else echo $(($(cat /sys/fs/cgroup/cpuacct/cpuacct.usage) / 1000000)); fi' 2>/dev/null
}
finish() {
  [ -z "$done_dir" ] || cpu_ms >"$done_dir/cpu_ms" || true
  bash "$here/node-container.sh" down "$name" >/dev/null
}
bash "$here/node-container.sh" up "$name" builder
trap finish EXIT
for version in "${missing[@]}"; do
  echo "llama.cpp builds: $version"
  "$bin/ansible-playbook" -i inventories/local/hosts.yml playbooks/install.yml \
    -e backend=llamacpp -e "version=$version" -e "ansible_host=$name" \
    -e animaflow_bind_address=127.0.0.19 -e animaflow_model=tiny \
    -e "animaflow_cache_dir=$cache" -e "animaflow_artifact_mirror=$root/.cache/mirror"
  built "$version"
done
