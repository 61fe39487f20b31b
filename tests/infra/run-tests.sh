#!/usr/bin/env bash
# `make test`: start dockerd and the node image, run the whole suite (lint, unit, control plane,
# Molecule) as one pytest session, and stop dockerd again, pass or fail. The last line printed
# is pytest's summary of everything.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
cleanup() { bash "$here/dockerd.sh" stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
bash "$here/dockerd.sh" start || exit 1
bash "$here/node-image.sh" || exit 1
.venv/bin/python "$here/prepare-mirror.py" >/dev/null || { echo "prepare-mirror.py failed" >&2; exit 1; }
.venv/bin/pytest "$@"
rc=$?
cleanup
exit $rc
