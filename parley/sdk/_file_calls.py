"""The calls of files and vector stores (``docs/files.md``, ``docs/sdk.md``), and the plan
that uploads a file into a store and waits until it is indexed.

No I/O here but ``upload_of``, which reads a path's bytes: ``Client`` calls it as is,
``AsyncClient`` in a worker thread.
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from parley.sdk._calls import Call, Order, _compact, _id, _list_params, _model, _page
from parley.sdk._loops import Fetch, Plan, Sleep
from parley.sdk.models import Deleted, FileObject, Page, VectorStore, VectorStoreFile

#: What ``files.create`` takes: a path, the bytes themselves, or a binary file object.
FileInput = str | os.PathLike[str] | bytes | IO[bytes]
Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]

#: How long ``upload_and_poll`` / ``poll`` wait for indexing unless told, and how often
#: they look.
DEFAULT_INDEX_TIMEOUT = 300.0
DEFAULT_POLL_INTERVAL = 0.5


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to send: its name, its bytes and its media type."""

    filename: str
    content: bytes
    media_type: str


def upload_of(file: FileInput, filename: str | None = None) -> Upload:
    """The file to send: a path is read (its name kept unless ``filename`` is given), bytes
    are sent as they are (named ``filename``, else ``file``), a file object is read whole."""
    if isinstance(file, bytes):
        name = filename or "file"
        content = file
    elif isinstance(file, str | os.PathLike):
        path = Path(file)
        name = filename or path.name
        content = path.read_bytes()
    else:
        name = filename or Path(str(getattr(file, "name", "") or "file")).name
        content = file.read()
    media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return Upload(filename=name, content=content, media_type=media_type)


# ------------------------------------------------------------------------------- files


def files_create(upload: Upload, *, purpose: str) -> Call[FileObject]:
    files = {"file": (upload.filename, upload.content, upload.media_type)}
    return Call("POST", "/v1/files", _model(FileObject), form={"purpose": purpose}, files=files)


def files_retrieve(file_id: str) -> Call[FileObject]:
    return Call("GET", f"/v1/files/{_id(file_id, 'file_id')}", _model(FileObject))


def files_delete(file_id: str) -> Call[Deleted]:
    return Call("DELETE", f"/v1/files/{_id(file_id, 'file_id')}", _model(Deleted))


# ----------------------------------------------------------------------- vector stores


def _stores(vector_store_id: str) -> str:
    return f"/v1/vector_stores/{_id(vector_store_id, 'vector_store_id')}"


def vector_stores_create(
    *,
    name: str | None,
    file_ids: Sequence[str] | None,
    metadata: Mapping[str, str] | None,
    expires_after: Mapping[str, Any] | None,
) -> Call[VectorStore]:
    body = _compact(
        name=name,
        file_ids=None if file_ids is None else list(file_ids),
        metadata=None if metadata is None else dict(metadata),
        expires_after=None if expires_after is None else dict(expires_after),
    )
    return Call("POST", "/v1/vector_stores", _model(VectorStore), json=body)


def vector_stores_retrieve(vector_store_id: str) -> Call[VectorStore]:
    return Call("GET", _stores(vector_store_id), _model(VectorStore))


def vector_stores_delete(vector_store_id: str) -> Call[Deleted]:
    return Call("DELETE", _stores(vector_store_id), _model(Deleted))


def vector_store_files_create(
    vector_store_id: str, *, file_id: str, attributes: Mapping[str, Any] | None
) -> Call[VectorStoreFile]:
    body = _compact(file_id=file_id, attributes=None if attributes is None else dict(attributes))
    path = f"{_stores(vector_store_id)}/files"
    return Call("POST", path, _model(VectorStoreFile), json=body)


def vector_store_files_retrieve(file_id: str, *, vector_store_id: str) -> Call[VectorStoreFile]:
    path = f"{_stores(vector_store_id)}/files/{_id(file_id, 'file_id')}"
    return Call("GET", path, _model(VectorStoreFile))


def vector_store_files_list(
    vector_store_id: str,
    *,
    limit: int | None,
    after: str | None,
    order: Order | None,
    status: str | None,
) -> Call[Page[VectorStoreFile]]:
    params = {**_list_params(limit, after, order), **_compact(filter=status)}
    path = f"{_stores(vector_store_id)}/files"
    return Call("GET", path, _page(VectorStoreFile), params=params)


def vector_store_files_delete(file_id: str, *, vector_store_id: str) -> Call[Deleted]:
    path = f"{_stores(vector_store_id)}/files/{_id(file_id, 'file_id')}"
    return Call("DELETE", path, _model(Deleted))


# ------------------------------------------------------------------------------- plans


def poll_plan(
    attached: VectorStoreFile, *, timeout: float, interval: float
) -> Plan[VectorStoreFile]:
    """Look at the file again every ``interval`` seconds until its indexing has ended, or
    ``timeout`` seconds have passed (it is then returned still ``in_progress``)."""
    deadline = time.monotonic() + timeout
    current = attached
    while not current.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        yield Sleep(min(interval, remaining))
        current = yield Fetch(
            vector_store_files_retrieve(current.id, vector_store_id=current.vector_store_id)
        )
    return current


def upload_and_poll_plan(
    upload: Upload,
    *,
    vector_store_id: str,
    attributes: Mapping[str, Any] | None,
    timeout: float,
    interval: float,
) -> Plan[VectorStoreFile]:
    """Upload the file (purpose ``assistants``), attach it to the store, wait for it."""
    _id(vector_store_id, "vector_store_id")  # refused before anything is uploaded
    made: FileObject = yield Fetch(files_create(upload, purpose="assistants"))
    attached: VectorStoreFile = yield Fetch(
        vector_store_files_create(vector_store_id, file_id=made.id, attributes=attributes)
    )
    return (yield from poll_plan(attached, timeout=timeout, interval=interval))
