"""Atomic file writes: a reader (or a run killed midway) never sees a half-written file.

The data go to a temporary file beside the target, named `.<target>.arcsolver-<host>-<pid>-<random>.tmp`,
and are renamed over the target once complete. A process killed mid-write leaves that file
behind; the next write of the same target removes it once its writer is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path

from arcsolver.errors import ArcsolverError

# A temporary of another machine (a shared file system) is stale after this long; one of this
# machine is stale as soon as its process is gone.
STALE_AFTER_S = 24 * 3600
_HOST = re.sub(r"\W", "_", socket.gethostname(), flags=re.ASCII)[:40] or "host"


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def temp_prefix(path: Path) -> str:
    """The start of the name of this process's temporary files for path."""
    return f".{path.name}.arcsolver-{_HOST}-{os.getpid()}-"


def _temp_name(path: Path) -> re.Pattern:
    return re.compile(rf"\.{re.escape(path.name)}\.arcsolver-(?P<host>\w+?)-(?P<pid>\d+)-\w+\.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process; or a pid we cannot ask about
    return True


def stale_temps(path: Path) -> list[Path]:
    """Temporary files of earlier writes of path whose writer was killed before renaming them."""
    pattern, stale = _temp_name(path), []
    with os.scandir(path.parent) as entries:
        for entry in entries:
            match = pattern.fullmatch(entry.name)
            if match is None:
                continue
            gone = match["host"] == _HOST and not _alive(int(match["pid"]))
            try:
                old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
            except FileNotFoundError:
                continue  # renamed into place meanwhile
            if gone or old:
                stale.append(Path(entry.path))
    return stale


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write data to a temporary file beside path, fsync it, then rename it over path.

    Temporary files that killed earlier writes of path left behind are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_temps(path):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def plain_permissions(path: str | os.PathLike) -> None:
    """Give a file the permissions a plain open() would (0644 under the usual umask): safetensors
    writes its files private (0600), unreadable to another user sharing the folder."""
    os.chmod(path, 0o666 & ~_UMASK)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text as UTF-8, atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write obj as compact JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, separators=(",", ":")))


def write_problem(e: BaseException) -> str:
    """Why a write failed, in a few words: the system's reason ("No space left on device"), else
    the first line of the message."""
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


@contextlib.contextmanager
def reported_writes(path: str | os.PathLike, intact: str = "the files already there are intact"):
    """Turn a failed write inside (a full disk, a read-only directory) into one ArcsolverError line
    naming path and what is left as it was."""
    try:
        yield
    except OSError as e:
        raise ArcsolverError(f"{path}: cannot write ({write_problem(e)}); {intact}") from None


class Terminated(BaseException):
    """SIGTERM arrived: raised where the signal lands, so that clean-ups run (like Ctrl-C's
    KeyboardInterrupt, and not caught by `except Exception`)."""


@contextlib.contextmanager
def terminations_raised():
    """Inside, SIGTERM raises Terminated instead of ending the process at once, so a staged
    write removes its temporary files; outside, the handler is what it was. A no-op off the
    main thread, where signals cannot be handled."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
