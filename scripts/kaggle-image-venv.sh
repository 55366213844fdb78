#!/usr/bin/env bash
# Create (or update) a virtual environment like Kaggle's notebook image: its Python (3.12), its torch
# and its package versions: `scripts/kaggle-image-venv.sh [VENV_DIR]`. Never --system-site-packages:
# every package, torch included, is installed here at the version constraints/kaggle-image.txt pins,
# and the versions installed are checked against the pins. The registry's torch 2.10.0 is its CUDA build
# (with its CUDA libraries), which runs on the CPU here.
# Its cost, measured once on a 2-core machine of CI's kind (a fresh venv; the network counter over the
# install): 4.6 GB downloaded, 7.6 GB on disk, 4.6 minutes; then `make test-kaggle-image`'s tests, 2.3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-kaggle-image}"
constraints=constraints/kaggle-image.txt
image_python=3.12

# The image's Python: PYTHON if set, else python3.12 on PATH or in pyenv's versions, else python3 (said).
python="${PYTHON:-}"
if [ -z "$python" ]; then
  for candidate in "python$image_python" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$image_python".*/bin/"python$image_python"; do
    if "$candidate" -c '' >/dev/null 2>&1; then
      python="$candidate"
      break
    fi
  done
fi
if [ -z "$python" ]; then
  python=python3
  echo "warning: no python$image_python (the Kaggle image's Python) on this machine; using $("$python" --version)" >&2
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# A venv left by another Python is made again.
if [ -x "$venv/bin/python" ] && [ "$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "$version" ]; then
  rm -rf "$venv"
fi
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
echo "Python $version ($python) in $venv"
"$venv/bin/pip" install --quiet --constraint "$constraints" torch
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
