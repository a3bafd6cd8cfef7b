#!/usr/bin/env bash
# FLAML and TPOT on our splits, then one table beside our searchers. Usage (from the project root):
#   flock /tmp/dlwild-ray.lock bash benchmarks/automl_peers/run.sh [DATA] [BUDGET_S] [OUT] [OURS_SUMMARY]
# defaults: sylvine,jasmine,cadata,digits  300  runs/automl-peers  runs/automl-compare/summary.json
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
data="${1:-sylvine,jasmine,cadata,digits}"
budget="${2:-300}"
out="${3:-runs/automl-peers}"
ours="${4:-runs/automl-compare/summary.json}"
bash "$here/setup.sh"
for tool in flaml tpot; do
    "$here/.venv/$tool/bin/python" "$here/run.py" --tool "$tool" --data "$data" --budget-s "$budget" --out "$out"
done
python3 "$here/run.py" --table --out "$out" --ours "$ours"
