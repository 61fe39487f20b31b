#!/usr/bin/env bash
# `make test`: install the Debian packages it needs (when missing, as root), make the venv, start
# dockerd and the node image, build the test mirror, run the whole
# suite (lint, unit, control plane, Molecule) as one pytest session, and stop dockerd again, pass or
# fail. Each set-up stage's time goes to .cache/logs/stages.tsv; pytest prints them with its own
# stages' times (tests/timing.py) just before its summary, which stays the last line printed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
export ANIMAFLOW_STAGES="$root/.cache/logs/stages.tsv"
mkdir -p "$(dirname "$ANIMAFLOW_STAGES")"
: >"$ANIMAFLOW_STAGES"
stage() {
  local name=$1 start rc
  shift
  start=$(date +%s%N)
  "$@"
  rc=$?
  printf '%s\t%d\n' "$name" $((($(date +%s%N) - start) / 1000000)) >>"$ANIMAFLOW_STAGES"
  return $rc
}
builds=
cleanup() {
  [ -n "$builds" ] && kill -- "-$builds" 2>/dev/null
  bash "$here/dockerd.sh" stop >/dev/null 2>&1 || true
}
trap cleanup EXIT
stage "Debian packages" bash "$here/system-packages.sh" test || exit 1
stage "venv (make venv)" make -s venv || exit 1
stage "dockerd" bash "$here/dockerd.sh" start || exit 1
stage "node image" bash "$here/node-image.sh" || exit 1
stage "test mirror" .venv/bin/python "$here/prepare-mirror.py" >/dev/null ||
  { echo "prepare-mirror.py failed" >&2; exit 1; }
# The llama.cpp builds run beside the tests that need none; those that do wait for them (tests/builds.py).
export ANIMAFLOW_BUILDS_DIR="$root/.cache/logs/llamacpp-builds"
rm -rf "$ANIMAFLOW_BUILDS_DIR" && mkdir -p "$ANIMAFLOW_BUILDS_DIR"
set -m # its own process group, so that cleanup ends the whole build if pytest stops first
(
  start=$(date +%s%N)
  bash "$here/llamacpp-builds.sh" >"$ANIMAFLOW_BUILDS_DIR/log" 2>&1
  echo $? >"$ANIMAFLOW_BUILDS_DIR/rc.part" && mv "$ANIMAFLOW_BUILDS_DIR/rc.part" "$ANIMAFLOW_BUILDS_DIR/rc"
  # Its time, and the CPU the builder container used (a third column), for the time per stage.
  printf '%s\t%d\t%s\n' "llama.cpp builds (beside pytest)" $((($(date +%s%N) - start) / 1000000)) \
    "$(cat "$ANIMAFLOW_BUILDS_DIR/cpu_ms" 2>/dev/null)" >>"$ANIMAFLOW_STAGES"
) &
builds=$!
set +m
# Several workers: Molecule scenarios mostly wait on their nodes, so they run side by side, in the lanes
# of tests/lanes.py. ANIMAFLOW_TEST_WORKERS=0 runs everything in this one process.
workers=${ANIMAFLOW_TEST_WORKERS:-4}
parallel=()
[ "$workers" -gt 1 ] && parallel=(-n "$workers" --dist loadgroup --no-loadscope-reorder)
.venv/bin/pytest "${parallel[@]}" "$@"
rc=$?
cleanup
exit $rc
