"""constraints/kaggle-image.txt, the Kaggle image's package versions, and pyproject.toml's lower bounds."""

import re
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "kaggle-image.txt"
# tomli only on Python 3.10, never on the image's.
NOT_PINNED = {"tomli"}


def pins() -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", CONSTRAINTS.read_text(), re.M))


def test_every_lower_bound_is_a_version_the_image_job_installs():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = {}
    for line in dependencies:
        req = Requirement(line)
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{line}: expected one lower bound"
        bounds[req.name] = lower[0]
    pinned = pins()
    assert set(bounds) - NOT_PINNED == set(pinned)
    for name, version in pinned.items():
        assert Version(bounds[name]) == Version(version), (
            f"{name}: pyproject.toml says >={bounds[name]}, pinned {version}"
        )


def test_the_image_job_installs_the_images_torch_on_the_images_python():
    script = (ROOT / "scripts" / "kaggle-image-venv.sh").read_text()
    python = re.search(r"^image_python=(\S+)$", script, re.M)[1]
    assert f"Kaggle's notebook image (Python {python})" in CONSTRAINTS.read_text()
    assert "torch==" not in script  # torch comes from the pins, as every package does
    assert "torch" in pins()
