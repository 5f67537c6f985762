"""Where file bytes live. One small interface, ``Storage``: ``put`` takes bytes as they
come (an async iterator of chunks) and answers where they are (a key), their size and
digests; ``read`` gives them back as chunks; ``delete`` forgets keys. Three kinds:

- ``LocalStorage``: one file per key in a directory (mode 0700, files 0600). Written to
  ``tmp/`` first and moved into place once whole, so a write cut off leaves no file under
  a key (and ``sweep`` clears ``tmp/``). The embedded default, with SQLite.
- ``DatabaseStorage``: pieces of at most ``PIECE`` bytes in the ``file_data`` table, which
  every replica reaches: the default on PostgreSQL. Pieces a write cut off are named by no
  row and swept once old (``parley.store.files.orphan_keys``).
- ``S3Storage`` (``parley.files.s3``, the ``s3`` extra): one object per key in an
  S3-compatible bucket, which every replica reaches.

A key is random (never a file's name), so no name a client gives becomes a path. The
interface and what the kinds share (``Stored``, ``Digests``) are ``parley.files.interface``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection

from parley.config import Settings, private_dir
from parley.errors import InternalError
from parley.files.interface import PIECE, Digests, Storage, Stored, new_key
from parley.store import files as store
from parley.store.db import Database

if TYPE_CHECKING:
    from parley.files.s3 import S3Storage

__all__ = [
    "PIECE",
    "DatabaseStorage",
    "Digests",
    "LocalStorage",
    "Storage",
    "Storages",
    "Stored",
    "new_key",
]


class LocalStorage:
    """One file per key under ``root``: ``root/ab/<key>``."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("not a storage key")  # keys are ours; never a client's text
        return self.root / key[:2] / key

    def _tmp(self) -> Path:
        return private_dir(self.root / "tmp")

    async def put(self, chunks: AsyncIterable[bytes]) -> Stored:
        key = new_key()
        tmp = await asyncio.to_thread(self._tmp)
        partial = tmp / key
        fd = await asyncio.to_thread(os.open, partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digests = Digests()
        try:
            async for chunk in chunks:
                if chunk:
                    await asyncio.to_thread(_write, fd, chunk, digests)
            await asyncio.to_thread(self._finish, fd, partial, key)
        except BaseException:
            _discard(fd, partial)  # a few fast calls, also when cancelled
            raise
        return digests.stored(self.kind, key)

    def _finish(self, fd: int, partial: Path, key: str) -> None:
        os.fsync(fd)
        os.close(fd)
        final = self.path(key)
        private_dir(final.parent)
        os.replace(partial, final)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self.path(key), "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, PIECE):
                yield chunk
        finally:
            handle.close()

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await asyncio.to_thread(self._unlink, list(keys))

    def _unlink(self, keys: list[str]) -> None:
        for key in keys:
            with contextlib.suppress(FileNotFoundError):
                self.path(key).unlink()

    def sweep_partial(self, *, older_than: float) -> int:
        """Delete writes left in ``tmp/`` for more than ``older_than`` seconds (a process
        that died while writing); returns how many."""
        tmp = self.root / "tmp"
        if not tmp.is_dir():
            return 0
        cutoff, count = time.time() - older_than, 0
        for entry in tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()
                    count += 1
        return count


def _write(fd: int, data: bytes, digests: Digests) -> None:
    digests.update(data)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _discard(fd: int, partial: Path) -> None:
    with contextlib.suppress(OSError):  # closed by _finish before it failed
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()


class DatabaseStorage:
    """Pieces of ``PIECE`` bytes in ``file_data``, each written in its own short
    transaction (a long one would hold SQLite's one writer)."""

    kind = "database"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, chunks: AsyncIterable[bytes]) -> Stored:
        key = new_key()
        digests = Digests()
        buffer = bytearray()
        seq = 0
        try:
            async for chunk in chunks:
                buffer += chunk
                while len(buffer) >= PIECE:
                    await self.db.write(
                        _put, key=key, seq=seq, data=bytes(buffer[:PIECE]), d=digests
                    )
                    del buffer[:PIECE]
                    seq += 1
            if buffer:
                await self.db.write(_put, key=key, seq=seq, data=bytes(buffer), d=digests)
        except BaseException:
            if seq or buffer:
                # Shielded: the pieces go even when the request is cancelled; left
                # pieces would be swept anyway (``orphan_keys``).
                await asyncio.shield(self.db.write(store.delete_pieces, keys=[key]))
            raise
        return digests.stored(self.kind, key)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        seq = 0
        while (piece := await self.db.read(store.read_piece, key=key, seq=seq)) is not None:
            yield piece
            seq += 1

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            await self.db.write(store.delete_pieces, keys=list(keys))


def _put(conn: Connection, *, key: str, seq: int, data: bytes, d: Digests) -> None:
    # On the database thread: the digests of a megabyte are not worked out on the loop.
    d.update(data)
    store.put_piece(conn, key=key, seq=seq, data=data)


class Storages:
    """The storage new bytes go to (``settings.files_storage_kind()``), and every kind for
    reading and deleting, as rows written under another setting name theirs (``s3`` while
    a bucket is set)."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.local = LocalStorage(settings.files_directory())
        self.database = DatabaseStorage(db)
        #: The ``s3`` storage when a bucket is set (boto3 is imported on its first call).
        self.s3: S3Storage | None = None
        if settings.files_s3_bucket:
            from parley.files.s3 import S3Storage

            self.s3 = S3Storage.of(settings)
        self.default: Storage = self.of(settings.files_storage_kind())

    def of(self, kind: str) -> Storage:
        if kind == "local":
            return self.local
        if kind == "s3":
            if self.s3 is None:
                raise InternalError(
                    "This file's bytes are in an S3 bucket, and no bucket is set "
                    "(PARLEY_FILES_S3_BUCKET).",
                    code="file_store_unavailable",
                )
            return self.s3
        return self.database

    async def delete(self, found: Sequence[store.StoredBytes]) -> None:
        """Forget bytes wherever each is."""
        for kind in ("local", "database", "s3"):
            keys = [f.key for f in found if f.storage == kind]
            if keys:
                await self.of(kind).delete(keys)
