"""Reading and writing files that a job could have tampered with, with the user's rights, safely.

nightlab reads files after (and while) untrusted code ran: the job's log, its status and pid files, its progress
file, a metrics file it wrote. Under a confinement layer the control files live where the job has no write access,
but under layer 0 (`--unsafe-no-sandbox`) it can reach all of them, and a metrics or progress file is always the
job's. So every such read here:

- never follows a symbolic link (a link to `~/.ssh/id_rsa` is refused, not read; under a worktree no component
  of the path may be a link either: `open_beneath`),
- opens without blocking and insists on a regular file (a FIFO would hang the reader, `/dev/zero` never ends),
- reads at most a stated number of bytes (a 50 GB "log" cannot exhaust the agent's memory).

Writes replace files by rename (`atomic_write_bytes`), so a link planted at the destination is replaced, never
followed. Standard library only: the wrapper and `confine.py` run without site-packages.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


class UnsafeFile(OSError):
    """The path is a link, a FIFO, a device, a directory...: not a regular file nightlab may read. `strerror` says
    which ("a symbolic link", "not a regular file")."""

    def __init__(self, path: str | Path, why: str) -> None:
        super().__init__(errno.EINVAL, why, str(path))


def _check_regular(fd: int, path: str | Path) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafeFile(path, "not a regular file")
    return st


def open_regular(path: str | Path, dir_fd: int | None = None) -> int:
    """A read-only descriptor of `path` if it is a regular file reached without following a final link; else
    UnsafeFile (or FileNotFoundError). Never blocks (a FIFO opens and is then refused)."""
    try:
        fd = os.open(path, _READ_FLAGS, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the last component is a symbolic link
            raise UnsafeFile(path, "a symbolic link") from None
        raise
    _check_regular(fd, path)
    os.set_blocking(fd, True)
    return fd


def open_beneath(root: str | Path, rel: str | Path) -> int:
    """Open `root/rel` for reading, refusing a link at any component below `root` (and `..`). For files inside a
    worktree the job could write: a directory replaced by a link to `~/.ssh` is refused like a linked file."""
    parts = [p for p in Path(rel).parts if p not in ("", ".")]
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise UnsafeFile(rel, f"not a relative path below {root}")
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):  # a link or a file where a folder should be
                    raise UnsafeFile(os.path.join(root, rel), f"{part} is a symbolic link or not a folder") from None
                raise
            os.close(dfd)
            dfd = nxt
        return open_regular(parts[-1], dir_fd=dfd)
    finally:
        os.close(dfd)


def read_fd(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from the start of an open file (closes it)."""
    try:
        chunks: list[bytes] = []
        left = limit
        while left > 0:
            b = os.read(fd, min(left, 1 << 20))
            if not b:
                break
            chunks.append(b)
            left -= len(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_head_tail_fd(fd: int, limit: int) -> bytes:
    """The whole file when it fits in `limit` bytes, else a quarter of `limit` from its head and the rest from its
    tail, joined by a newline (closes the descriptor)."""
    try:
        size = os.fstat(fd).st_size
        if size <= limit:
            return os.pread(fd, limit, 0)  # a file still growing gives what is there, `limit` at most
        head = os.pread(fd, limit // 4, 0)
        tail = os.pread(fd, limit - limit // 4, size - (limit - limit // 4))
        return head + b"\n" + tail
    finally:
        os.close(fd)


def read_bytes(path: str | Path, limit: int) -> bytes:
    """At most `limit` bytes from the head of a regular file (no links); FileNotFoundError / UnsafeFile else."""
    return read_fd(open_regular(path), limit)


def read_head_tail(path: str | Path, limit: int) -> bytes:
    """A regular file's bytes, at most `limit` of them (head and tail, see `read_head_tail_fd`)."""
    return read_head_tail_fd(open_regular(path), limit)


def read_json(path: str | Path, limit: int = 1 << 16) -> Any:
    """A small JSON document from a regular file, or None when it is missing, not a regular file, too large or
    not JSON. Never raises for anything a job could have put there."""
    try:
        raw = read_bytes(path, limit + 1)
    except OSError:
        return None
    if len(raw) > limit:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o644, sync_dir: bool = False) -> None:
    """Replace `path` by a new file holding `data` (temp file, fsync, rename): a reader sees the old or the whole new
    file, and a link or FIFO someone planted at `path` is replaced, never written through. `sync_dir`: fsync the
    folder too, so the rename itself survives a crash."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        if sync_dir:
            dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
