"""Files attached to a conversation of the web page (``docs/web.md``).

A conversation's files live in one vector store of the Parley server, made with its first
file and remembered in the thread's metadata (``vector_store_id``). Each file is uploaded
(``POST /v1/files``), attached to the store, and indexed there in the background; the page
shows it as a chip whose ``status`` goes from ``indexing`` to ``ready`` or ``failed`` (with
the server's reason). The conversation's runs then offer ``file_search`` over the store
(``file_search_tool``). Deleting the conversation deletes its files and its store.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from parley.errors import NotFound
from parley.sdk import Client
from parley.sdk.models import Message, TextPart, Thread, VectorStoreFile

__all__ = [
    "DEFAULT_MAX_UPLOAD_BYTES",
    "STORE_KEY",
    "Attachments",
    "citations_of",
    "file_search_tool",
]

#: The thread's metadata key that names its vector store.
STORE_KEY = "vector_store_id"
#: The largest file the page takes unless configured (``create_app(max_upload_bytes=)``).
DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20

_STATUS = {"in_progress": "indexing", "completed": "ready"}


def store_id(thread: Thread) -> str | None:
    value = thread.metadata.get(STORE_KEY)
    return value if isinstance(value, str) and value else None


def file_search_tool(thread: Thread | None) -> dict[str, Any] | None:
    """The ``file_search`` tool over the conversation's files; None while it has none."""
    store = None if thread is None else store_id(thread)
    return None if store is None else {"type": "file_search", "vector_store_ids": [store]}


def chip(attached: VectorStoreFile, filename: str) -> dict[str, Any]:
    """A file as the page shows it: ``{"id", "filename", "status", "error"}``, ``status``
    ``indexing``, ``ready`` or ``failed`` (``error``: why, safe to show)."""
    error = attached.last_error.message if attached.last_error else None
    status = _STATUS.get(attached.status, "failed")
    if status == "failed" and error is None:
        error = f"Indexing ended: {attached.status}."
    return {"id": attached.id, "filename": filename, "status": status, "error": error}


def citations_of(message: Message) -> list[dict[str, Any]]:
    """The ``file_citation`` annotations of a message's text, each as ``{"file_id",
    "filename", "index"}`` (the Responses shape; the Assistants one is read too)."""
    out = []
    for part in message.content:
        if not isinstance(part, TextPart):
            continue
        for note in part.text.annotations:
            if not isinstance(note, dict) or note.get("type") != "file_citation":
                continue
            inner = note.get("file_citation")
            file_id = note.get("file_id") or (
                inner.get("file_id") if isinstance(inner, dict) else None
            )
            if not isinstance(file_id, str):
                continue
            index = note.get("index", note.get("start_index"))
            mention = note.get("text")  # the Assistants shape: the file's name as cited
            named = note.get("filename") or (
                mention.strip("[]") if isinstance(mention, str) else ""
            )
            out.append(
                {
                    "file_id": file_id,
                    "filename": str(named),
                    "index": index if isinstance(index, int) else None,
                }
            )
    return out


class Attachments:
    """The files of the page's conversations, through the app's SDK client."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._lock = threading.Lock()  # one store per thread, even for files sent at once

    def attach(self, thread: Thread, *, filename: str, content: bytes) -> dict[str, Any]:
        """Upload a file into the thread's store (made with its first file): its chip."""
        store = self._store_of(thread)
        made = self.client.files.create(content, filename=filename, purpose="assistants")
        attached = self.client.vector_stores.files.create(
            store, file_id=made.id, attributes={"filename": made.filename}
        )
        return chip(attached, made.filename)

    def files_of(self, thread: Thread) -> list[dict[str, Any]]:
        """The chips of the thread's files, in the order they were attached."""
        store = store_id(thread)
        if store is None:
            return []
        try:
            page = self.client.vector_stores.files.list(store, limit=100, order="asc")
        except NotFound:  # the store was deleted behind the page's back
            return []
        return [chip(f, self._name_of(f)) for f in page.iter_all()]

    def forget(self, thread: Thread) -> None:
        """Delete the (deleted) thread's files and store: nothing is left of them."""
        store = store_id(thread)
        if store is None:
            return
        try:
            attached = list(self.client.vector_stores.files.list(store, limit=100).iter_all())
        except NotFound:
            return  # deleted already
        for each in attached:
            with contextlib.suppress(NotFound):
                self.client.files.delete(each.id)
        with contextlib.suppress(NotFound):
            self.client.vector_stores.delete(store)

    def _name_of(self, attached: VectorStoreFile) -> str:
        name = (attached.attributes or {}).get("filename")
        if isinstance(name, str) and name:
            return name
        try:
            return self.client.files.retrieve(attached.id).filename
        except NotFound:
            return "(a deleted file)"

    def _store_of(self, thread: Thread) -> str:
        with self._lock:
            current = self.client.threads.retrieve(thread.id)  # another request may have made it
            store = store_id(current)
            if store is not None:
                return store
            made = self.client.vector_stores.create(
                name=f"parley web {thread.id}", metadata={"thread_id": thread.id}
            )
            self.client.threads.update(thread.id, metadata={**current.metadata, STORE_KEY: made.id})
            return made.id
