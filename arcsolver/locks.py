"""Who may write where: one process per run directory or submission (outputs over inputs:
arcsolver/inputs.py).

A run directory (or a submission) written by two processes at once ends with files of both, and
neither knows. Each writer takes an exclusive lock on a file beside what it writes, held for its
whole life; a second writer is refused in one line that names the holder. The lock is the
kernel's (flock): it ends with its process, however the process ends, so a killed run never
leaves a lock that blocks the next one.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path

from arcsolver.errors import ArcsolverError


class Busy(ArcsolverError):
    """Another process holds the lock on a path we are about to write."""


class LockError(ArcsolverError):
    """The lock file cannot be made: a link or a directory in its place, or a read-only directory."""


class Lock:
    """An exclusive lock on `path` (a file created if absent), with the holder's host and pid
    written in it for the refusal message. Release it with release() or a with-block; under
    torchrun, only the process that writes (rank 0) should take it."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self._fd: int | None = None

    def acquire(self) -> Lock:
        if not os.access(self.path.parent, os.W_OK):  # else the lock is taken and the first write fails
            raise LockError(self.refusal(OSError(errno.EACCES, "not writable")))
        # O_NOFOLLOW: a link in the lock's place is refused, never written through; O_NONBLOCK:
        # a FIFO there does not hang the open.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as e:
            raise LockError(self.refusal(e)) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise LockError(f"{self.path}: not a regular file where the lock of {self.what} goes; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise Busy(
                f"{self.what} is in use by {holder} (lock {self.path}); wait for it to finish or choose another path"
            ) from None
        except OSError:
            os.close(fd)  # a file system without locks (some network mounts): carry on unguarded
            return self
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def refusal(self, e: OSError) -> str:
        """The one line for a lock file that cannot be opened: a link, a directory, or a directory
        that cannot be written."""
        if e.errno == errno.ELOOP:
            return f"{self.path}: a symbolic link where the lock of {self.what} goes; a lock is never written through a link: remove it"
        if e.errno == errno.EISDIR:
            return f"{self.path}: a directory where the lock of {self.what} goes; remove or rename it"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return (
                f"{self.path.parent}: cannot write there ({e.strerror}); make it writable, or choose another path "
                f"for {self.what}"
            )
        return f"{self.path}: cannot create the lock of {self.what} ({e.strerror or e}); choose another path"

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays, harmless
            self._fd = None

    def __enter__(self) -> Lock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def is_lock(path: Path) -> bool:
    """Whether path is named as one of our locks: a run's (.lock) or an output's (.NAME.lock). A
    lock replaced by another file no longer guards what it locks, so no output may be one."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(".lock")


def run_lock(run_dir: Path) -> Lock:
    """The lock of a run directory (the directory must exist)."""
    return Lock(Path(run_dir) / ".lock", f"run directory {run_dir}")


def output_lock(path: Path) -> Lock:
    """The lock of an output file, beside it (its directory must exist)."""
    path = Path(path)
    return Lock(path.parent / f".{path.name}.lock", str(path))
