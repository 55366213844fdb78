import json
import os

import pytest
from helpers import dead_owner

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


# --- what a killed process leaves: one staging helper (staged_folder) names its owner, and the
# next writer of the same target removes a dead owner's folder, saying so ----------------------


def test_a_staged_folder_is_named_after_its_owner_and_removed_on_every_exit(tmp_path):
    from arcsolver.atomic import owner_tag, staged_folder

    target, said = tmp_path / "bundle", []
    with staged_folder(target, ".bundle.partial-", said.append) as staging:
        assert staging == tmp_path / f".bundle.partial-{owner_tag()}" and staging.is_dir()
        (staging / "half").write_text("half")
    assert list(tmp_path.iterdir()) == [] and said == []
    with pytest.raises(KeyboardInterrupt), staged_folder(target, ".bundle.partial-", said.append) as staging:
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with staged_folder(target, ".bundle.partial-", said.append) as staging:
        (staging / "whole").write_text("whole")
        os.replace(staging, target)
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_only_the_folders_of_dead_owners_of_the_same_target_are_removed_and_each_is_said(tmp_path):
    from arcsolver.atomic import STALE_AFTER_S, remove_stale_staging, staged_folder

    dead = dead_owner()
    killed = tmp_path / f".run.arcsolver-{dead}.tmp"  # a killed import's half-written run
    killed_step = tmp_path / f".tmp-step_0000012-{dead}"  # a family whose names carry a word (the step)
    live = tmp_path / f".run.arcsolver-{dead.rsplit('-', 1)[0]}-{os.getppid()}.tmp"  # a running process's
    remote = tmp_path / ".run.arcsolver-otherhost-1.tmp"  # another machine's, recent
    remote_old = tmp_path / ".run.arcsolver-otherhost-2.tmp"
    other_target = tmp_path / f".other.arcsolver-{dead}.tmp"
    for folder in (killed, killed_step, live, remote, remote_old, other_target):
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "part").write_bytes(b"x" * 100)
    old = os.path.getmtime(remote_old) - STALE_AFTER_S - 10
    os.utime(remote_old, (old, old))
    said = []
    with staged_folder(tmp_path / "run", ".run.arcsolver-", said.append, suffix=".tmp") as staging:
        assert staging.name.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (killed_step, live, remote, other_target)
    )
    assert sorted(said) == sorted(
        f"removed {folder}: the unfinished work of process {pid} on {host}, which is gone"
        for folder, (host, pid) in ((killed, dead.rsplit("-", 1)), (remote_old, ("otherhost", "2")))
    )
    said.clear()
    remove_stale_staging(tmp_path, ".tmp-step_", said.append)
    assert not killed_step.exists() and len(said) == 1 and str(killed_step) in said[0]


def test_signals_raised_turns_sigterm_into_the_exception_given_and_restores_the_handler():
    import signal

    from arcsolver.atomic import Terminated, signals_raised, terminations_raised

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as caught, signals_raised(lambda signum: SystemExit(128 + signum)):
        os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.code == 143 and signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(Terminated), terminations_raised():
        os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before
