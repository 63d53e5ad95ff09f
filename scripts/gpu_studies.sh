#!/usr/bin/env bash
# Run the GPU form of every study (or of the studies named) on one GPU, one after another:
# the JPEG CIFAR-10 is extracted and decoded once, then each study writes results/<study>.json.
# Each study is sized to about 8 minutes on one H100 (estimates from the measured anchors:
# `python -m launchers.study list`); all eight take about 45 minutes.
#
#   scripts/gpu_studies.sh                              # every study, in the issue's order
#   scripts/gpu_studies.sh degradation depth            # only these
#   TARBALL=/data/cifar10-jpeg.tar.gz OUT=results scripts/gpu_studies.sh
#   DATA_ROOT=/data/cifar10-jpeg scripts/gpu_studies.sh lesion
#   SMOKE=1 scripts/gpu_studies.sh                      # the tiny CPU forms (checks this script)
#
# Environment: PYTHON (default: .venv/bin/python if present, else python), TARBALL (default:
# .data/cifar10-jpeg.tar.gz), DATA_ROOT (an
# extracted tree instead of the tarball), OUT (results folder, default results), MAX_MINUTES
# (per study: trials that would start later are skipped, default 8), TOTAL_MINUTES (studies
# that would start later are skipped, default 70), STUDY_ARGS (more launcher arguments, e.g.
# "--set train.compile=true").
#
# The GPU host needs torch, torchvision, timm, numpy, PyYAML, Pillow and pydantic; where pydantic
# is missing and .whl/ holds its wheels (scripts/fetch_wheels.sh), they are installed into a
# scratch folder for this run. Bring results/
# back and put them into MLflow and the report with
#   for f in results/*.json; do python -m launchers.study import "$f"; done
#   python -m launchers.report --experiment study-degradation
# Exit status: 0 when every study ran, 1 when a trial failed, 2 on bad input.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${PYTHON:-}" ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
# pydantic 2 (the spec layer) from brought wheels on a host without it and without network
if ! "$PYTHON" -c 'import sys, pydantic; sys.exit(int(pydantic.VERSION.split(".")[0]) < 2)' 2>/dev/null; then
  if compgen -G ".whl/*.whl" > /dev/null; then
    SITE=$(mktemp -d "${TMPDIR:-/tmp}/resbench-site.XXXXXX")
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .whl/*.whl
    export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "error: pydantic 2 is missing: pip install 'pydantic>=2.6', or bring its wheels into .whl/" \
         "(scripts/fetch_wheels.sh)" >&2
    exit 2
  fi
fi

OUT=${OUT:-results}
MAX_MINUTES=${MAX_MINUTES:-8}
TOTAL_MINUTES=${TOTAL_MINUTES:-70}
SMOKE=${SMOKE:-}
read -r -a EXTRA <<< "${STUDY_ARGS:-}"
if [[ $# -gt 0 ]]; then
  STUDIES=("$@")
else
  STUDIES=(degradation depth resnet_vs_densenet lesion gradients skips width imagenet)
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/resbench-studies.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
# One decoded-dataset cache for all studies: the JPEGs are decoded by the first one only.
export RESBENCH_CACHE="$SCRATCH/cache"

if [[ -n "${DATA_ROOT:-}" ]]; then
  ROOT=$DATA_ROOT
else
  if [[ -z "${TARBALL:-}" ]]; then
    TARBALL=.data/cifar10-jpeg.tar.gz
  fi
  if [[ -z "${TARBALL:-}" || ! -f $TARBALL ]]; then
    echo "error: no dataset: set TARBALL=cifar10-jpeg.tar.gz or DATA_ROOT=<extracted tree>" >&2
    exit 2
  fi
  tar -xzf "$TARBALL" -C "$SCRATCH"
  ROOT=$SCRATCH/cifar10-jpeg
fi

# sequential: the GPU host has no Ray or MLflow, and --max-minutes is enforced in-process
ARGS=(--data-root "$ROOT" --max-minutes "$MAX_MINUTES" --quiet --backend sequential "${EXTRA[@]}")
if [[ -n $SMOKE ]]; then
  ARGS+=(--smoke)
else
  ARGS+=(--device cuda)
  "$PYTHON" -c 'import torch; print("device:", torch.cuda.get_device_name(0))'
fi

start=$SECONDS
status=0
for study in "${STUDIES[@]}"; do
  elapsed=$(( SECONDS - start ))
  if (( elapsed > TOTAL_MINUTES * 60 )); then
    echo "== $study: skipped (the ${TOTAL_MINUTES}-minute total is spent)"
    continue
  fi
  suffix=.json
  [[ -n $SMOKE ]] && suffix=.smoke.json
  echo "== $study (started at ${elapsed}s)"
  code=0
  "$PYTHON" -m launchers.study "$study" "${ARGS[@]}" --out "$OUT/$study$suffix" || code=$?
  if (( code == 2 )); then exit 2; fi
  if (( code > status )); then status=$code; fi
done
echo "== done in $(( SECONDS - start ))s; results in $OUT/"
exit $status
