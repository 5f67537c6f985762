"""The host's side of a container's ``/mnt/data``: list, read, write and remove its files.

The sandboxed code owns that directory and may plant symlinks, fifos or devices in it, so
nothing here follows a symlink: every path is walked one component at a time from a
directory file descriptor, each opened with ``O_NOFOLLOW``. A symlink met on the way is an
error (``ValueError``); one met while listing is skipped.

The walks (``scan``, ``tally``, ``usage``, ``remove``) hold a bounded number of descriptors
whatever the shape of the tree, and use no recursion (``walk``: a ``Cursor`` moves down a
folder and back up by "..", and raises ``WalkError`` when the sandboxed code renamed a
folder so that ".." no longer leads back).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from parley.sandbox.walk import DIR_FLAGS, MAX_PATH, Cursor, joined, walk

_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PREFIX = "/mnt/data/"
_MAX_PART = 255


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
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH:
        raise ValueError(f"a file path is longer than {MAX_PATH} bytes")
    return path


def scan(directory: Path, *, most: int = 10_000) -> dict[str, Entry]:
    """Regular files under directory, recursively, never following symlinks (walk with dir
    fds and O_NOFOLLOW|O_DIRECTORY; skip symlinks, devices, fifos, sockets), at most
    ``most``. A file whose path is longer than ``safe_path`` allows is left out: no call can
    name it, and building such paths would cost memory as deep as the tree. Raises OSError
    (WalkError among them) when it cannot list the tree, as ``walk`` says."""
    found: dict[str, Entry] = {}
    for folder, name, st in walk(directory, most * 4):
        if not stat.S_ISREG(st.st_mode):
            continue
        if len(found) >= most:
            break
        path = joined(folder, name)
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
    into a file or a symlink while it is walked is simply not counted (see ``walk``).
    ``every`` is called every EVERY_ENTRIES entries; when it answers True the walk stops
    with Interrupted (the watch stops the code's processes, then walks again)."""
    total = 0
    count = 0
    for _, _, st in walk(directory, most):
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
    depth or width: depth first with one ``Cursor`` (so two descriptors at most besides
    ``parent``, and no recursion). A symlink is unlinked, never followed. Raises WalkError when the tree is
    moved under it, OSError when something cannot be removed (e.g. a folder filled again
    meanwhile: ENOTEMPTY)."""
    cursor = Cursor(os.open(name, DIR_FLAGS, dir_fd=parent))
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
    fd = os.open(directory, DIR_FLAGS)
    try:
        owner = _owner(fd) if create else None
        for part in parts:
            if owner is not None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
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
        return os.open(".", DIR_FLAGS, dir_fd=where)
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
