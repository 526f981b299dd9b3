"""Files that hold secrets: the data folder and what is in it.

The SQLite database holds callback URLs and credential hashes and the key file holds the key
that decrypts every stored secret, so both are for the owner alone: the folder is created
0700 and the files 0600, whatever the umask (SQLite gives its -wal and -shm files the mode
of the database file). A file is replaced atomically (a reader sees the old or the new
content) and durably: the file is fsynced before the rename, the folder after it, so a crash
cannot leave the old name pointing at nothing. `FileLock` serializes processes that
read-modify-write such a file (`relaybox admin rotate-key`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import stat
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # group and other permission bits
_warned: set[Path] = set()


def private_dir(path: Path) -> Path:
    """Create `path` (mode 0700) if missing; warn if an existing one is open to others.

    An existing folder is left as the operator made it (it may be shared on purpose); the
    files relaybox keeps in it are 0600 either way.
    """
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & _OTHERS and path not in _warned:
        _warned.add(path)
        log.warning(
            "%s is mode %o: other users can list it; `chmod 700 %s` (docs/security.md)",
            path,
            mode,
            path,
        )
    return path


def private_file(path: Path, *, create: bool = False) -> None:
    """Make `path` mode 0600 (creating it empty if `create` and missing); absent: nothing."""
    if create:
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & _OTHERS:
            path.chmod(PRIVATE_FILE)
    except FileNotFoundError:
        pass
    except OSError as exc:  # not ours to change: say so, and go on
        log.warning("%s: cannot make it private (mode 600): %s", path, exc)


def fsync_dir(path: Path) -> None:
    """Make a rename or a creation in folder `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` (mode 0600): a reader sees the old or the new content, and
    after a crash the file holds one of them."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_dir(path.parent)


class FileLock:
    """An exclusive `flock` on `path` (created 0600), held between processes and threads.

    Blocks until the holder releases it; the kernel releases it if the holder dies. Use
    `with` in synchronous code and `async with` (which waits in a thread) in a coroutine.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()

    async def __aenter__(self) -> FileLock:
        await asyncio.to_thread(self.acquire)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()
