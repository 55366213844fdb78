"""benchmarks/published_checkpoint.py: what it needs is said where a user looks."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "published_checkpoint.py"


def test_its_help_says_where_to_get_the_conceptarc_clone_it_needs():
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--concept" in done.stdout
    assert "git clone https://github.com/victorvikram/ConceptARC" in " ".join(done.stdout.split())
