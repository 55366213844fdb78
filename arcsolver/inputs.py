"""What a command reads: one checked reader for every file a user controls, and the set of a
command's inputs that no output may replace.

The reader looks before it opens: a path that is not a regular file (a FIFO would block the
open, /dev/zero would fill memory) or is over the size limit is refused by its stat, and the
file is read through a descriptor checked again after opening, never past the limit.

The input set holds every file a command reads, the ones named on its command line and the ones
it finds itself (a checkpoint's weights and state, a run's config.json and metrics.jsonl, the
challenges beside the solutions), and the directories it reads as a whole (a checkpoint, a run's
checkpoints, a directory of task files). `refuse_outputs` turns away, before any work, an output
that is one of those files, or lies inside one of those directories. Beside an input is allowed:
a run's folder holds its own submission and curves, a data folder its exports. No output is a
lock file (locks.is_lock): replaced, a lock guards nothing.

The folders a command writes: one it fills (a run, a bundle) is new, empty or a run of ours
(`refuse_foreign_dir`); one it adds files to (an export, a run's curves) loses none of the
user's files to them (`refuse_overwrites`).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from arcsolver.environment import env_number
from arcsolver.errors import ArcsolverError, DataError
from arcsolver.locks import is_lock

# The largest input file read (a challenges file of every ARC task ever published is ~100 MB):
# past it, or from a device or a pipe, a read could fill memory before the first check.
MAX_INPUT_MB_VARIABLE = "ARCSOLVER_MAX_INPUT_MB"
MAX_INPUT_MB = 512


def input_limit_bytes() -> float:
    """The size limit on input files: 512 MB, or the ARCSOLVER_MAX_INPUT_MB environment variable
    (from a byte to a terabyte)."""
    return env_number(MAX_INPUT_MB_VARIABLE, MAX_INPUT_MB, 1e-6, 1e6, "megabytes") * 1e6


def _kind(mode: int) -> str:
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file (a device, pipe or socket)"


def check_regular_file(path: Path, error: type[ArcsolverError] = DataError) -> os.stat_result:
    """The stat of path, which must be a regular file (a link to one will do); `error` otherwise.
    Stat never blocks, where opening a FIFO would."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: {_kind(info.st_mode)}; give the path of a file")
    return info


def check_input_file(path: Path, error: type[ArcsolverError] = DataError) -> os.stat_result:
    """Raise `error` unless path is a regular file within the input size limit (512 MB, or the
    ARCSOLVER_MAX_INPUT_MB environment variable)."""
    info = check_regular_file(path, error)
    limit = input_limit_bytes()
    if info.st_size > limit:
        raise error(
            f"{path}: {info.st_size / 1e6:.1f} MB, over the {limit / 1e6:g} MB limit on input files; "
            f"set {MAX_INPUT_MB_VARIABLE} to raise it"
        )
    return info


def read_bytes(path, error: type[ArcsolverError] = DataError) -> bytes:
    """The bytes of a checked input file (check_input_file), never more than the limit: the file
    is opened without blocking and checked again through its descriptor, so that a path swapped
    for a pipe or a device between the stat and the open is refused too."""
    path = Path(path)
    check_input_file(path, error)
    limit = int(input_limit_bytes())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise error(f"{path}: {_kind(mode)}; give the path of a file")
        os.set_blocking(fd, True)
        chunks, size = [], 0
        while size <= limit and (chunk := os.read(fd, min(1 << 20, limit + 1 - size))):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)
    if size > limit:
        raise error(
            f"{path}: grew past the {limit / 1e6:g} MB limit on input files while read; set {MAX_INPUT_MB_VARIABLE} to raise it"
        )
    return b"".join(chunks)


def _decoded(path, data: bytes, error: type[ArcsolverError], fix: str) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); {fix}") from None


def read_text(path, error: type[ArcsolverError] = DataError) -> str:
    """A checked input file as UTF-8 text."""
    return _decoded(path, read_bytes(path, error), error, "save it as UTF-8")


def parse_json(text: str):
    """json.loads; ValueError (with the decoder's message) for anything it cannot read, nesting
    too deep to parse included."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to read") from None


def read_json(path, error: type[ArcsolverError] = DataError) -> object:
    """A checked input file parsed as JSON; any fault is one `error` naming the file."""
    text = _decoded(path, read_bytes(path, error), error, "save it as UTF-8 JSON")
    try:
        return parse_json(text)
    except json.JSONDecodeError as e:
        raise error(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except ValueError as e:  # nesting too deep; an integer of thousands of digits
        if "nested too deeply" in str(e):
            raise error(f"{path}: JSON nested too deeply to read; an ARC file nests at most 4 levels") from None
        raise error(f"{path}: invalid JSON: {str(e).split(':')[0]}") from None


def read_json_lines(path, error: type[ArcsolverError] = DataError) -> list[tuple[int, str, object]]:
    """(line number, line, record) of each non-blank line of a checked JSON-lines file; record is
    the ValueError where a line is not JSON (a half-written last line, a nest too deep), for the
    caller to judge."""
    records = []
    for n, line in enumerate(read_text(path, error).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((n, line, parse_json(line)))
        except ValueError as e:
            records.append((n, line, e))
    return records


def weights_file(path, error: type[ArcsolverError] = DataError) -> str:
    """The path of a safetensors file, checked to be a non-empty regular file before the library
    maps it (weights are mapped, not read whole: their size is bounded by the header checks)."""
    info = check_regular_file(Path(path), error)
    if info.st_size == 0:
        raise error(f"{path}: empty (0 bytes), not a safetensors file")
    return str(path)


# --- the input set and its guard -------------------------------------------------------------


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


# PretrainConfig's sections (tests/test_input_files.py keeps them so): named here, since the
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
    return (
        isinstance(config, dict)
        and isinstance(config.get("model"), dict)
        and set(config) <= RUN_SECTIONS
    )


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
    clash = _already_there(folder, writes)
    holds = f"writing there would overwrite {', '.join(clash)}" if clash else f"it holds {', '.join(held[:3])}"
    more = ", ..." if not clash and len(held) > 3 else ""
    raise ArcsolverError(
        f"{option} {folder}: not an empty folder, nor a run of arcsolver ({holds}{more}); choose a new or empty folder"
    )


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
