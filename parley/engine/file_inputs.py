"""Files given with user messages, read for the model call that sends them.

A thread keeps a file by reference (``types.file_entries``: the user's ``file_id``, or the
bytes given inline) and a ``ChatMessage`` carries it as a ``FileInput`` with only its name
and where it is. Before a call, ``FileInputs`` reads each file's bytes (``parley.files``
storage) and works out its media type; for a provider that reads it as text
(``ProviderRegistry.reads_file``), its text too, extracted by the bounded ``Extractor`` off
the event loop (``parley.retrieval``), and kept a while by the bytes' digest, so the next
turns of the thread do not extract it again.

The faces call ``read`` on each new file before the run starts, so that a file that is not
the user's (404) or that cannot be read as text for the model (400) is refused with its
field named; the turn calls ``resolve``, where a file that went meanwhile (deleted) tells
the model so instead of failing the turn.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import mimetypes
import threading
from collections import OrderedDict

from parley.config import Settings
from parley.errors import InvalidRequest, ParleyError
from parley.files.storage import Storages
from parley.providers.base import ChatMessage, FileInput, ModelRequest
from parley.providers.file_parts import MAX_FILE_BYTES, MAX_TEXT_CHARS, PDF
from parley.providers.registry import ProviderRegistry
from parley.retrieval.extract import Extractor, Limits
from parley.store import files as file_store
from parley.store.db import Database
from parley.types import Role, image_type

#: Characters of extracted text kept in memory, all files together.
_KEPT_CHARS = 8_000_000
#: Worker processes that parse PDF, DOCX and HTML files for model calls.
_WORKERS = 1


class FileInputs:
    """Reads the files of model calls: their bytes and, where needed, their text."""

    def __init__(self, db: Database, settings: Settings, providers: ProviderRegistry) -> None:
        self.db = db
        self.providers = providers
        self.storages = Storages(settings, db)
        self._extractor: Extractor | None = None
        self._texts: OrderedDict[str, str] = OrderedDict()
        self._kept = 0
        self._lock = threading.Lock()

    async def read(self, file: FileInput, *, user_id: str, model: str) -> FileInput:
        """``file`` with its bytes and media type, and its text when ``model`` reads it as
        text. Raises ``NotFound`` (``file_not_found``: not one of the user's files) and
        ``InvalidRequest`` (too large, or no text a model reading text could be given)."""
        data, declared, digest, name = await self._bytes(file, user_id)
        file = dataclasses.replace(file, filename=file.filename or name)
        media_type = _media_type(data, declared, file.filename)
        if self.providers.reads_file(model, media_type):
            return dataclasses.replace(file, data=data, media_type=media_type, text=None)
        text = await self._text(data, file.filename, declared, digest)
        if len(text) > MAX_TEXT_CHARS:
            raise InvalidRequest(
                f"The file {file.filename} has {len(text):,} characters of text; a model that "
                f"reads files as text is given at most {MAX_TEXT_CHARS:,}.",
                code="file_too_long",
            )
        return dataclasses.replace(file, data=data, media_type=media_type, text=text)

    async def check(self, file: FileInput, *, user_id: str) -> FileInput:
        """``file``, named, when it is given inline or is one of the user's files and not
        too large for a model call (its bytes are not read: for a message kept with no
        model chosen yet). Raises ``NotFound`` and ``InvalidRequest``."""
        if file.file_id is None:
            return file
        found = await self.db.read(file_store.get_file, user_id=user_id, file_id=file.file_id)
        if found.bytes > MAX_FILE_BYTES:
            raise too_large(file.filename or found.filename, found.bytes)
        return dataclasses.replace(file, filename=file.filename or found.filename)

    async def image(self, *, file_id: str, user_id: str) -> str:
        """One of the user's files that is an image, as a data URL (PNG, JPEG, GIF or
        WebP). Raises ``NotFound``, and ``InvalidRequest`` for a file that is no image."""
        data, _, _, _ = await self._bytes(FileInput(filename="", file_id=file_id), user_id)
        media_type = image_type(data)
        if media_type is None:
            raise InvalidRequest(
                f"The file {file_id} is not an image (PNG, JPEG, GIF or WebP).",
                code="invalid_image",
            )
        return f"data:{media_type};base64,{base64.b64encode(data).decode()}"

    async def resolve(self, request: ModelRequest, *, user_id: str, model: str) -> ModelRequest:
        """``request`` with the files of its messages read (``read``); a file that cannot
        be read any more is sent as a note that says why (``FileInput.missing``)."""
        if not any(m.files for m in request.messages):
            return request
        messages: list[ChatMessage] = []
        for message in request.messages:
            if message.files and message.role == Role.USER:
                files = [await self._read_or_note(f, user_id, model) for f in message.files]
                message = dataclasses.replace(message, files=files)
            messages.append(message)
        return dataclasses.replace(request, messages=messages)

    async def _read_or_note(self, file: FileInput, user_id: str, model: str) -> FileInput:
        try:
            return await self.read(file, user_id=user_id, model=model)
        except ParleyError as exc:  # deleted or expired since it was given: say so
            return dataclasses.replace(file, missing=exc.message.rstrip("."))

    async def _bytes(self, file: FileInput, user_id: str) -> tuple[bytes, str | None, str, str]:
        """The file's bytes, the media type it was given with, their SHA-256, and the name
        it was stored with."""
        if file.file_id is None:
            data = file.data or b""
            digest = await asyncio.to_thread(_sha256, data) if len(data) > 2**20 else _sha256(data)
            return data, file.media_type, digest, file.filename
        found = await self.db.read(file_store.get_file, user_id=user_id, file_id=file.file_id)
        if found.bytes > MAX_FILE_BYTES:
            raise too_large(file.filename or found.filename, found.bytes)
        chunks = [c async for c in self.storages.of(found.storage).read(found.storage_key)]
        return b"".join(chunks), found.mime_type, found.sha256, found.filename

    async def _text(self, data: bytes, filename: str, declared: str | None, digest: str) -> str:
        with self._lock:
            kept = self._texts.get(digest)
            if kept is not None:
                self._texts.move_to_end(digest)
                return kept
        if self._extractor is None:
            limits = Limits(max_bytes=MAX_FILE_BYTES, max_pages=1_000, max_seconds=20.0)
            self._extractor = Extractor(limits, workers=_WORKERS)
        try:
            text = (await self._extractor.extract(data, filename, declared)).text
        except InvalidRequest as exc:  # UnsupportedFile, ExtractionFailed
            raise InvalidRequest(
                f"The file {filename} cannot be read as text, and the model reads files as "
                f"text: {exc.message}",
                code=exc.code,
            ) from None
        self._keep(digest, text)
        return text

    def _keep(self, digest: str, text: str) -> None:
        if len(text) > _KEPT_CHARS // 4:
            return
        with self._lock:
            if digest in self._texts:
                return
            self._texts[digest] = text
            self._kept += len(text)
            while self._kept > _KEPT_CHARS:
                _, dropped = self._texts.popitem(last=False)
                self._kept -= len(dropped)

    async def aclose(self) -> None:
        if self._extractor is not None:
            await self._extractor.close()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def too_large(filename: str, size: int) -> InvalidRequest:
    """The 400 of a file larger than a model call takes."""
    return InvalidRequest(
        f"The file {filename} is {size / 2**20:,.1f} MiB; a file given to a model may have "
        f"at most {MAX_FILE_BYTES // 2**20} MiB.",
        code="file_too_large",
    )


def _media_type(data: bytes, declared: str | None, filename: str) -> str:
    """A PDF by its bytes, else the type the file was given with, else its name's, else
    ``text/plain`` for bytes that read as UTF-8 text."""
    if data.startswith(b"%PDF-"):
        return PDF
    if declared and declared != _UNKNOWN:
        return declared
    guessed, _ = mimetypes.guess_type(filename)
    if guessed:
        return guessed
    try:
        data[:4096].decode()
    except UnicodeDecodeError as cut:
        if cut.start < 4090:  # not merely a character cut at the end of the sample
            return _UNKNOWN
    return "text/plain" if b"\0" not in data[:4096] else _UNKNOWN


_UNKNOWN = "application/octet-stream"
