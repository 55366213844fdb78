"""The README's quick start: what a newcomer looks for, each command one the Makefile has."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]


def test_the_quick_start_names_make_setup_and_every_make_target_it_names_exists():
    named = set(re.findall(r"`?make ([a-z-]+)", quick_start()))
    assert {"setup", "demo", "test"} <= named
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    assert named <= targets, named - targets
