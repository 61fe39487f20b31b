#!/usr/bin/env bash
# Build the local artifact mirror (see prepare-mirror.py): llama.cpp sources, a broken test source,
# the tiny test model and SmolLM2. Usage: prepare-mirror.sh [--mirror DIR] [--downloads DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
exec "$py" "$root/tests/infra/prepare-mirror.py" "$@"
