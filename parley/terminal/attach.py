"""Files attached to a terminal session: ``parley chat --file PATH``, ``/attach PATH`` and
``parley ask --file PATH``.

Each file is uploaded to the Parley server and attached to the session's vector store (made
with the first one); the server indexes it in the background. The session's turns then offer
``file_search`` over the store, and the server runs the searches in the turn (they show as a
``⚙ file_search`` block: the queries, then each passage's file and first line).

    indexing notes.md (2.1 kB)…
    ✓ notes.md ready: the answers can search it
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from parley.sdk.models import VectorStoreFile
from parley.terminal.session import Session, SessionError

__all__ = ["INDEX_TIMEOUT", "attach_file"]

#: How long an attachment waits for its indexing before the chat goes on without waiting.
INDEX_TIMEOUT = 120.0
_POLL_INTERVAL = 0.25

#: Where the lines go: ``say(text, error=False)`` (an error line gets its ``✗`` there).
Say = Callable[..., None]


async def attach_file(session: Session, path: Path, say: Say) -> VectorStoreFile:
    """Upload ``path`` into the session's store and wait for its indexing, saying so.

    Raises:
        SessionError: no readable file at ``path``. ``ParleyError`` from the server (a file
            too large, say).
    """
    path, size = await asyncio.to_thread(_file_of, path)
    store = await session.file_store()
    say(f"indexing {path.name} ({_size(size)})…")
    client = session.client
    made = await client.files.create(path)
    attached = await client.vector_stores.files.create(
        store, file_id=made.id, attributes={"filename": made.filename}
    )
    if not attached.done:
        attached = await client.vector_stores.files.poll(
            attached.id, vector_store_id=store, timeout=INDEX_TIMEOUT, interval=_POLL_INTERVAL
        )
    if attached.status == "completed":
        say(f"✓ {made.filename} ready: the answers can search it")
    elif not attached.done:
        say(f"{made.filename} is still indexing; the answers search it once it is done")
    else:
        why = attached.last_error.message if attached.last_error else attached.status
        say(f"{made.filename} could not be indexed: {why}", error=True)
    return attached


def _file_of(path: Path) -> tuple[Path, int]:
    """The file at ``path`` (``~`` expanded) and its size; ``SessionError`` if there is
    none."""
    path = path.expanduser()
    if not path.is_file():
        raise SessionError(f"no file at {path}")
    return path, path.stat().st_size


def _size(count: int) -> str:
    """``512 B``, ``2.1 kB``, ``3.4 MB``."""
    if count < 1000:
        return f"{count} B"
    size = count / 1000
    for unit in ("kB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
