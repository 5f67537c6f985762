"""What a face reads from a request that brings a file: a multipart form whose file is
spooled to a temporary file as it comes (never held whole in memory), the name a file is
kept under, the body limits of the paths that take files, and the ``Content-Disposition``
of a download; the app's file storages (``FileStorages``), and a multipart body's OpenAPI
description (``multipart_body``). The Files, Uploads and Containers faces share them.

A file's name is kept as the client gave it, less any directory: what follows the last
``/`` or ``\\``, without control characters. It is only ever shown back, never a path (the
bytes live under a random key, ``parley.files.storage``). A name that is nothing once
stripped (``../``, an empty one) or longer than ``MAX_FILENAME`` characters is refused.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from parley.config import Settings
from parley.errors import InvalidRequest, PayloadTooLarge
from parley.files.storage import PIECE, Storages
from parley.server.deps import Svc

MAX_FILENAME = 255
#: The largest part of an upload (OpenAI's 64 MB).
MAX_PART_BYTES = 64 * 1024 * 1024
#: Room in a multipart body for its boundaries, headers and small fields.
FORM_OVERHEAD = 64 * 1024

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UPLOAD_PARTS = re.compile(r"/v1/uploads/[^/]+/parts")
_CONTAINER_FILES = re.compile(r"/v1/containers/[^/]+/files")


def body_limits(settings: Settings) -> Callable[[str], int | None]:
    """The body limit of each path that takes a file (``server.limits.RequestGuard``):
    ``POST /v1/files`` and ``POST /v1/containers/{id}/files`` up to the largest file, an
    upload's part up to ``MAX_PART_BYTES``; None for every other path (the server's own
    limit)."""
    files = settings.files_max_bytes + FORM_OVERHEAD
    parts = min(MAX_PART_BYTES, settings.files_max_bytes) + FORM_OVERHEAD

    def limit(path: str) -> int | None:
        if path == "/v1/files" or _CONTAINER_FILES.fullmatch(path):
            return files
        if _UPLOAD_PARTS.fullmatch(path):
            return parts
        return None

    return limit


async def read_form(request: Request, fields: tuple[str, ...]) -> FormData:
    """The request's multipart form: one file at most, small fields among ``fields``.
    Whatever else is refused with a 400 naming it."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise InvalidRequest(
            "The body must be multipart/form-data.", code="invalid_content_type", param=None
        )
    try:
        form = await request.form(max_files=1, max_fields=16, max_part_size=64 * 1024)
    except HTTPException as exc:  # Starlette's answer to a malformed form
        raise InvalidRequest(
            f"Invalid multipart body: {exc.detail}", code="invalid_multipart"
        ) from None
    except ClientDisconnect:
        # The client went away midway: nothing was stored (the spooled file is gone), and
        # this answer goes nowhere.
        raise InvalidRequest("The request body was cut off.", code="incomplete_body") from None
    for name in form:
        if name not in fields:
            await form.close()
            raise InvalidRequest(
                f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name
            )
    return form


def form_file(form: FormData, name: str) -> UploadFile:
    value = form.get(name)
    if value is None:
        raise InvalidRequest(
            f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
        )
    if not isinstance(value, UploadFile):
        raise InvalidRequest(
            f"Invalid '{name}': it must be a file (a part with a filename).",
            code="invalid_value",
            param=name,
        )
    return value


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"Invalid '{name}': expected text, not a file.", param=name)
    return value


def stored_filename(given: str | None, param: str = "file") -> str:
    """The name a file is stored under (the module's docstring says the rule)."""
    name = _CONTROL.sub("", (given or "").replace("\\", "/").rsplit("/", 1)[-1]).strip()
    if name in ("", ".", ".."):
        raise InvalidRequest(
            f"Invalid '{param}': the file has no name (a name without directories is needed).",
            code="invalid_filename",
            param=param,
        )
    if len(name) > MAX_FILENAME:
        raise InvalidRequest(
            f"Invalid '{param}': the file's name is longer than {MAX_FILENAME} characters.",
            code="invalid_filename",
            param=param,
        )
    return name


def too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The file is {size} bytes, larger than the {limit} bytes this server accepts.",
        code="file_too_large",
    )


async def chunks_of(upload: UploadFile) -> AsyncIterator[bytes]:
    """The spooled file's bytes, ``PIECE`` at a time (read in a thread once on disk)."""
    await upload.seek(0)
    while chunk := await upload.read(PIECE):
        yield chunk


def content_disposition(filename: str) -> str:
    """``attachment`` with the name, safe whatever it holds: an ASCII fallback with
    anything unusual as ``_``, and the exact name percent-encoded (RFC 6266)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\;%' else "_" for c in filename
    )
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def multipart_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose body is a multipart form with these fields."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": schema}},
        }
    }


def file_storages(request: Request, svc: Svc) -> Storages:
    """The app's file storages, made on first use."""
    state = request.app.state
    found: Storages | None = getattr(state, "file_storages", None)
    if found is None:
        found = state.file_storages = Storages(svc.settings, svc.db)
    return found


FileStorages = Annotated[Storages, Depends(file_storages)]
