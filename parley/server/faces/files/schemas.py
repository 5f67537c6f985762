"""The Files and Uploads APIs' objects, as OpenAI's document has them (``OpenAIFile``,
``Upload``, ``UploadPart``, ``DeleteFileResponse``, ``FileExpirationAfter``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, Strict

from parley.server.faces.kit.bodies import Body
from parley.store.records import StoredFile, Upload, UploadPart

#: What a file may be for (``CreateFileRequest.purpose``).
Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]
PURPOSES: tuple[str, ...] = Purpose.__args__  # type: ignore[attr-defined]
#: The bounds of ``expires_after.seconds``: an hour to 30 days.
MIN_EXPIRY, MAX_EXPIRY = 3600, 30 * 24 * 3600
#: What a ``batch`` file is given when it names no expiry (as OpenAI does).
BATCH_EXPIRY = MAX_EXPIRY


class ExpiresAfter(BaseModel):
    """When the file expires: ``seconds`` after its ``anchor`` (its creation)."""

    anchor: Literal["created_at"]
    seconds: Annotated[int, Strict(), Field(ge=MIN_EXPIRY, le=MAX_EXPIRY)]


class FilePublic(BaseModel):
    """An uploaded file (OpenAI's ``OpenAIFile``)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    expires_at: int | None = None
    filename: str
    purpose: str
    #: Deprecated by OpenAI; a stored file is always ``processed``.
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None

    @classmethod
    def of(cls, f: StoredFile) -> FilePublic:
        return cls(
            id=f.id,
            bytes=f.bytes,
            created_at=int(f.created_at),
            expires_at=None if f.expires_at is None else int(f.expires_at),
            filename=f.filename,
            purpose=f.purpose,
        )


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class UploadCreate(Body):
    """``POST /v1/uploads`` (OpenAI's ``CreateUploadRequest``)."""

    filename: Annotated[str, Field(min_length=1, max_length=1024)]
    purpose: Purpose
    bytes: Annotated[int, Strict(), Field(ge=0)]
    mime_type: Annotated[str, Field(max_length=255)]
    expires_after: ExpiresAfter | None = None


class UploadComplete(Body):
    """``POST /v1/uploads/{upload_id}/complete`` (OpenAI's ``CompleteUploadRequest``)."""

    part_ids: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=10_000)]
    md5: Annotated[str, Field(max_length=64)] | None = None


class UploadPublic(BaseModel):
    """An upload in parts (OpenAI's ``Upload``); ``file`` once it is completed."""

    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    expires_at: int
    file: FilePublic | None = None

    @classmethod
    def of(cls, u: Upload, file: StoredFile | None = None) -> UploadPublic:
        return cls(
            id=u.id,
            bytes=u.bytes,
            created_at=int(u.created_at),
            filename=u.filename,
            purpose=u.purpose,
            status=u.status,  # type: ignore[arg-type]
            expires_at=int(u.expires_at),
            file=None if file is None else FilePublic.of(file),
        )


class UploadPartPublic(BaseModel):
    """A part of an upload (OpenAI's ``UploadPart``)."""

    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str

    @classmethod
    def of(cls, p: UploadPart) -> UploadPartPublic:
        return cls(id=p.id, created_at=int(p.created_at), upload_id=p.upload_id)
