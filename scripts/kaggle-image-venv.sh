#!/usr/bin/env bash
# Create (or update) a virtual environment with the package versions of Kaggle's notebook image:
# `scripts/kaggle-image-venv.sh [VENV_DIR]`. Never --system-site-packages: every package is
# installed here at the version constraints/kaggle-image.txt pins, beside the pinned CPU build of
# torch, and the versions installed are checked against the pins.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-kaggle-image}"
python="${PYTHON:-python3}"
constraints=constraints/kaggle-image.txt

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet "torch==2.13.0"
"$venv/bin/pip" install --quiet --constraint "$constraints" -e ".[dev]"
"$venv/bin/python" - "$constraints" <<'PY'
import importlib.metadata
import re
import sys

pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", open(sys.argv[1]).read(), re.M)
wrong = [f"{name} {importlib.metadata.version(name)} (pinned {version})" for name, version in pins
         if importlib.metadata.version(name) != version]
if wrong:
    sys.exit(f"{sys.argv[1]}: installed versions differ from the pins: {', '.join(wrong)}")
print(f"Kaggle image's versions installed: {', '.join(f'{name} {version}' for name, version in pins)}")
PY
