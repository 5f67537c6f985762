"""The walk of a folder tree the sandboxed code owns, holding a bounded number of
descriptors and never following a symlink.

``walk`` yields every entry under a directory, depth first, with no recursion: a ``Cursor``
holds one descriptor and moves down into a folder and back up by "..", checking each time
it goes up that it lands on the folder it came down from. The sandboxed code may rename
folders during a walk; when ".." no longer leads back, the walk raises ``WalkError`` rather
than measure a tree it can no longer vouch for, or climb out of the directory. ``files``
builds its walks (``scan``, ``tally``, ``remove``) on these.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DIR_FLAGS", "MAX_PATH", "Cursor", "WalkError", "joined", "listing", "walk"]

#: How a folder is opened: read-only, a folder, never through a symlink.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: The longest relative path (in bytes) a call may name.
MAX_PATH = 1024
#: Why a folder listed a moment ago can no longer be entered, when that is no reason to stop
#: a walk: it is gone (ENOENT), or was replaced by a file (ENOTDIR) or a symlink (ELOOP).
_MOVED_ON = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class WalkError(OSError):
    """A walk of the folder tree cannot go on safely: going up from a folder by ".." did not
    lead back to the folder it came down from (the sandboxed code renamed a folder meanwhile).
    What the walk measured so far cannot be vouched for, so it stops here (fail closed)."""


def walk(directory: Path, most: int) -> Iterator[tuple[str | None, str, os.stat_result]]:
    """(folder, name, lstat) of every entry under directory (files, folders, links...),
    depth first, never following a symlink, at most ``most`` entries listed. ``folder`` is
    the relative path of the entry's folder, "" at the top or e.g. "out/deep/", or None when
    that path is longer than ``MAX_PATH`` (no call could name what it holds, and building
    it at every level would cost time and memory as deep as the tree).

    A folder is listed in one pass (at most what is left of ``most``), keeping only its
    subfolders' names, and its listing closed before the walk goes into them: the walk holds
    two descriptors at most (the folder's and its listing's, or the next folder's: see
    ``Cursor``) whatever the tree. Memory grows with the subfolders listed and the depth,
    time with the entries listed.

    Skipped, since the tree changes as it is walked: an entry gone before its lstat, a
    subfolder gone or turned into a file or a symlink before it is entered (ENOENT, ENOTDIR,
    ELOOP). Raised, since they mean the walk could not look: any other error listing, stat-ing
    or entering (EMFILE, ENFILE, ENOMEM, EACCES...), and WalkError when ".." does not lead
    back up to the folder the walk came down from. A missing directory is an empty walk."""
    try:
        top = os.open(directory, DIR_FLAGS)
    except FileNotFoundError:
        return
    cursor = Cursor(top)
    try:
        yield from _walk_from(cursor, most)
    finally:
        cursor.close()


def _walk_from(cursor: Cursor, most: int) -> Iterator[tuple[str | None, str, os.stat_result]]:
    """``walk``'s loop, from the folder where ``cursor`` is, the top."""
    seen = 0
    folder: str | None = ""
    # Per folder from the top down to the cursor: its path and its subfolders still to walk.
    todo: list[tuple[str | None, list[str]]] = []
    while True:
        subfolders: list[str] = []
        for name, st in listing(cursor.fd, most - seen):
            seen += 1  # an entry gone before its lstat counts too: it was listed
            if st is None:
                continue
            yield folder, name, st
            if stat.S_ISDIR(st.st_mode):
                subfolders.append(name)
        if seen >= most:
            return
        subfolders.reverse()  # popped from the end: walked in the order listed
        todo.append((folder, subfolders))
        entered = _enter_next(cursor, todo)
        if entered is None:
            return
        folder = _subfolder(*entered)


def listing(fd: int, room: int) -> Iterator[tuple[str, os.stat_result | None]]:
    """The names and lstat of the entries of the folder ``fd``, at most ``room`` of them;
    None for one gone before its lstat. It lists a copy of ``fd`` (os.scandir's), closed at
    the end of the listing or when the generator is closed."""
    with os.scandir(fd) as entries:
        for entry in itertools.islice(entries, max(room, 0)):
            try:
                st: os.stat_result | None = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                st = None
            yield entry.name, st


def _enter_next(
    cursor: Cursor, todo: list[tuple[str | None, list[str]]]
) -> tuple[str | None, str] | None:
    """Move ``cursor`` into the next subfolder left in ``todo`` (whose last item is the folder
    where the cursor is), going up from the folders walked through; the entered folder's
    parent path and name, or None when the walk is done (back at the top: the cursor never
    goes above it)."""
    while todo:
        folder, subfolders = todo[-1]
        while subfolders:
            name = subfolders.pop()
            if cursor.down(name):
                return folder, name
        todo.pop()
        if todo:
            cursor.up()
    return None


def joined(folder: str | None, name: str) -> str | None:
    """The relative path of ``name`` in ``folder``, or None when either is too long to name
    (past ``MAX_PATH`` bytes, as ``safe_path`` counts them)."""
    if folder is None:
        return None
    path = folder + name
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        return None
    return path


def _subfolder(folder: str | None, name: str) -> str | None:
    """The relative path, ending in "/", of the subfolder ``name`` of ``folder``; None when
    too long to name."""
    path = joined(folder, name)
    return None if path is None else path + "/"


class Cursor:
    """One descriptor that moves down and up a folder tree, so that a walk holds one
    descriptor (two while it moves) whatever the tree's depth or width.

    It keeps the identity (st_dev, st_ino) of each folder from the top down to where it is,
    and the name it entered each by. Going up opens ".." and checks that it is the folder the
    cursor came down from: the sandboxed code may rename a folder meanwhile, and ".." would
    then lead elsewhere in the tree, or above the top. That raises WalkError, as does going up
    from the top: the cursor never leaves the tree it started in."""

    def __init__(self, fd: int) -> None:
        """Own ``fd``, an open folder: the top of the walk; it is closed if this fails."""
        try:
            identity = _identity(fd)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._trail: list[tuple[tuple[int, int], str]] = [(identity, "")]

    def down(self, name: str) -> bool:
        """Enter the subfolder ``name`` (O_NOFOLLOW): True; False, staying put, when it is
        gone or is no longer a folder (a file, a symlink). Other errors raise."""
        try:
            child = os.open(name, DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in _MOVED_ON:
                return False
            raise
        try:
            identity = _identity(child)
        except BaseException:
            os.close(child)
            raise
        os.close(self.fd)
        self.fd = child
        self._trail.append((identity, name))
        return True

    def up(self) -> str:
        """Go back up to the folder the cursor came down from, and return the name of the
        folder it left. WalkError when ".." is another folder, or at the top."""
        if len(self._trail) < 2:
            raise WalkError("a walk may not go up from the top of the tree")
        parent = os.open("..", DIR_FLAGS, dir_fd=self.fd)
        try:
            if _identity(parent) != self._trail[-2][0]:
                raise WalkError(
                    f"the folder {self._trail[-1][1]!r} was moved during the walk: '..' "
                    "no longer leads back to the folder it was entered from"
                )
        except BaseException:
            os.close(parent)
            raise
        os.close(self.fd)
        self.fd = parent
        return self._trail.pop()[1]

    def close(self) -> None:
        """Let go of the descriptor."""
        os.close(self.fd)


def _identity(fd: int) -> tuple[int, int]:
    """What tells one folder from any other while it exists: its device and inode."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino
