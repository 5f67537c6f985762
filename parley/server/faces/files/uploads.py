"""``/v1/uploads``: a file sent in parts, one request each (create, add parts, complete,
cancel), for files larger than one request should carry.

A part's bytes are stored as it comes (``forms.read_form``), then its row is written. The
completion joins the parts in the order given into a new file (checking their sizes add
up to the declared one, and the MD5 when given), writes the file's row and ends the
upload ``completed`` in one transaction, then deletes the parts' bytes. An upload not
completed within the hour ends ``expired`` (``parley.files.sweep``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request

from parley.errors import InvalidRequest
from parley.files.storage import Storages
from parley.server.deps import CurrentUser, Svc
from parley.server.faces.files import forms
from parley.server.faces.files.schemas import (
    BATCH_EXPIRY,
    UploadComplete,
    UploadCreate,
    UploadPartPublic,
    UploadPublic,
)
from parley.server.faces.kit.forms import FileStorages, multipart_body
from parley.server.openapi import errors
from parley.store import files as store
from parley.store.records import UploadPart

router = APIRouter(tags=["uploads"])

_PART_BODY = multipart_body(["data"], {"data": {"type": "string", "format": "binary"}})


@router.post("/uploads", responses=errors(400))
async def create_upload(body: UploadCreate, user: CurrentUser, svc: Svc) -> UploadPublic:
    settings = svc.settings
    if body.bytes > settings.files_max_bytes:
        raise forms.too_large(body.bytes, settings.files_max_bytes)
    mime_type = forms.media_type(body.mime_type)
    if mime_type is None:
        raise InvalidRequest(
            f"mime_type {body.mime_type[:100]!r} is not a media type: give one such as "
            "'text/plain' or 'application/pdf'.",
            code="invalid_mime_type",
            param="mime_type",
        )
    expiry = body.expires_after.seconds if body.expires_after is not None else None
    if expiry is None and body.purpose == "batch":
        expiry = BATCH_EXPIRY
    made = await svc.db.write(
        store.create_upload,
        user_id=user.id,
        filename=forms.stored_filename(body.filename, "filename"),
        purpose=body.purpose,
        size=body.bytes,
        mime_type=mime_type,
        file_expires_after=expiry,
        quota=settings.files_user_quota_bytes,
    )
    return UploadPublic.of(made)


@router.post("/uploads/{upload_id}/parts", openapi_extra=_PART_BODY, responses=errors(400, 413))
async def add_upload_part(
    upload_id: str, request: Request, user: CurrentUser, svc: Svc, storages: FileStorages
) -> UploadPartPublic:
    upload = await svc.db.read(store.get_upload, user_id=user.id, upload_id=upload_id)
    if upload.status != "pending":
        raise InvalidRequest(
            f"Upload {upload_id} is {upload.status}: it takes no more parts.",
            code="upload_not_pending",
            param="upload_id",
        )
    form = await forms.read_form(request, ("data",))
    try:
        data = forms.form_file(form, "data")
        size = data.size or 0
        if size > forms.MAX_PART_BYTES:
            raise forms.too_large(size, forms.MAX_PART_BYTES)
        storage = storages.default
        stored = await storage.put(forms.chunks_of(data))
    finally:
        await form.close()
    try:
        part = await svc.db.write(
            store.add_part,
            user_id=user.id,
            upload_id=upload_id,
            size=stored.size,
            stored=store.StoredBytes(stored.kind, stored.key),
        )
    except BaseException:
        await storage.delete([stored.key])
        raise
    return UploadPartPublic.of(part)


@router.post("/uploads/{upload_id}/complete", responses=errors(400))
async def complete_upload(
    upload_id: str, body: UploadComplete, user: CurrentUser, svc: Svc, storages: FileStorages
) -> UploadPublic:
    upload, parts = await svc.db.read(
        store.parts_to_complete, user_id=user.id, upload_id=upload_id, part_ids=body.part_ids
    )
    storage = storages.default
    stored = await storage.put(_joined(storages, parts))
    try:
        if body.md5 is not None and body.md5.strip().lower() != stored.md5:
            raise InvalidRequest(
                "Invalid 'md5': the parts' bytes have another MD5 checksum.",
                code="md5_mismatch",
                param="md5",
            )
        done, made, leftovers = await svc.db.write(
            store.complete_upload,
            user_id=user.id,
            upload_id=upload.id,
            sha256=stored.sha256,
            stored=store.StoredBytes(stored.kind, stored.key),
            quota=svc.settings.files_user_quota_bytes,
        )
    except BaseException:
        await storage.delete([stored.key])
        raise
    await storages.delete(leftovers)
    return UploadPublic.of(done, made)


@router.post("/uploads/{upload_id}/cancel", responses=errors(400))
async def cancel_upload(
    upload_id: str, user: CurrentUser, svc: Svc, storages: FileStorages
) -> UploadPublic:
    cancelled, leftovers = await svc.db.write(
        store.cancel_upload, user_id=user.id, upload_id=upload_id
    )
    await storages.delete(leftovers)
    return UploadPublic.of(cancelled)


async def _joined(storages: Storages, parts: list[UploadPart]) -> AsyncIterator[bytes]:
    for part in parts:
        async for chunk in storages.of(part.storage).read(part.storage_key):
            yield chunk
