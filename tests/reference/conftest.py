"""Fixtures of the reference tests: the reference code imported from its clone."""

import importlib.util
import sys
from pathlib import Path

import pytest
from helpers.reference import reference_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def harness():
    """benchmarks/beside_reference.py (what the reference benchmarks share) and the reference code it imports."""
    path = reference_path()
    if path is None or not path.is_dir():
        pytest.skip("no clone of the TRM reference code (set TRM_REFERENCE to one)")
    pytest.importorskip("einops", reason="the reference code needs einops")
    spec = importlib.util.spec_from_file_location("beside_reference", ROOT / "benchmarks" / "beside_reference.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["beside_reference"] = module
    spec.loader.exec_module(module)
    return module, module.import_reference(path)
