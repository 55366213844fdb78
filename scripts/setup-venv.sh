#!/usr/bin/env bash
# Create (or update) the project's virtual environment: `scripts/setup-venv.sh [VENV_DIR]`.
# A machine that already has torch (Kaggle, a GPU box) keeps it: the venv then sees the system
# site-packages. Otherwise we install the pinned CPU build before anything else, so no dependency
# can pull a newer torch with its CUDA packages.
set -euo pipefail
venv="${1:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  if "$python" -c 'import torch' >/dev/null 2>&1; then
    echo "using the torch already installed: $("$python" -c 'import torch; print(torch.__version__)')"
    "$python" -m venv --system-site-packages "$venv"
  else
    "$python" -m venv "$venv"
  fi
fi
if ! "$venv/bin/python" -c 'import torch' >/dev/null 2>&1; then
  "$venv/bin/pip" install --quiet "torch==2.13.0"
fi
"$venv/bin/pip" install --quiet -e ".[dev]"
