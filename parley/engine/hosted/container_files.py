"""The files of a container's ``/mnt/data`` on this replica, kept in step with the database
(``store.containers``) and the file storage: brought up to date before a call (``sync``),
and after it the files the code wrote or changed stored, those it deleted forgotten
(``store_changes``), its figures kept (``store_images``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from parley.config import Settings, private_dir
from parley.engine.hosted.sandbox_calls import Skipped, Written, shown
from parley.errors import ParleyError
from parley.files.storage import Storages, Stored
from parley.store import containers as store
from parley.store.db import Database
from parley.store.files import StoredBytes

if TYPE_CHECKING:
    from parley.sandbox.files import Entry
    from parley.sandbox.runtime import Kernel
    from parley.store.records import Container

log = logging.getLogger("parley.engine.containers")

#: Files one call may leave in the store at most (the first ones, by path).
MOST_FILES = 100
#: Files one container keeps at most (past that, new ones are not stored).
MOST_KEPT = 1000
#: Bytes read from ``/mnt/data`` at a time while a file is stored.
CHUNK = 1 << 20
#: The folder under the containers' directory where files from the storage are written
#: whole before they are moved into a ``/mnt/data`` (out of every sandbox's reach); and
#: how old a file left there (by a server that died while writing it) is before a server
#: starting removes it.
INCOMING = ".incoming"
INCOMING_STALE = 3600.0

DATA = "/mnt/data/"


@dataclass(eq=False)
class Live:
    """A container's Python on this replica."""

    kernel: Kernel
    directory: Path
    #: The storage key of each file as last written or read here, by path under /mnt/data.
    synced: dict[str, str] = field(default_factory=dict)


class ContainerFiles:
    """The files of this replica's containers, between their ``/mnt/data`` and the
    database and file storage every replica reaches."""

    def __init__(self, db: Database, settings: Settings, storages: Storages, root: Path) -> None:
        self.db = db
        self.settings = settings
        self.storages = storages
        self.root = root

    async def sync(self, container: Container, live: Live) -> None:
        """Bring ``live``'s files up to date with the database's."""
        from parley.sandbox import files as sandbox_files

        kept = await self.db.read(store.all_container_files, container_id=container.id)
        paths = {f.path for f in kept}
        for path in [p for p in live.synced if p not in paths]:
            await asyncio.to_thread(sandbox_files.remove, live.directory, relative(path))
            del live.synced[path]
        for found in kept:
            if live.synced.get(found.path) != found.storage_key:
                await self.fetch(found.storage, found.storage_key, live.directory, found.path)
                live.synced[found.path] = found.storage_key

    async def fetch(self, kind: str, key: str, directory: Path, path: str) -> None:
        """Write the stored bytes ``key`` as ``path`` under ``directory``, a chunk at a
        time: into a file of the server's own (``INCOMING``, out of the sandbox's reach),
        then moved into place without following a link (``sandbox.files.place``)."""
        from parley.sandbox import files as sandbox_files

        incoming = await asyncio.to_thread(private_dir, self.root / INCOMING)
        partial = incoming / secrets.token_hex(16)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = await asyncio.to_thread(os.open, partial, flags, 0o600)
        try:
            try:
                async for chunk in self.storages.of(kind).read(key):
                    await asyncio.to_thread(write_all, fd, chunk)
            finally:
                os.close(fd)
            await asyncio.to_thread(sandbox_files.place, directory, relative(path), partial)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    async def store_changes(
        self,
        container: Container,
        live: Live,
        before: dict[str, Entry],
        after: dict[str, Entry],
        *,
        full: bool = False,
    ) -> tuple[list[Written], list[Skipped]]:
        """Store the files the call wrote or changed; forget those it deleted. Returns the
        files stored, and those not kept and why (a name no container can keep, past the
        call's count or a file's size, past the container's disk...): one file that cannot
        be kept never keeps the others from being stored. With ``full`` (the call passed
        the container's bounds), a changed file not stored is no longer taken as synced:
        it is removed (``Containers._prune``), and its stored copy, if any, comes back at the next
        call."""
        await self.forget_deleted(container, live, before, after)
        changed = sorted(p for p, e in after.items() if before.get(p) != e)
        written: list[Written] = []
        skipped: list[Skipped] = []
        stop: str | None = None  # why no more can be stored (the container is gone)
        for rel in changed:
            path = DATA + rel
            why = stop or store.path_problem(path)
            if why is None and len(written) >= MOST_FILES:
                why = f"past the {MOST_FILES} files one call may store"
            if why is None:
                kept = await self.store_file(container, live, rel)
                if isinstance(kept, Written):
                    written.append(kept)
                    continue
                if isinstance(kept, Refused) and kept.final:
                    stop = kept.reason
                why = kept.reason if kept is not None else None
            if full:
                live.synced.pop(path, None)
            if why is not None:
                skipped.append(Skipped(shown(path), why))
        return written, skipped

    async def forget_deleted(
        self, container: Container, live: Live, before: dict[str, Entry], after: dict[str, Entry]
    ) -> None:
        """Forget the container's files the call deleted (one whose path no container can
        keep was never stored: the database is not asked about it)."""
        for rel in [p for p in before if p not in after]:
            path = DATA + rel
            found = None
            if store.path_problem(path) is None:
                found = await self.db.read(
                    store.container_file_at, container_id=container.id, path=path
                )
            if found is not None:
                gone_bytes = await self.db.write(
                    store.delete_container_file,
                    user_id=container.user_id,
                    container_id=container.id,
                    file_id=found.id,
                )
                await self.forget([gone_bytes])
            live.synced.pop(path, None)

    async def store_file(
        self, container: Container, live: Live, rel: str
    ) -> Written | Refused | None:
        """Store the file ``rel`` of ``live``'s ``/mnt/data``, read a chunk at a time
        (never whole in memory): the file stored, why it is not (``Refused``), or None
        when it is gone since the scan."""
        from parley.sandbox import files as sandbox_files
        from parley.sandbox.limits import size_text

        most = self.settings.code_interpreter_max_file_bytes
        path = DATA + rel
        reader = read_chunks(live.directory, rel, most)
        try:
            async with contextlib.aclosing(reader):
                row_id, stored = await self.keep(container, path, reader)
        except FileNotFoundError:
            return None
        except sandbox_files.TooLarge:
            return Refused(f"larger than the {size_text(most)} one file may have")
        except ValueError:
            return Refused("it was no longer a regular file when it was read")
        except OSError as exc:
            return Refused(f"the server could not read it ({os.strerror(exc.errno or 0)})")
        except ParleyError as exc:
            return refused_by(exc, self.settings.code_interpreter_disk_bytes)
        live.synced[path] = stored.key
        return Written(row_id, path, stored.size)

    async def store_images(
        self, container: Container, live: Live, images: Iterable[bytes]
    ) -> tuple[list[tuple[Written, bytes]], list[Skipped]]:
        """Keep each figure as a file of the container (and in its ``/mnt/data``); those
        that cannot be kept (past the container's disk) are said so."""
        from parley.sandbox import files as sandbox_files

        kept = []
        skipped: list[Skipped] = []
        for png in images:
            rel = f"figure-{secrets.token_hex(6)}.png"
            path = DATA + rel
            with contextlib.suppress(OSError, ValueError):
                await asyncio.to_thread(sandbox_files.write, live.directory, rel, png)
            try:
                row_id, stored = await self.keep(container, path, once(png))
            except ParleyError as exc:
                refused = refused_by(exc, self.settings.code_interpreter_disk_bytes)
                skipped.append(Skipped(shown(path), refused.reason))
                if refused.final:
                    break
                continue
            live.synced[path] = stored.key
            kept.append((Written(row_id, path, len(png)), png))
        return kept, skipped

    async def keep(
        self, container: Container, path: str, chunks: AsyncIterable[bytes]
    ) -> tuple[str, Stored]:
        """Store ``chunks`` as the container's file at ``path``: its id, and its bytes'
        place. Raises what reading the chunks raised, or the database's refusal
        (``ParleyError``: the container is full, or gone); nothing is kept then."""
        stored = await self.storages.default.put(chunks)
        try:
            row, old = await self.db.write(
                store.add_container_file,
                user_id=container.user_id,
                container_id=container.id,
                path=path,
                source="assistant",
                stored=stored,
                disk_bytes=self.settings.code_interpreter_disk_bytes,
            )
        except ParleyError:
            await self.storages.default.delete([stored.key])
            raise
        if old is not None:
            await self.forget([old])
        return row.id, stored

    async def forget(self, found: list[StoredBytes]) -> None:
        try:
            await self.storages.delete(found)
        except Exception:
            log.warning("could not delete a container file's old bytes", exc_info=True)


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a file was not stored; ``final`` when no later file can be either (the
    container expired or was deleted meanwhile)."""

    reason: str
    final: bool = False


def refused_by(exc: ParleyError, disk_bytes: int) -> Refused:
    """Why the database refused a file, said plainly."""
    if exc.code == "container_full":
        from parley.sandbox.limits import size_text

        return Refused(f"past the container's disk of {size_text(disk_bytes)}")
    return Refused(f"the container could not take it: {exc.message}", final=True)


async def read_chunks(directory: Path, rel: str, most: int) -> AsyncGenerator[bytes, None]:
    """The bytes of ``rel`` under ``directory`` as ``sandbox.files.chunks`` reads them,
    each chunk read on a worker thread: at most a chunk or two in memory at a time."""
    from parley.sandbox import files as sandbox_files

    source = sandbox_files.chunks(directory, rel, most=most, size=CHUNK)  # closed below
    try:
        while (chunk := await asyncio.to_thread(next, source, None)) is not None:
            yield chunk
    finally:
        with contextlib.suppress(ValueError):  # still reading on a thread (cancelled)
            source.close()


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


async def once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def relative(path: str) -> str:
    return path.removeprefix(DATA)
