"""The host's side of a container's ``/mnt/data``: list, read, write and remove its files.

The sandboxed code owns that directory and may plant symlinks, fifos or devices in it, so
nothing here follows a symlink: every path is walked one component at a time from a
directory file descriptor, each opened with ``O_NOFOLLOW``. A symlink met on the way is an
error (``ValueError``); one met while listing is skipped.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PREFIX = "/mnt/data/"
_MAX_PART = 255
_MAX_PATH = 1024


@dataclass(frozen=True, slots=True)
class Entry:
    #: Relative to the directory, "/"-separated, e.g. "out/chart.png".
    path: str
    size: int
    mtime_ns: int


def safe_path(name: str) -> str:
    """A client-given file name or path made safe as a relative path under /mnt/data:
    strips a leading "/mnt/data/", refuses "..", absolute paths, NULs, empty parts; raises
    ValueError."""
    if "\x00" in name:
        raise ValueError("a file path may not hold a NUL character")
    path = name[len(_PREFIX) :] if name.startswith(_PREFIX) else name
    if path.startswith("/"):
        raise ValueError(f"a file path must be relative to /mnt/data: {name!r}")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise ValueError(f"a file path may not have an empty, '.' or '..' part: {name!r}")
        if len(part.encode("utf-8", "surrogateescape")) > _MAX_PART:
            raise ValueError(f"a file name is longer than {_MAX_PART} bytes: {name!r}")
    if len(path.encode("utf-8", "surrogateescape")) > _MAX_PATH:
        raise ValueError(f"a file path is longer than {_MAX_PATH} bytes")
    return path


def scan(directory: Path, *, most: int = 10_000) -> dict[str, Entry]:
    """Regular files under directory, recursively, never following symlinks (walk with dir
    fds and O_NOFOLLOW|O_DIRECTORY; skip symlinks, devices, fifos, sockets), at most
    ``most``."""
    found: dict[str, Entry] = {}
    for path, st in _walk(directory, most * 4):
        if len(found) >= most:
            break
        found[path] = Entry(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return found


def usage(directory: Path) -> int:
    """Bytes under directory (its regular files' sizes; links not followed)."""
    return tally(directory)[0]


def tally(directory: Path, *, most: int = 1_000_000) -> tuple[int, int]:
    """Bytes of the regular files under directory, and how many entries (files, folders,
    links...) it holds; the walk stops after ``most`` entries."""
    total = 0
    count = 0
    for _, st in _walk(directory, most, every=True):
        count += 1
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
    return total, count


def read(directory: Path, path: str, *, most: int) -> bytes:
    """The bytes of the regular file ``path`` under directory: O_NOFOLLOW on every
    component; ValueError past ``most`` bytes or for a non-regular file (or a symlink on
    the way); FileNotFoundError when there is none."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents) as parent:
        try:
            fd = os.open(name, _FILE, dir_fd=parent)
        except OSError as exc:
            raise _plain(exc, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_size > most:
            raise ValueError(f"{path} is larger than {most} bytes")
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 20, most + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > most:
                raise ValueError(f"{path} is larger than {most} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def write(directory: Path, path: str, data: bytes) -> None:
    """Write ``data`` as the file ``path`` under directory: creates parent folders safely,
    replaces an existing regular file (by a rename, so a reader sees the old or the new),
    refuses to go through a symlink or to replace anything but a regular file."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents, create=True) as parent:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"{path} exists and is not a regular file")
        temporary = f".parley-{secrets.token_hex(8)}"
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=parent
        )
        try:
            with os.fdopen(fd, "wb", closefd=True) as out:
                out.write(data)
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=parent)
            raise


def remove(directory: Path, path: str) -> None:
    """Remove ``path`` under directory: a file or a symlink itself (never its target), or a
    folder with all it holds. FileNotFoundError when there is none."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents) as parent:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise _plain(exc, path) from None
        if stat.S_ISDIR(st.st_mode):
            _remove_tree(parent, name)
        else:
            os.unlink(name, dir_fd=parent)


def _remove_tree(parent: int, name: str) -> None:
    fd = os.open(name, _DIR, dir_fd=parent)
    try:
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(fd, entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent)


@contextlib.contextmanager
def _opened(directory: Path, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of directory/parts..., each component opened without following a
    symlink; ``create`` makes missing folders (mode 0700)."""
    fd = os.open(directory, _DIR)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as exc:
                raise _plain(exc, part) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _plain(exc: OSError, path: str) -> Exception:
    """A symlink or a non-folder where a folder was wanted is a ValueError; a missing file
    stays FileNotFoundError."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EMLINK):
        return ValueError(f"{path} is a symlink or not a regular file or folder")
    return exc


def _walk(
    directory: Path, most: int, *, every: bool = False
) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of the regular files under directory (every entry, folders
    and links too, with ``every``), at most ``most`` entries visited."""
    try:
        root = os.open(directory, _DIR)
    except FileNotFoundError:
        return
    seen = 0
    stack: list[tuple[int, str]] = [(root, "")]
    try:
        while stack:
            fd, prefix = stack.pop()
            try:
                with os.scandir(fd) as entries:
                    for entry in entries:
                        seen += 1
                        if seen > most:
                            return
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except OSError:
                            continue
                        path = prefix + entry.name
                        if every:
                            yield path, st
                        if stat.S_ISDIR(st.st_mode):
                            try:
                                child = os.open(entry.name, _DIR, dir_fd=fd)
                            except OSError:
                                continue
                            stack.append((child, path + "/"))
                        elif stat.S_ISREG(st.st_mode) and not every:
                            yield path, st
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
