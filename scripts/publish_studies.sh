#!/usr/bin/env bash
# Publish the committed CPU-form study results: import every results/*.cpu.json into a fresh
# MLflow store and render one report of all studies (Claims section first) as
# docs/results/studies.html + .md (+ .csv). The report is rendered from the committed JSONs
# alone, so tests/test_published.py can check that the two agree.
#
#   bash scripts/publish_studies.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-.venv/bin/python}
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
uri="sqlite:///$store/mlflow.db"
order=(degradation depth resnet_vs_densenet lesion gradients skips width imagenet)
exps=()
for name in "${order[@]}"; do
  f="results/$name.cpu.json"
  [ -f "$f" ] || { echo "missing $f (run: python -m launchers.study all --form cpu ...)" >&2; exit 1; }
  "$py" -m launchers.study import "$f" --tracking-uri "$uri" >/dev/null
  exps+=(--experiment "study-$name")
done
mkdir -p docs/results
"$py" -m launchers.report "${exps[@]}" --tracking-uri "$uri" --out docs/results/studies.html
echo "wrote docs/results/studies.html and docs/results/studies.md"
