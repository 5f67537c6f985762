"""``Storage``, the one interface of where file bytes live, and what its kinds share: the
answer of a write (``Stored``), the digests worked out as bytes pass (``Digests``), new keys
and the size of a piece. The kinds are ``parley.files.storage`` (local directory, database)
and ``parley.files.s3`` (an S3-compatible bucket)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["PIECE", "Digests", "Storage", "Stored", "new_key"]

#: Bytes per piece in the database, and per read of a stored file.
PIECE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Stored:
    """Bytes stored whole: where (``kind``, ``key``), how many, and their digests (hex)."""

    kind: str
    key: str
    size: int
    sha256: str
    md5: str


class Storage(Protocol):
    """Where file bytes live."""

    #: ``local``, ``database`` or ``s3`` (``files.storage`` of the rows it keeps).
    kind: str

    async def put(self, chunks: AsyncIterable[bytes]) -> Stored:
        """Store ``chunks`` whole under a new key. When they fail midway (the client went
        away), nothing is left under a key and the error is raised."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The bytes under ``key``, in chunks of at most ``PIECE`` bytes."""
        ...

    async def delete(self, keys: Sequence[str]) -> None:
        """Forget ``keys`` (a key already gone is no error)."""
        ...


def new_key() -> str:
    """A new random key: never a file's name, so no name a client gives becomes a path."""
    return secrets.token_hex(16)


class Digests:
    """The SHA-256 and MD5 of bytes as they pass, and their count."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.size += len(data)

    def stored(self, kind: str, key: str) -> Stored:
        return Stored(kind, key, self.size, self.sha256.hexdigest(), self.md5.hexdigest())
