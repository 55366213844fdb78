"""Locks on what a command writes, and outputs that would replace an input."""

import subprocess
import sys

import pytest

from arcsolver.errors import ArcsolverError
from arcsolver.inputs import Inputs, refuse_outputs
from arcsolver.locks import Busy, output_lock, run_lock

HOLD = "import sys, time; from arcsolver.locks import run_lock; run_lock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match=f"process {holder.pid} on .*choose another path"):
            run_lock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the killed holder's lock went with it
        pass


def test_the_lock_is_released_and_taken_again_in_one_process(tmp_path):
    out = tmp_path / "submission.json"
    lock = output_lock(out).acquire()
    lock.release()
    with output_lock(out):
        with pytest.raises(Busy):  # flock locks are per open file: a second open is refused
            output_lock(out).acquire()


def test_outputs_that_are_inputs_or_not_files_are_refused(tmp_path):
    challenges = tmp_path / "c.json"
    challenges.write_text("{}")
    link = tmp_path / "link.json"
    link.symlink_to(challenges)
    inputs = Inputs().file("challenges file", challenges)
    for alias in [challenges, tmp_path / "." / "c.json", link]:
        with pytest.raises(ArcsolverError, match="--out .* is the challenges file"):
            refuse_outputs([("--out", alias)], inputs)
    with pytest.raises(ArcsolverError, match="not a regular file"):
        refuse_outputs([("--out", "/dev/null")], inputs)
    with pytest.raises(ArcsolverError, match="not a regular file"):
        refuse_outputs([("--csv", tmp_path)], Inputs())
    refuse_outputs([("--out", tmp_path / "new.json")], inputs.file("solutions", None))
