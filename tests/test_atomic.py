import json
import os

import pytest

from arcsolver.atomic import atomic_write_json, atomic_write_text


def test_write_replaces_whole_file_with_ordinary_permissions(tmp_path):
    path = tmp_path / "sub" / "out.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": 2})
    assert json.loads(path.read_text()) == {"b": 2}
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary left behind


def test_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "old")
    with pytest.raises(TypeError):
        atomic_write_json(path, {"x": object()})  # not serialisable: fails before any write
    assert path.read_text() == "old"


KILLED_WRITER = """
import os, sys
from arcsolver import atomic
os.replace = lambda *args: os.kill(os.getpid(), 9)  # killed between writing and renaming
atomic.atomic_write_text(sys.argv[1], "new")
"""


def test_a_killed_write_leaves_a_recognisable_temporary_that_the_next_write_removes(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "out.json"
    atomic_write_text(path, "old")
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(path)])
    assert child.wait(timeout=60) == -9
    [left] = [p.name for p in tmp_path.iterdir() if p.name != "out.json"]
    assert left.startswith(".out.json.arcsolver-") and f"-{child.pid}-" in left and left.endswith(".tmp")
    assert path.read_text() == "old"
    atomic_write_text(tmp_path / "other.json", "x")  # another target's write leaves it alone
    assert (tmp_path / left).exists()
    atomic_write_text(path, "newer")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json", "out.json"]
    assert path.read_text() == "newer"


def test_only_temporaries_of_finished_writers_are_stale(tmp_path):
    from arcsolver.atomic import STALE_AFTER_S, stale_temps, temp_prefix

    path = tmp_path / "sub.json"
    live = tmp_path / f"{temp_prefix(path)}abc123.tmp"  # this process: a write in progress
    remote = tmp_path / ".sub.json.arcsolver-otherhost-1-xyz.tmp"  # another machine, recent
    remote_old = tmp_path / ".sub.json.arcsolver-otherhost-2-xyz.tmp"
    unrelated = tmp_path / ".sub.json.backup.tmp"
    for p in (live, remote, remote_old, unrelated):
        p.write_text("partial")
    old = os.path.getmtime(remote_old) - STALE_AFTER_S - 10
    os.utime(remote_old, (old, old))
    assert stale_temps(path) == [remote_old]
