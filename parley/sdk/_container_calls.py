"""The calls of containers and their files (``docs/containers.md``). No I/O here: the
resources of ``Client`` and ``AsyncClient`` send them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from parley.sdk._calls import Call, Order, _compact, _id, _list_params, _model, _nothing, _page
from parley.sdk._file_calls import Upload
from parley.sdk.models import Container, ContainerFile, Deleted, Page

MemoryLimit = Literal["1g", "4g", "16g", "64g"]


def _containers(container_id: str) -> str:
    return f"/v1/containers/{_id(container_id, 'container_id')}"


def containers_create(
    *,
    name: str,
    file_ids: Sequence[str] | None,
    expires_after: Mapping[str, Any] | None,
    memory_limit: MemoryLimit | None,
    network_policy: Mapping[str, Any] | None,
) -> Call[Container]:
    body = _compact(
        name=name,
        file_ids=None if file_ids is None else list(file_ids),
        expires_after=None if expires_after is None else dict(expires_after),
        memory_limit=memory_limit,
        network_policy=None if network_policy is None else dict(network_policy),
    )
    return Call("POST", "/v1/containers", _model(Container), json=body)


def containers_list(
    *, limit: int | None, after: str | None, order: Order | None, name: str | None
) -> Call[Page[Container]]:
    params = {**_list_params(limit, after, order), **_compact(name=name)}
    return Call("GET", "/v1/containers", _page(Container), params=params)


def containers_retrieve(container_id: str) -> Call[Container]:
    return Call("GET", _containers(container_id), _model(Container))


def containers_delete(container_id: str) -> Call[Deleted]:
    return Call("DELETE", _containers(container_id), _model(Deleted))


def container_files_create(
    container_id: str, *, upload: Upload | None, file_id: str | None
) -> Call[ContainerFile]:
    """An upload as a multipart form, or a copy of a file by its id as JSON."""
    path = f"{_containers(container_id)}/files"
    if (upload is None) == (file_id is None):
        raise ValueError("give file (to upload) or file_id (to copy), one of them")
    if upload is not None:
        files = {"file": (upload.filename, upload.content, upload.media_type)}
        return Call("POST", path, _model(ContainerFile), files=files)
    return Call("POST", path, _model(ContainerFile), json={"file_id": file_id})


def container_files_list(
    container_id: str, *, limit: int | None, after: str | None, order: Order | None
) -> Call[Page[ContainerFile]]:
    path = f"{_containers(container_id)}/files"
    return Call("GET", path, _page(ContainerFile), params=_list_params(limit, after, order))


def _file(file_id: str, container_id: str) -> str:
    return f"{_containers(container_id)}/files/{_id(file_id, 'file_id')}"


def container_files_retrieve(file_id: str, *, container_id: str) -> Call[ContainerFile]:
    return Call("GET", _file(file_id, container_id), _model(ContainerFile))


def container_files_delete(file_id: str, *, container_id: str) -> Call[Deleted]:
    return Call("DELETE", _file(file_id, container_id), _model(Deleted))


def container_files_content(file_id: str, *, container_id: str) -> Call[None]:
    """The file's bytes: the answer is read as bytes, not parsed."""
    return Call("GET", f"{_file(file_id, container_id)}/content", _nothing)
