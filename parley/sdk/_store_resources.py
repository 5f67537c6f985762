"""``client.files`` and ``client.vector_stores`` of ``Client``: blocking I/O.

``_async_store_resources`` mirrors this file with ``await``; the requests and the waiting
are in ``_file_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parley.sdk import _file_calls as calls
from parley.sdk._calls import Order
from parley.sdk._file_calls import (
    DEFAULT_INDEX_TIMEOUT,
    DEFAULT_POLL_INTERVAL,
    FileInput,
    Purpose,
)
from parley.sdk._requester import Requester, Resource
from parley.sdk.models import Deleted, FileObject, Page, VectorStore, VectorStoreFile


class Files(Resource):
    def create(
        self, file: FileInput, *, purpose: Purpose = "assistants", filename: str | None = None
    ) -> FileObject:
        """Upload a file (``POST /v1/files``): a path (read here), bytes or a binary file
        object; ``filename`` names it (a path's own name by default)."""
        upload = calls.upload_of(file, filename)
        return self._client._request(calls.files_create(upload, purpose=purpose))

    def retrieve(self, file_id: str) -> FileObject:
        return self._client._request(calls.files_retrieve(file_id))

    def delete(self, file_id: str) -> Deleted:
        return self._client._request(calls.files_delete(file_id))


class VectorStoreFiles(Resource):
    def create(
        self, vector_store_id: str, *, file_id: str, attributes: Mapping[str, Any] | None = None
    ) -> VectorStoreFile:
        """Attach an uploaded file to the store; it is indexed in the background
        (``status`` ``in_progress``, then ``completed`` or ``failed``)."""
        call = calls.vector_store_files_create(
            vector_store_id, file_id=file_id, attributes=attributes
        )
        return self._client._request(call)

    def retrieve(self, file_id: str, *, vector_store_id: str) -> VectorStoreFile:
        call = calls.vector_store_files_retrieve(file_id, vector_store_id=vector_store_id)
        return self._client._request(call)

    def list(
        self,
        vector_store_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Order | None = None,
        status: str | None = None,
    ) -> Page[VectorStoreFile]:
        """The store's files; ``status`` keeps those with that status (OpenAI's ``filter``)."""
        call = calls.vector_store_files_list(
            vector_store_id, limit=limit, after=after, order=order, status=status
        )
        return self._client._request(call)

    def delete(self, file_id: str, *, vector_store_id: str) -> Deleted:
        """Detach the file from the store (the file itself stays)."""
        call = calls.vector_store_files_delete(file_id, vector_store_id=vector_store_id)
        return self._client._request(call)

    def poll(
        self,
        file_id: str,
        *,
        vector_store_id: str,
        timeout: float = DEFAULT_INDEX_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
    ) -> VectorStoreFile:
        """Wait until the file's indexing has ended (``completed``, ``failed``): the file
        then, or still ``in_progress`` once ``timeout`` seconds have passed."""
        attached = self.retrieve(file_id, vector_store_id=vector_store_id)
        return self._client._run_plan(
            calls.poll_plan(attached, timeout=timeout, interval=interval), _no_tools
        )

    def upload_and_poll(
        self,
        *,
        vector_store_id: str,
        file: FileInput,
        filename: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_INDEX_TIMEOUT,
        interval: float = DEFAULT_POLL_INTERVAL,
    ) -> VectorStoreFile:
        """Upload ``file`` (as ``files.create``), attach it to the store and wait as
        ``poll`` does; check ``status`` (and ``last_error``) of the answer."""
        upload = calls.upload_of(file, filename)
        plan = calls.upload_and_poll_plan(
            upload,
            vector_store_id=vector_store_id,
            attributes=attributes,
            timeout=timeout,
            interval=interval,
        )
        return self._client._run_plan(plan, _no_tools)


class VectorStores(Resource):
    def __init__(self, client: Requester) -> None:
        super().__init__(client)
        self.files = VectorStoreFiles(client)

    def create(
        self,
        *,
        name: str | None = None,
        file_ids: Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        expires_after: Mapping[str, Any] | None = None,
    ) -> VectorStore:
        """A new vector store, with ``file_ids`` attached (and indexed in the background)."""
        call = calls.vector_stores_create(
            name=name, file_ids=file_ids, metadata=metadata, expires_after=expires_after
        )
        return self._client._request(call)

    def retrieve(self, vector_store_id: str) -> VectorStore:
        return self._client._request(calls.vector_stores_retrieve(vector_store_id))

    def delete(self, vector_store_id: str) -> Deleted:
        return self._client._request(calls.vector_stores_delete(vector_store_id))


def _no_tools(action: Any) -> None:
    return None
