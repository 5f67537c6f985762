"""A pure ASGI middleware that refuses, before any route runs, requests the server cannot
take: bodies over the configured size (413), and a NUL character in the path (404: no id
has one) or the query (422, as a query parameter no route accepts), which no database can
compare or store. On the OpenAI faces' paths the refusal takes OpenAI's shape and statuses
(the query's NUL is a 400 there), as every error does (``parley.server.errors``).

A body sent compressed (``Content-Encoding: gzip`` or ``zstd``, as OpenAI takes them; Codex
sends zstd) is read here whole, at most the limit of compressed bytes, and decompressed at
most to the limit: a body that expands past it (a decompression bomb) is a 413 after no
more than the limit's bytes of work, one that is not what it says it is a 400, another
encoding a 415. The app sees the plain body, its ``Content-Length`` and no
``Content-Encoding``. The paths that take files (their larger limits) take no encoding."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley.errors import (
    ERROR_TYPE_HEADER,
    InvalidRequest,
    NotFound,
    ParleyError,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from parley.server.errors import openai_error, openai_path


class RequestGuard:
    """A body with ``Content-Length`` is judged by it before anything is read. A body
    without one (chunked) is read here, up to the limit, and handed on whole: that is at
    most ``max_bytes`` held in memory, and a body over the limit never reaches the app."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, large: Callable[[str], int | None] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: The larger limit of a path that takes a file (``faces.files.body_limit``): its
        #: body is not read here but counted as the route reads it, which fails with 413
        #: once past the limit.
        self.large = large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"]:
            await _refuse(scope, send, NotFound("No such resource: the path has a NUL character."))
            return
        if b"%00" in scope["query_string"]:
            nul = ValidationFailed("Invalid request: the query has a NUL character (%00).")
            await _refuse(scope, send, nul)
            return
        large = self.large(scope["path"]) if self.large is not None else None
        limit = self.max_bytes if large is None else large
        encoding = _encoding(scope)
        if encoding is not None:
            await self._decoded(scope, receive, send, encoding, large is not None)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > limit:
                    await self._too_large(scope, send, limit)
                    return
                await self.app(scope, receive, send)
                return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        if large is not None:
            await self.app(scope, _counted(receive, large), send)
            return
        body = await self._read_chunked(receive)
        if body is None:
            await self._too_large(scope, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _decoded(
        self, scope: Scope, receive: Receive, send: Send, encoding: str, large: bool
    ) -> None:
        """A compressed body: read (at most the limit), decompressed (at most the limit),
        handed on plain."""
        if large or encoding not in _DECODERS:
            what = "on this path" if large else f"{encoding!r}"
            await _refuse(
                scope,
                send,
                UnsupportedMediaType(
                    f"Content-Encoding {what} is not taken: send the body plain, or as "
                    "gzip or zstd.",
                    code="unsupported_content_encoding",
                ),
            )
            return
        body = await self._read_chunked(receive)
        if body is None:
            await self._too_large(scope, send)
            return
        try:
            plain = _DECODERS[encoding](body, self.max_bytes)
        except _TooLarge:
            await _refuse(
                scope,
                send,
                PayloadTooLarge(
                    f"The request body is larger than {self.max_bytes} bytes once decompressed."
                ),
            )
            return
        except _Corrupt as exc:
            await _refuse(
                scope,
                send,
                InvalidRequest(
                    f"The request body is not valid {encoding}: {exc}.",
                    code="invalid_content_encoding",
                ),
            )
            return
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        headers.append((b"content-length", str(len(plain)).encode()))
        await self.app({**scope, "headers": headers}, _replay(plain, receive), send)

    async def _read_chunked(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it grows past the limit."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away; the app will see it too
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    async def _too_large(self, scope: Scope, send: Send, limit: int | None = None) -> None:
        limit = self.max_bytes if limit is None else limit
        error = PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        await _refuse(scope, send, error)


class _TooLarge(Exception):
    """A body decompressed past the limit."""


class _Corrupt(Exception):
    """A body that is not what its ``Content-Encoding`` says."""


def _encoding(scope: Scope) -> str | None:
    """The body's ``Content-Encoding`` (lowercase), None when there is none or it is
    ``identity``. Several stacked encodings are not taken (``_DECODERS`` has none of them)."""
    for name, value in scope["headers"]:
        if name == b"content-encoding":
            found = value.decode("latin-1").strip().lower()
            return None if found in ("", "identity") else found
    return None


def _gunzip(data: bytes, limit: int) -> bytes:
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        plain = decoder.decompress(data, limit + 1)
    except zlib.error as exc:
        raise _Corrupt(str(exc)) from None
    if len(plain) > limit:
        raise _TooLarge
    if not decoder.eof:
        raise _Corrupt("the compressed data ends too soon")
    if decoder.unused_data:
        raise _Corrupt("data follows the compressed stream")
    return plain


def _unzstd(data: bytes, limit: int) -> bytes:
    import io

    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    parts: list[bytes] = []
    size = 0
    try:
        while chunk := reader.read(min(1 << 20, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            parts.append(chunk)
    except zstandard.ZstdError as exc:
        raise _Corrupt(str(exc)) from None
    return b"".join(parts)


#: How each taken encoding is decoded: the plain bytes, at most ``limit`` of them.
_DECODERS: dict[str, Callable[[bytes, int], bytes]] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "zstd": _unzstd,
}


async def _refuse(scope: Scope, send: Send, error: ParleyError) -> None:
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    if openai_path(scope["path"]):
        status, answer = openai_error(error)
        headers.append((ERROR_TYPE_HEADER.lower().encode(), error.error_type.encode()))
    else:
        status, answer = error.status_code, error.to_dict()
    body = orjson.dumps(answer)
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _counted(receive: Receive, limit: int) -> Receive:
    """``receive``, raising ``PayloadTooLarge`` once the body passes ``limit`` bytes."""
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        return message

    return counted


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
