"""``client.containers`` (and ``client.containers.files``) of ``Client``: blocking I/O.

``_async_container_resources`` mirrors this file with ``await``; the requests are in
``_container_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from parley.sdk import _container_calls as calls
from parley.sdk._calls import Order
from parley.sdk._container_calls import MemoryLimit
from parley.sdk._file_calls import FileInput, upload_of
from parley.sdk._requester import Requester, Resource
from parley.sdk.models import Container, ContainerFile, Deleted, Page


class ContainerFiles(Resource):
    def create(
        self,
        container_id: str,
        *,
        file: FileInput | None = None,
        file_id: str | None = None,
        filename: str | None = None,
    ) -> ContainerFile:
        """Put a file in the container at ``/mnt/data/<its name>``: ``file`` uploaded (a
        path, bytes or a binary file object; ``filename`` names it), or a copy of one of
        your files (``file_id``). A file already at that path is replaced."""
        upload = None if file is None else upload_of(file, filename)
        call = calls.container_files_create(container_id, upload=upload, file_id=file_id)
        return self._client._request(call)

    def list(
        self,
        container_id: str,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Order | None = None,
    ) -> Page[ContainerFile]:
        call = calls.container_files_list(container_id, limit=limit, after=after, order=order)
        return self._client._request(call)

    def retrieve(self, file_id: str, *, container_id: str) -> ContainerFile:
        call = calls.container_files_retrieve(file_id, container_id=container_id)
        return self._client._request(call)

    def delete(self, file_id: str, *, container_id: str) -> Deleted:
        call = calls.container_files_delete(file_id, container_id=container_id)
        return self._client._request(call)

    def content(self, file_id: str, *, container_id: str) -> bytes:
        """The file's bytes."""
        call = calls.container_files_content(file_id, container_id=container_id)
        response = self._client._send(call, stream=False)
        if not response.is_success:
            raise self._client._error(response)
        return response.content


class Containers(Resource):
    def __init__(self, client: Requester) -> None:
        super().__init__(client)
        self.files = ContainerFiles(client)

    def create(
        self,
        *,
        name: str,
        file_ids: Sequence[str] | None = None,
        expires_after: Mapping[str, Any] | None = None,
        memory_limit: MemoryLimit | None = None,
        network_policy: Mapping[str, Any] | None = None,
    ) -> Container:
        """A new container, with copies of ``file_ids`` in ``/mnt/data``;
        ``expires_after``: ``{"anchor": "last_active_at", "minutes": n}``."""
        call = calls.containers_create(
            name=name,
            file_ids=file_ids,
            expires_after=expires_after,
            memory_limit=memory_limit,
            network_policy=network_policy,
        )
        return self._client._request(call)

    def list(
        self,
        *,
        limit: int | None = None,
        after: str | None = None,
        order: Order | None = None,
        name: str | None = None,
    ) -> Page[Container]:
        call = calls.containers_list(limit=limit, after=after, order=order, name=name)
        return self._client._request(call)

    def retrieve(self, container_id: str) -> Container:
        return self._client._request(calls.containers_retrieve(container_id))

    def delete(self, container_id: str) -> Deleted:
        return self._client._request(calls.containers_delete(container_id))
