"""What a command may write: the set of its inputs, which no output may replace, and the folders
it writes.

The input set holds every file a command reads (each through the checked reader, reader.py), the
ones named on its command line and the ones it finds itself (a checkpoint's weights and state, a
run's config.json and metrics.jsonl, the challenges beside the solutions), and the directories it
reads as a whole (a checkpoint, a run's checkpoints, a directory of task files). `refuse_outputs`
turns away, before any work, an output that is one of those files, or lies inside one of those
directories. Beside an input is allowed: a run's folder holds its own submission and curves, a
data folder its exports. No output is a lock file (locks.is_lock): replaced, a lock guards nothing.

The folders a command writes: one it fills (a run, a bundle) is new, empty or a run of ours
(`refuse_foreign_dir`); one it adds files to (an export, a run's curves) loses none of the
user's files to them (`refuse_overwrites`).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from arcsolver.errors import ArcsolverError
from arcsolver.locks import is_lock
from arcsolver.reader import check_input_file, read_json


@dataclass
class Inputs:
    """Every file a command reads (what it is, where it is) and the directories it reads as a whole."""

    files: list[tuple[str, Path]] = field(default_factory=list)
    directories: list[tuple[str, Path]] = field(default_factory=list)

    def file(self, what: str, path: str | Path | None) -> Inputs:
        if path is not None:
            self.files.append((what, Path(path)))
        return self

    def directory(self, what: str, path: str | Path | None) -> Inputs:
        if path is not None:
            self.directories.append((what, Path(path)))
        return self

    def data(self, what: str, source: str | Path | None) -> Inputs:
        """A data source: a file (`what` file), or a directory of task files read whole (`what`
        directory); a bundled set's name is no path and adds nothing."""
        if source is None or not Path(source).exists():
            return self
        path = Path(source)
        return self.directory(f"{what} directory", path) if path.is_dir() else self.file(f"{what} file", path)


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))  # symlinks resolved, also where the tail does not exist


def distinct(paths) -> list[Path]:
    """Each path once, identified by where it really is: a repeat, or a link to one given before,
    is dropped (a run or a checkpoint named twice counts once)."""
    seen: set[Path] = set()
    kept = []
    for path in map(Path, paths):
        if (real := _real(path)) not in seen:
            seen.add(real)
            kept.append(path)
    return kept


def _clash(output: Path, inputs: Inputs) -> str | None:
    """What output would replace or write into, in words; None if nothing."""
    real = _real(output)
    if is_lock(output) or is_lock(real):
        return "is a lock file, which keeps a second writer out of a run or an output (replaced, it guards nothing)"
    for what, path in inputs.files:
        if real == _real(path):
            return f"is the {what} this command reads ({path})"
        try:
            if os.path.samefile(output, path):  # a hard link
                return f"is the {what} this command reads ({path})"
        except OSError:
            pass
    for what, path in inputs.directories:
        folder = _real(path)
        if real == folder or folder in real.parents:
            return f"lies inside the {what} {path}, which this command reads"
    return None


def refuse_outputs(outputs: list[tuple[str, Path]], inputs: Inputs) -> None:
    """Refuse, before any work, an output file (option, path) that is one of the inputs or lies
    inside an input directory, or that exists and is not a regular file; one ArcsolverError naming it."""
    for option, path in outputs:
        path = Path(path)
        try:
            info = os.stat(path)
        except FileNotFoundError:
            info = None
        except OSError as e:
            raise ArcsolverError(f"{option} {path}: cannot use it: {e.strerror or e}") from None
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise ArcsolverError(f"{option} {path}: not a regular file; give the path of a file to write")
        if clash := _clash(path, inputs):
            raise ArcsolverError(f"{option} {path}: {clash}; write to another path")


def refuse_output_dir(option: str, path: Path, inputs: Inputs) -> None:
    """Refuse, before any work, an output directory that is one of the inputs or lies inside an
    input directory; one ArcsolverError naming it."""
    if clash := _clash(Path(path), inputs):
        raise ArcsolverError(f"{option} {path}: {clash}; write to another directory")


# --- output folders: new, empty, or ours ------------------------------------------------------


# PretrainConfig's sections (tests/test_inputs.py keeps them so): named here, since the
# settings sit layers above the file checks.
RUN_SECTIONS = frozenset({"data", "model", "optim", "run", "eval"})


def is_our_run(folder: Path) -> bool:
    """Whether folder is a run directory of arcsolver: its config.json, read through the checked
    reader, is an object of PretrainConfig's sections, the model's among them. One that is a pipe,
    a device or past the size limit is refused as such (DataError), never opened."""
    path = Path(folder) / "config.json"
    if not os.path.lexists(path):
        return False
    check_input_file(path)
    try:
        config = read_json(path)
    except ArcsolverError:  # not JSON, not UTF-8: the config of something else
        return False
    return isinstance(config, dict) and isinstance(config.get("model"), dict) and set(config) <= RUN_SECTIONS


def _already_there(folder: Path, writes) -> list[str]:
    return [name for name in writes if os.path.lexists(Path(folder) / name)]


def refuse_foreign_dir(option: str, folder: Path, writes) -> None:
    """Refuse, before any work, a folder a command fills as a whole (a run, a bundle) unless it
    is new, empty (lock files aside) or a run of ours (is_our_run); one ArcsolverError naming the
    files of `writes` (names in the folder) it would overwrite there, or else what it holds."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    if not folder.is_dir():
        raise ArcsolverError(f"{option} {folder}: not a folder; give a new or empty folder")
    try:
        with os.scandir(folder) as entries:
            held = list(islice((e.name for e in entries if not is_lock(e.name)), 4))
    except OSError as e:
        raise ArcsolverError(
            f"{option} {folder}: cannot read it ({e.strerror or e}); give a new or empty folder"
        ) from None
    if not held or is_our_run(folder):
        return
    raise ArcsolverError(
        f"{option} {folder}: not an empty folder, nor a run of arcsolver ({_holds(folder, held, writes)}); "
        "choose a new or empty folder"
    )


def refuse_filled_dir(option: str, folder: Path, writes) -> None:
    """Refuse, before any work, a folder a command fills as a whole and only afresh (an imported
    run): anything there but lock files, naming what it would overwrite, or else what it holds."""
    folder = Path(folder)
    if not os.path.lexists(folder):
        return
    try:
        with os.scandir(folder) as entries:
            held = list(islice((e.name for e in entries if not is_lock(e.name)), 4))
    except NotADirectoryError:
        held = [folder.name]
    except OSError as e:
        raise ArcsolverError(f"{folder}: cannot read it ({e.strerror or e}); choose another {option}") from None
    if held:
        raise ArcsolverError(
            f"{folder}: already exists and is not empty ({_holds(folder, held, writes)}); choose another {option}"
        )


def _holds(folder: Path, held: list[str], writes) -> str:
    clash = _already_there(folder, writes)
    if clash:
        return f"writing there would overwrite {', '.join(clash)}"
    return f"it holds {', '.join(held[:3])}" + (", ..." if len(held) > 3 else "")


def refuse_overwrites(option: str, folder: Path, writes) -> None:
    """Refuse, before any work, writing the files `writes` (names) into a folder that already
    holds one of them and is not a run of ours (whose files are ours to replace): one
    ArcsolverError naming each. A command that adds files to a folder of the user's (an export,
    a run's curves) writes beside what is there, and over nothing of it."""
    folder = Path(folder)
    clash = _already_there(folder, writes) if folder.is_dir() else []
    if clash and not is_our_run(folder):
        raise ArcsolverError(
            f"{option} {folder}: already holds {', '.join(clash)}, which writing there would overwrite; "
            "move them away or choose another folder"
        )
