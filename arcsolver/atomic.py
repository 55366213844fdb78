"""Atomic writes: a reader (or a run killed midway) never sees a half-written file or folder.

The data go to a temporary file beside the target, named `.<target>.arcsolver-<host>-<pid>-<random>.tmp`,
and are renamed over the target once complete. A process killed mid-write leaves that file
behind; the next write of the same target removes it once its writer is gone.

A folder written whole (a bundle, a converted run, a checkpoint) is staged the same way, by
staged_folder: its temporary name ends in its writer's `<host>-<pid>`, and the next writer of the
same target removes the one a killed writer left, saying so. SIGTERM, by default the end of the
process at once, is turned into an exception inside signals_raised, so that the clean-ups run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
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


def _left_by_killed_writers(folder: Path, pattern: re.Pattern) -> list[tuple[Path, str]]:
    """The entries of folder whose name the pattern's host and pid groups match, where that writer
    is gone: a process of this machine that ended, or another machine's entry untouched for
    STALE_AFTER_S; each with its writer in words."""
    stale = []
    with os.scandir(folder) as entries:
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
                stale.append((Path(entry.path), f"process {match['pid']} on {match['host']}"))
    return stale


def stale_temps(path: Path) -> list[Path]:
    """Temporary files of earlier writes of path whose writer was killed before renaming them."""
    return [stale for stale, _ in _left_by_killed_writers(path.parent, _temp_name(path))]


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


# --- staged folders ---------------------------------------------------------------------------


def owner_tag() -> str:
    """This process, as the name of a folder it stages ends: `<host>-<pid>`."""
    return f"{_HOST}-{os.getpid()}"


def _staging_name(prefix: str, suffix: str) -> re.Pattern:
    # <prefix>[<word>-]<host>-<pid><suffix>: the word tells a family's folders apart (a checkpoint's step).
    return re.compile(rf"{re.escape(prefix)}(?:\w*-)?(?P<host>\w+)-(?P<pid>\d+){re.escape(suffix)}")


def remove_stale_staging(parent: Path, prefix: str, say: Callable[[str], None], suffix: str = "") -> None:
    """Remove the folders in parent named `<prefix>[<word>-]<host>-<pid><suffix>` whose writer was
    killed before renaming them into place (see _left_by_killed_writers), each said in one line."""
    for stale, writer in _left_by_killed_writers(Path(parent), _staging_name(prefix, suffix)):
        shutil.rmtree(stale, ignore_errors=True)
        say(f"removed {stale}: the unfinished work of {writer}, which is gone")


@contextlib.contextmanager
def staged_folder(target: Path, prefix: str, say: Callable[[str], None], suffix: str = "") -> Iterator[Path]:
    """A fresh folder beside target, `<prefix><host>-<pid><suffix>`, for the caller to fill and
    rename over target; removed on every other exit (an error, Ctrl-C, a signal made an exception
    by signals_raised). The folders a killed writer of target left are removed first, saying so.
    OSError where the folder cannot be made."""
    target = Path(target)
    remove_stale_staging(target.parent, prefix, say, suffix)
    staging = target.parent / f"{prefix}{owner_tag()}{suffix}"
    shutil.rmtree(staging, ignore_errors=True)  # an ended process's of our pid (a restarted container)
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once renamed into place


# --- signals made exceptions ---------------------------------------------------------------------


class Terminated(BaseException):
    """SIGTERM arrived: raised where the signal lands, so that clean-ups run (like Ctrl-C's
    KeyboardInterrupt, and not caught by `except Exception`)."""


@contextlib.contextmanager
def signals_raised(
    exception: Callable[[int], BaseException], signums: tuple[int, ...] = (signal.SIGTERM,)
) -> Iterator[None]:
    """Inside, each of signums raises exception(signum) where it lands instead of ending the
    process at once, so that a staged write removes its temporary files; on leaving, each handler
    is what it was, unless something replaced ours meanwhile. A no-op off the main thread, where
    signals cannot be handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum, frame):
        raise exception(signum)

    previous = {signum: signal.signal(signum, handle) for signum in signums}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is handle:
                signal.signal(signum, handler)


def terminations_raised():
    """Inside, SIGTERM raises Terminated (see signals_raised)."""
    return signals_raised(lambda signum: Terminated())


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn by which Linux sends the child SIGTERM when this process dies, however it dies
    (SIGKILL included), so that no child outlives it; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Looked up here, in the parent: between fork and exec the child should do no more than call it.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
