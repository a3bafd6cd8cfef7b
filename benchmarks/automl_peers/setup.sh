#!/usr/bin/env bash
# Creates the peer benchmark's own virtual environments, one per tool (FLAML pins xgboost<3, TPOT needs >=3):
# benchmarks/automl_peers/.venv/flaml and .venv/tpot. The project's .venv is never touched.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3.11}"
for tool in ${TOOLS:-flaml tpot}; do
    venv="$here/.venv/$tool"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements-$tool.txt" 2>&1 \
        | grep -v "^WARNING: Location" || true
    "$venv/bin/python" -c "import $tool, sklearn; print('$tool', $tool.__version__, '| scikit-learn', sklearn.__version__)"
done
