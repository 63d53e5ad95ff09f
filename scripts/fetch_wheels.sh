#!/usr/bin/env bash
# Wheels of the spec layer's one dependency a bare GPU host lacks (pydantic, with what it needs),
# at the versions installed here, for an install there without network:
#
#   scripts/fetch_wheels.sh [DIR] [PYTHON_VERSION]     # default: .whl and 3.12 (the host's Python)
#   scripts/fetch_wheels.sh --list                     # only print the distributions
#
# On the host: python -m pip install --no-index --no-deps --target /tmp/site DIR/*.whl and
# PYTHONPATH=/tmp/site; scripts/gpu_studies.sh does this itself when .whl/ holds them.
# Environment: PYTHON (default .venv/bin/python if present, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
# pydantic and everything it requires (no extras), as name==version of what is installed here
mapfile -t PKGS < <("$PYTHON" - <<'PY'
import re
from importlib.metadata import distribution

seen, todo = {}, ["pydantic"]
while todo:
    dist = distribution(todo.pop())
    name = dist.metadata["Name"].lower().replace("_", "-")
    if name in seen:
        continue
    seen[name] = dist.version
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        todo.append(re.match(r"[A-Za-z0-9_.-]+", req).group(0))
for name in sorted(seen):
    print(f"{name}=={seen[name]}")
PY
)
if [[ "${1:-}" == "--list" ]]; then
  printf '%s\n' "${PKGS[@]}"
  exit 0
fi
DIR=${1:-.whl}
PYVER=${2:-3.12}
mkdir -p "$DIR"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
  PLATFORMS+=(--platform "$p")
done
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp "${PLATFORMS[@]}" -d "$DIR" "${PKGS[@]}"
ls "$DIR"
