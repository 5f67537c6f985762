"""``/v1/files``: upload (multipart), list, retrieve, delete, and ``/content``.

An upload is spooled to a temporary file as it comes (``forms.read_form``), checked (size,
quota, purpose, name), then copied to storage, and only then is the file's row written: a
request cut off midway, or refused, leaves no row and no bytes. Another user's file
answers 404 on every route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from parley.server.deps import CurrentUser, Svc
from parley.server.faces.files import forms
from parley.server.faces.files.schemas import (
    BATCH_EXPIRY,
    MAX_EXPIRY,
    MIN_EXPIRY,
    PURPOSES,
    FileDeleted,
    FilePublic,
)
from parley.server.faces.kit.forms import FileStorages, multipart_body
from parley.server.faces.kit.pages import Page
from parley.server.openapi import errors
from parley.store import files as store
from parley.store.pagination import ListQuery, Order

router = APIRouter(tags=["files"])


#: The multipart body of ``POST /v1/files`` in the OpenAPI document.
_CREATE_BODY = multipart_body(
    ["file", "purpose"],
    {
        "file": {"type": "string", "format": "binary"},
        "purpose": {"type": "string", "enum": list(PURPOSES)},
        "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
        "expires_after[seconds]": {
            "type": "integer",
            "minimum": MIN_EXPIRY,
            "maximum": MAX_EXPIRY,
        },
    },
)


async def _files_page(
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: Annotated[str | None, Query(max_length=64)] = None,
    order: Annotated[Order, Query()] = "desc",
) -> ListQuery:
    return ListQuery(limit=limit, after=after, order=order)


FilesPage = Annotated[ListQuery, Depends(_files_page)]


@router.post(
    "/files", response_model=FilePublic, openapi_extra=_CREATE_BODY, responses=errors(400, 413)
)
async def create_file(
    request: Request, user: CurrentUser, svc: Svc, storages: FileStorages
) -> FilePublic:
    settings = svc.settings
    form = await forms.read_form(
        request, ("file", "purpose", "expires_after[anchor]", "expires_after[seconds]")
    )
    try:
        upload = forms.form_file(form, "file")
        purpose = forms.check_purpose(forms.form_text(form, "purpose"))
        expiry = forms.form_expiry(form)
        if expiry is None and purpose == "batch":
            expiry = BATCH_EXPIRY
        filename = forms.stored_filename(upload.filename)
        size = upload.size or 0
        if size > settings.files_max_bytes:
            raise forms.too_large(size, settings.files_max_bytes)
        quota = settings.files_user_quota_bytes
        await svc.db.read(store.check_quota, user_id=user.id, adding=size, quota=quota)
        storage = storages.default
        stored = await storage.put(forms.chunks_of(upload))
    finally:
        await form.close()
    try:
        made = await svc.db.write(
            store.create_file,
            user_id=user.id,
            filename=filename,
            purpose=purpose,
            size=stored.size,
            sha256=stored.sha256,
            mime_type=forms.media_type(upload.content_type),
            stored=store.StoredBytes(stored.kind, stored.key),
            expires_after=expiry,
            quota=quota,
        )
    except BaseException:
        await storage.delete([stored.key])
        raise
    return FilePublic.of(made)


@router.get("/files", responses=errors(400))
async def list_files(
    user: CurrentUser,
    svc: Svc,
    page: FilesPage,
    purpose: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[FilePublic]:
    found, more = await svc.db.read(store.list_files, user_id=user.id, page=page, purpose=purpose)
    return Page.of([FilePublic.of(f) for f in found], more)


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, user: CurrentUser, svc: Svc) -> FilePublic:
    return FilePublic.of(await svc.db.read(store.get_file, user_id=user.id, file_id=file_id))


@router.delete("/files/{file_id}")
async def delete_file(
    file_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> FileDeleted:
    where = await svc.db.write(store.delete_file, user_id=user.id, file_id=file_id)
    await storages.delete([where])
    return FileDeleted(id=file_id)


@router.get(
    "/files/{file_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The file's bytes.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def file_content(
    file_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> StreamingResponse:
    found = await svc.db.read(store.get_file, user_id=user.id, file_id=file_id)
    chunks = storages.of(found.storage).read(found.storage_key)
    try:  # the first chunk before the answer starts: a file deleted meanwhile is a 404
        first = await anext(chunks, b"")
    except FileNotFoundError:
        raise store.file_not_found(file_id) from None
    return StreamingResponse(
        _then(first, chunks),
        # What an earlier version stored unchecked (an upload's mime_type) is served only
        # when it is a media type: a CR LF in a header would end every answer.
        media_type=forms.media_type(found.mime_type) or "application/octet-stream",
        headers={
            "content-length": str(found.bytes),
            "content-disposition": forms.content_disposition(found.filename),
            "x-content-type-options": "nosniff",
        },
    )


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
