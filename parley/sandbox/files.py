"""The host's side of a container's ``/mnt/data``: list, read, write and remove its files.

The sandboxed code owns that directory and may plant symlinks, fifos or devices in it, so
nothing here follows a symlink: every path is walked one component at a time from a
directory file descriptor, each opened with ``O_NOFOLLOW``. A symlink met on the way is an
error (``ValueError``); one met while listing is skipped.

The walks (``scan``, ``tally``, ``usage``, ``remove``) hold a bounded number of descriptors
whatever the shape of the tree, and use no recursion: a ``_Cursor`` holds one descriptor and
moves down into a folder and back up by "..", checking each time it goes up that it lands on
the folder it came down from. The sandboxed code may rename folders during a walk; when ".."
no longer leads back, the walk raises ``WalkError`` rather than measure a tree it can no
longer vouch for, or climb out of the directory.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import secrets
import stat
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PREFIX = "/mnt/data/"
_MAX_PART = 255
_MAX_PATH = 1024
#: Why a folder listed a moment ago can no longer be entered, when that is no reason to stop
#: a walk: it is gone (ENOENT), or was replaced by a file (ENOTDIR) or a symlink (ELOOP).
_MOVED_ON = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


class WalkError(OSError):
    """A walk of the folder tree cannot go on safely: going up from a folder by ".." did not
    lead back to the folder it came down from (the sandboxed code renamed a folder meanwhile).
    What the walk measured so far cannot be vouched for, so it stops here (fail closed)."""


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
    ``most``. A file whose path is longer than ``safe_path`` allows is left out: no call can
    name it, and building such paths would cost memory as deep as the tree. Raises OSError
    (WalkError among them) when it cannot list the tree, as ``_walk`` says."""
    found: dict[str, Entry] = {}
    for folder, name, st in _walk(directory, most * 4):
        if not stat.S_ISREG(st.st_mode):
            continue
        if len(found) >= most:
            break
        path = _joined(folder, name)
        if path is not None:
            found[path] = Entry(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    return found


def usage(directory: Path) -> int:
    """Bytes under directory (its regular files' sizes; links not followed). Raises OSError
    when it cannot measure them, as ``tally`` does."""
    return tally(directory)[0]


class Interrupted(Exception):
    """``tally``'s ``every`` asked for the walk to stop (to start it again)."""


#: Entries ``tally`` visits between two calls of its ``every``.
EVERY_ENTRIES = 256


def tally(
    directory: Path, *, most: int = 1_000_000, every: Callable[[], bool] | None = None
) -> tuple[int, int]:
    """Bytes of the regular files under directory, and how many entries (files, folders,
    links...) it holds; the walk stops after ``most`` entries.

    It raises OSError when it cannot measure: out of descriptors (EMFILE, ENFILE) or memory
    (ENOMEM), a folder it may not enter (EACCES), and WalkError when the sandboxed code moved
    a folder so that the walk could not come back up the way it went down. Its caller must
    then treat the directory as over its bounds and stop the sandbox (fail closed): a number
    from a walk that could not finish would be too low. An entry that disappears or turns
    into a file or a symlink while it is walked is simply not counted (see ``_walk``).
    ``every`` is called every EVERY_ENTRIES entries; when it answers True the walk stops
    with Interrupted (the watch stops the code's processes, then walks again)."""
    total = 0
    count = 0
    for _, _, st in _walk(directory, most):
        count += 1
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        if every is not None and count % EVERY_ENTRIES == 0 and every():
            raise Interrupted
    return total, count


def read(directory: Path, path: str, *, most: int) -> bytes:
    """The bytes of the regular file ``path`` under directory, whole (``chunks`` joined):
    O_NOFOLLOW on every component; ValueError past ``most`` bytes or for a non-regular
    file (or a symlink on the way); FileNotFoundError when there is none."""
    return b"".join(chunks(directory, path, most=most))


def write(directory: Path, path: str, data: bytes) -> None:
    """Write ``data`` as the file ``path`` under directory: creates parent folders safely,
    replaces an existing regular file (by a rename, so a reader sees the old or the new),
    refuses to go through a symlink or to replace anything but a regular file."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents, create=True) as parent:
        _check_replaceable(parent, name, path)
        temporary = f".parley-{secrets.token_hex(8)}"
        fd = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600, dir_fd=parent
        )
        try:
            os.fchown(fd, *_owner(parent))
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
    """Remove the folder ``name`` in the folder ``parent`` with all it holds, whatever its
    depth or width: depth first with one ``_Cursor`` (so two descriptors at most besides
    ``parent``, and no recursion). A symlink is unlinked, never followed. Raises WalkError when the tree is
    moved under it, OSError when something cannot be removed (e.g. a folder filled again
    meanwhile: ENOTEMPTY)."""
    cursor = _Cursor(os.open(name, _DIR, dir_fd=parent))
    try:
        # Per folder from the top down to the cursor: its subfolders still to remove.
        todo: list[list[str]] = [_unlink_all_but_folders(cursor.fd)]
        while todo:
            if todo[-1]:
                folder = todo[-1].pop()
                if cursor.down(folder):
                    todo.append(_unlink_all_but_folders(cursor.fd))
                else:
                    _unlink_if_there(cursor.fd, folder)  # gone, or now a file or a link
                continue
            todo.pop()
            if todo:
                emptied = cursor.up()
                _rmdir_if_there(cursor.fd, emptied)
    finally:
        cursor.close()
    os.rmdir(name, dir_fd=parent)


def _unlink_all_but_folders(fd: int) -> list[str]:
    """Unlink every entry of the folder ``fd`` but its subfolders (a symlink itself, never
    its target), and return the subfolders' names. The listing is read whole first: removing
    entries while a directory is being read may make the reading skip or repeat some."""
    with os.scandir(fd) as entries:
        listed = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    folders: list[str] = []
    for name, is_folder in listed:
        if is_folder:
            folders.append(name)
            continue
        try:
            _unlink_if_there(fd, name)
        except IsADirectoryError:
            folders.append(name)  # it became a folder since it was listed
    return folders


def _unlink_if_there(fd: int, name: str) -> None:
    """Unlink ``name`` in the folder ``fd``, unless it is gone already."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)


def _rmdir_if_there(fd: int, name: str) -> None:
    """Remove the empty folder ``name`` in the folder ``fd``, unless it is gone already."""
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=fd)


@contextlib.contextmanager
def _opened(directory: Path, parts: list[str], *, create: bool = False) -> Iterator[int]:
    """A descriptor of directory/parts..., each component opened without following a
    symlink; ``create`` makes missing folders (mode 0700, owned as ``directory`` is: the
    sandbox's user, when the server runs its sandboxes as another)."""
    fd = os.open(directory, _DIR)
    try:
        owner = _owner(fd) if create else None
        for part in parts:
            if owner is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as exc:
                raise _plain(exc, part) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _owner(fd: int) -> tuple[int, int]:
    """The owner and group of the open folder ``fd``: what the server gives the files and
    folders it makes under a container's /mnt/data, so that its sandbox may use them."""
    st = os.fstat(fd)
    return st.st_uid, st.st_gid


def _plain(exc: OSError, path: str) -> Exception:
    """A symlink or a non-folder where a folder was wanted is a ValueError; a missing file
    stays FileNotFoundError."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO, errno.EMLINK):
        return ValueError(f"{path} is a symlink or not a regular file or folder")
    return exc


def _walk(directory: Path, most: int) -> Iterator[tuple[str | None, str, os.stat_result]]:
    """(folder, name, lstat) of every entry under directory (files, folders, links...),
    depth first, never following a symlink, at most ``most`` entries listed. ``folder`` is
    the relative path of the entry's folder, "" at the top or e.g. "out/deep/", or None when
    that path is longer than ``_MAX_PATH`` (no call could name what it holds, and building
    it at every level would cost time and memory as deep as the tree).

    A folder is listed in one pass (at most what is left of ``most``), keeping only its
    subfolders' names, and its listing closed before the walk goes into them: the walk holds
    two descriptors at most (the folder's and its listing's, or the next folder's: see
    ``_Cursor``) whatever the tree. Memory grows with the subfolders listed and the depth,
    time with the entries listed.

    Skipped, since the tree changes as it is walked: an entry gone before its lstat, a
    subfolder gone or turned into a file or a symlink before it is entered (ENOENT, ENOTDIR,
    ELOOP). Raised, since they mean the walk could not look: any other error listing, stat-ing
    or entering (EMFILE, ENFILE, ENOMEM, EACCES...), and WalkError when ".." does not lead
    back up to the folder the walk came down from. A missing directory is an empty walk."""
    try:
        top = os.open(directory, _DIR)
    except FileNotFoundError:
        return
    cursor = _Cursor(top)
    try:
        yield from _walk_from(cursor, most)
    finally:
        cursor.close()


def _walk_from(cursor: _Cursor, most: int) -> Iterator[tuple[str | None, str, os.stat_result]]:
    """``_walk``'s loop, from the folder where ``cursor`` is, the top."""
    seen = 0
    folder: str | None = ""
    # Per folder from the top down to the cursor: its path and its subfolders still to walk.
    todo: list[tuple[str | None, list[str]]] = []
    while True:
        subfolders: list[str] = []
        for name, st in _listing(cursor.fd, most - seen):
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


def _listing(fd: int, room: int) -> Iterator[tuple[str, os.stat_result | None]]:
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
    cursor: _Cursor, todo: list[tuple[str | None, list[str]]]
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


def _joined(folder: str | None, name: str) -> str | None:
    """The relative path of ``name`` in ``folder``, or None when either is too long to name
    (past ``_MAX_PATH`` bytes, as ``safe_path`` counts them)."""
    if folder is None:
        return None
    path = folder + name
    if len(path.encode("utf-8", "surrogateescape")) > _MAX_PATH:
        return None
    return path


def _subfolder(folder: str | None, name: str) -> str | None:
    """The relative path, ending in "/", of the subfolder ``name`` of ``folder``; None when
    too long to name."""
    path = _joined(folder, name)
    return None if path is None else path + "/"


class _Cursor:
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
            child = os.open(name, _DIR, dir_fd=self.fd)
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
        parent = os.open("..", _DIR, dir_fd=self.fd)
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


class TooLarge(ValueError):
    """A file passed the bytes it may have while it was read (``chunks``)."""


def chunks(
    directory: Path, path: str, *, most: int, size: int = 1 << 20
) -> Generator[bytes, None, None]:
    """The bytes of the regular file ``path`` under directory, ``size`` at a time, so a large
    file is never held whole: opened as ``read`` opens it (O_NOFOLLOW on every component,
    a regular file by its fstat), and ``TooLarge`` once more than ``most`` bytes came, counted
    as they come (the sandboxed code may grow the file while it is read). ValueError for a
    symlink on the way or a file that is not regular; FileNotFoundError when there is none.
    The file is opened at the first chunk asked for, and closed when the iterator ends or
    is closed."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents) as parent:
        try:
            fd = os.open(name, _FILE, dir_fd=parent)
        except OSError as exc:
            raise _plain(exc, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path!r} is not a regular file")
        if st.st_size > most:
            raise TooLarge(f"{path!r} is larger than {most} bytes")
        seen = 0
        while chunk := os.read(fd, min(size, most + 1 - seen)):
            seen += len(chunk)
            if seen > most:
                raise TooLarge(f"{path!r} is larger than {most} bytes")
            yield chunk
    finally:
        os.close(fd)


def place(directory: Path, path: str, source: Path) -> None:
    """Move the file ``source`` (written whole by the server, out of the sandbox's reach,
    on the same file system) to ``path`` under directory, as ``write`` places its bytes:
    parent folders made safely, an existing regular file replaced by a rename (a reader sees
    the old or the new), never through a symlink nor over anything but a regular file."""
    *parents, name = safe_path(path).split("/")
    with _opened(directory, parents, create=True) as parent:
        _check_replaceable(parent, name, path)
        os.chown(source, *_owner(parent))
        os.replace(source, name, dst_dir_fd=parent)


def _check_replaceable(parent: int, name: str, path: str) -> None:
    """ValueError unless ``name`` in the folder ``parent`` is absent or a regular file (a
    rename over it then replaces a file, never a folder, a link or a device)."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path!r} exists and is not a regular file")


def prune(directory: Path, keep: set[str], *, shown: int = 10) -> tuple[int, list[str]]:
    """Remove everything under directory but the regular files ``keep`` (relative paths)
    and the folders on their way, never following a symlink: what a call left past the
    container's bounds goes, what is stored stays. Returns how many entries were removed
    (files, links and folders, those inside a removed folder too) and the first ``shown``
    paths removed (a folder removed whole is one path, ending with "/").

    A folder the code made unreadable or read-only is made the server's again (mode 0700)
    first. A folder to remove is emptied level by level, each folder it holds moved up
    beside it, so a tree however deep holds two descriptors open at a time."""
    folders = {"/".join(p.split("/")[:n]) for p in keep for n in range(1, p.count("/") + 1)}
    removed: list[str] = []
    count = 0
    visit = [""]
    while visit:
        prefix = visit.pop()
        try:
            fd = _reached(directory, prefix.split("/") if prefix else [])
        except OSError:
            continue  # a folder on the way is gone, or was made a link meanwhile
        try:
            listed = _listed(fd)
        except OSError:
            listed = []
        try:
            for name, is_dir in listed:
                path = prefix + ("/" if prefix else "") + name
                if is_dir and path in folders:
                    visit.append(path)
                elif is_dir or path not in keep or not _regular(fd, name):
                    went = _drop(fd, name, is_dir)
                    count += went
                    if went and len(removed) < shown:
                        removed.append(path + ("/" if is_dir else ""))
        finally:
            os.close(fd)
    return count, removed


def _reached(directory: Path, parts: list[str]) -> int:
    """A descriptor of directory/parts..., each folder opened without following a symlink
    and made the server's to read and change (``_owned``)."""
    fd = _owned(str(directory), None)
    try:
        for part in parts:
            child = _owned(part, fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _owned(name: str, parent: int | None) -> int:
    """The folder ``name`` (under ``parent``), never through a symlink, set to mode 0700
    first: the sandboxed code owns its folders and may have taken their permissions away."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    where = os.open(name, flags) if parent is None else os.open(name, flags, dir_fd=parent)
    try:
        os.chmod(f"/proc/self/fd/{where}", 0o700)
        return os.open(".", _DIR, dir_fd=where)
    finally:
        os.close(where)


def _listed(fd: int) -> list[tuple[str, bool]]:
    """The names in the folder ``fd``, and whether each is a folder (not a link to one)."""
    with os.scandir(fd) as listed:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in listed]


def _regular(parent: int, name: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _drop(parent: int, name: str, is_dir: bool) -> int:
    """Remove ``name`` under ``parent``: a file or a link, or a folder with all it holds
    (the folders inside moved up under ``parent`` one level at a time); how many went."""
    if not is_dir:
        try:
            os.unlink(name, dir_fd=parent)
        except OSError:
            return 0
        return 1
    count = 0
    pending = [name]
    while pending:
        folder = pending.pop()
        try:
            fd = _owned(folder, parent)
        except OSError:
            continue
        try:
            entries = _listed(fd)
        except OSError:
            entries = []
        try:
            for entry, inner in entries:
                try:
                    if inner:
                        moved = f".parley-gone-{secrets.token_hex(8)}"
                        os.rename(entry, moved, src_dir_fd=fd, dst_dir_fd=parent)
                        pending.append(moved)
                    else:
                        os.unlink(entry, dir_fd=fd)
                        count += 1
                except OSError:
                    continue  # gone meanwhile, or not removable: left where it is
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.rmdir(folder, dir_fd=parent)
            count += 1
    return count
