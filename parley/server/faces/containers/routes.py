"""``/v1/containers``: containers of the ``code_interpreter`` tool and their files, in
OpenAI's shapes.

A container's files are bytes in the server's file storage (``parley.files.storage``),
under keys of their own: a file copied in from ``/v1/files`` (``file_ids``, or ``file_id``)
is copied byte for byte, an upload is stored as ``/v1/files`` stores one. A file lands at
``/mnt/data/<its name>``, replacing the file at that path if there is one. Every use of a
container or of its files moves its ``last_active_at`` on (reading the container alone, or
listing containers, does not). Another user's container or file answers 404 on every route;
when the operator has switched the code interpreter off
(``PARLEY_CODE_INTERPRETER_ENABLED=false``), every route answers 400
``code_interpreter_disabled``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from parley.errors import InvalidRequest
from parley.files.storage import Storages, Stored
from parley.server.deps import AuthenticatedCaller, CurrentUser, DescList, Svc
from parley.server.faces.containers import reads
from parley.server.faces.containers.schemas import (
    ContainerCreate,
    ContainerFileCreate,
    ContainerFilePublic,
    ContainerPublic,
)
from parley.server.faces.kit import forms
from parley.server.faces.kit.bodies import Deleted
from parley.server.faces.kit.forms import FileStorages, multipart_body
from parley.server.faces.kit.pages import Page
from parley.server.openapi import errors
from parley.store import containers as store
from parley.store import files as file_store
from parley.store.records import StoredFile
from parley.types import Usage

#: The usage face of containers made (one request each, no tokens).
USAGE_FACE = "containers"


async def _switched_on(user: CurrentUser, svc: Svc) -> None:
    """Every route: the caller is authenticated first, then the switch is looked at."""
    if not svc.settings.code_interpreter_enabled:
        raise InvalidRequest(
            "The code interpreter is switched off on this server (by its operator): "
            "containers cannot be made or used.",
            code="code_interpreter_disabled",
        )


router = APIRouter(tags=["containers"], dependencies=[Depends(_switched_on)])

#: ``POST /v1/containers/{id}/files``: a multipart upload, or JSON naming a file.
_FILE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["file_id"],
                    "properties": {"file_id": {"type": "string"}},
                }
            },
            **multipart_body(["file"], {"file": {"type": "string", "format": "binary"}})[
                "requestBody"
            ]["content"],
        },
    }
}


# ----------------------------------------------------------------------------- containers


@router.post("/containers", response_model=ContainerPublic, responses=errors(400, 404))
async def create_container(
    body: ContainerCreate, caller: AuthenticatedCaller, svc: Svc, storages: FileStorages
) -> ContainerPublic:
    settings = svc.settings
    user = caller.user
    sources = await svc.db.read(
        reads.files_to_copy,
        user_id=user.id,
        file_ids=body.file_ids or (),
        most=settings.code_interpreter_max_containers,
    )
    paths = [store.file_path(f.filename) for f in sources]
    copied = await _copies(storages, sources)
    try:
        made = await svc.db.write(
            reads.create,
            user_id=user.id,
            name=body.name,
            memory_limit=body.memory_limit or settings.code_interpreter_memory_limit,
            expires_after_minutes=(
                settings.code_interpreter_idle_minutes
                if body.expires_after is None
                else body.expires_after.minutes
            ),
            key_hash=caller.key_hash,
            most=settings.code_interpreter_max_containers,
            files=list(zip(paths, copied, strict=True)),
            disk_bytes=settings.code_interpreter_disk_bytes,
        )
    except BaseException:
        await storages.default.delete([s.key for s in copied])
        raise
    svc.engine.metrics.container_made()
    svc.usage.count(
        user_id=user.id,
        key_hash=caller.key_hash,
        model=f"container/{made.memory_limit}",
        face=USAGE_FACE,
        used=Usage(),
    )
    return made


async def _copies(storages: Storages, sources: Sequence[StoredFile]) -> list[Stored]:
    """A copy of each file's bytes, under new keys; when one fails, none is kept."""
    made: list[Stored] = []
    try:
        for source in sources:
            made.append(await _copy(storages, source))
    except BaseException:
        await storages.default.delete([s.key for s in made])
        raise
    return made


async def _copy(storages: Storages, source: StoredFile) -> Stored:
    try:
        return await storages.default.put(storages.of(source.storage).read(source.storage_key))
    except FileNotFoundError:  # deleted since it was looked up
        raise file_store.file_not_found(source.id) from None


@router.get("/containers", responses=errors(400))
async def list_containers(
    user: CurrentUser,
    svc: Svc,
    q: DescList,
    name: Annotated[str | None, Query(max_length=256)] = None,
) -> Page[ContainerPublic]:
    found, more = await svc.db.read(store.list_containers, user_id=user.id, page=q, name=name)
    return Page.of([ContainerPublic.of(c) for c in found], more)


@router.get("/containers/{container_id}")
async def retrieve_container(container_id: str, user: CurrentUser, svc: Svc) -> ContainerPublic:
    found = await svc.db.read(store.get_container, user_id=user.id, container_id=container_id)
    return ContainerPublic.of(found)


@router.delete("/containers/{container_id}")
async def delete_container(
    container_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> Deleted:
    gone = await svc.db.write(store.delete_container, user_id=user.id, container_id=container_id)
    await svc.engine.container_deleted(container_id)
    await storages.delete(gone)
    return Deleted(id=container_id, object="container.deleted")


# ----------------------------------------------------------------------------- files


@router.post(
    "/containers/{container_id}/files",
    response_model=ContainerFilePublic,
    openapi_extra=_FILE_BODY,
    responses=errors(400, 404, 413),
)
async def create_container_file(
    container_id: str, request: Request, user: CurrentUser, svc: Svc, storages: FileStorages
) -> ContainerFilePublic:
    """An upload (multipart ``file``), or a copy of one of the user's files (``file_id``,
    as JSON or as a form field), at ``/mnt/data/<its name>``."""
    await svc.db.write(store.running_container, user_id=user.id, container_id=container_id)
    path, stored = await _new_file(request, user.id, svc, storages)
    try:
        made, replaced = await svc.db.write(
            store.add_container_file,
            user_id=user.id,
            container_id=container_id,
            path=path,
            source="user",
            stored=stored,
            disk_bytes=svc.settings.code_interpreter_disk_bytes,
        )
    except BaseException:
        await storages.default.delete([stored.key])
        raise
    if replaced is not None:
        await storages.delete([replaced])
    return ContainerFilePublic.of(made)


async def _new_file(
    request: Request, user_id: str, svc: Svc, storages: Storages
) -> tuple[str, Stored]:
    """The path and the stored bytes of the file a request brings or names."""
    kind = request.headers.get("content-type", "").lower()
    if not kind.startswith("multipart/form-data"):
        try:
            body = ContainerFileCreate.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        return await _copied(body.file_id, user_id, svc, storages)
    form = await forms.read_form(request, ("file", "file_id"))
    try:
        if form.get("file") is None:
            file_id = forms.form_text(form, "file_id")
            if not file_id:
                raise InvalidRequest(
                    "Give a 'file' to upload, or the 'file_id' of one of your files.",
                    code="missing_required_parameter",
                    param="file",
                )
            return await _copied(file_id, user_id, svc, storages)
        upload = forms.form_file(form, "file")
        path = store.file_path(forms.stored_filename(upload.filename))
        size = upload.size or 0
        if size > svc.settings.files_max_bytes:
            raise forms.too_large(size, svc.settings.files_max_bytes)
        return path, await storages.default.put(forms.chunks_of(upload))
    finally:
        await form.close()


async def _copied(file_id: str, user_id: str, svc: Svc, storages: Storages) -> tuple[str, Stored]:
    source = await svc.db.read(file_store.get_file, user_id=user_id, file_id=file_id)
    return store.file_path(source.filename), await _copy(storages, source)


@router.get("/containers/{container_id}/files", responses=errors(400))
async def list_container_files(
    container_id: str, user: CurrentUser, svc: Svc, q: DescList
) -> Page[ContainerFilePublic]:
    found, more = await svc.db.write(
        store.list_container_files, user_id=user.id, container_id=container_id, page=q
    )
    return Page.of([ContainerFilePublic.of(f) for f in found], more)


@router.get("/containers/{container_id}/files/{file_id}")
async def retrieve_container_file(
    container_id: str, file_id: str, user: CurrentUser, svc: Svc
) -> ContainerFilePublic:
    found = await svc.db.write(
        store.get_container_file, user_id=user.id, container_id=container_id, file_id=file_id
    )
    return ContainerFilePublic.of(found)


@router.delete("/containers/{container_id}/files/{file_id}")
async def delete_container_file(
    container_id: str, file_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> Deleted:
    gone = await svc.db.write(
        store.delete_container_file, user_id=user.id, container_id=container_id, file_id=file_id
    )
    await storages.delete([gone])
    return Deleted(id=file_id, object="container.file.deleted")


@router.get(
    "/containers/{container_id}/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def container_file_content(
    container_id: str, file_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> StreamingResponse:
    found = await svc.db.write(
        store.get_container_file, user_id=user.id, container_id=container_id, file_id=file_id
    )
    chunks = storages.of(found.storage).read(found.storage_key)
    try:  # the first chunk before the answer starts: a file deleted meanwhile is a 404
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise store.container_file_not_found(container_id, file_id) from None
    name = found.path.rsplit("/", 1)[-1]
    return StreamingResponse(
        _then(first, chunks),
        media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        headers={
            "content-length": str(found.bytes),
            "content-disposition": forms.content_disposition(name),
            "x-content-type-options": "nosniff",
        },
    )


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
