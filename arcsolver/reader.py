"""What a command reads: one checked reader for every file a user controls.

The reader looks before it opens: a path that is not a regular file (a FIFO would block the
open, /dev/zero would fill memory) or is over the size limit is refused by its stat, and the
file is read through a descriptor checked again after opening, never past the limit.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from arcsolver.environment import env_number
from arcsolver.errors import ArcsolverError, DataError

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
