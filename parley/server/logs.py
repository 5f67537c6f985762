"""Request ids and the access log: a pure ASGI middleware, outermost on every path of the
app (the fast paths of the turn POSTs too), so every answer, errors and streams included,
says which request it was.

A request's ``X-Request-ID`` is kept when it is sane (1 to 128 printable ASCII characters),
made up otherwise (16 hex digits); the answer carries it back, and ``logcontext.request_id``
holds it while the request is handled, so every line logged meanwhile (turns started by it
too) names it. One ``parley.access`` line at info level follows the end of each answer
(for a stream, its last byte): method, path (never the query string: it may hold a key),
status, milliseconds, body bytes, client address, and the user once authenticated. With
the info level off, no record is made and no clock read.

No line holds an API key or a message's content, at any level (``protect``, which the server
applies when it starts): at ``debug`` only Parley's own loggers say more than info, because
the libraries' debug lines quote what they carry (uvicorn's and the ``websockets``
library's, the headers of a WebSocket handshake, ``Authorization`` included, and every
frame; SQLAlchemy's and aiosqlite's, the statements' parameters; the HTTP clients', their
requests). And every line that reaches a handler of the server's is scrubbed of what looks
like a credential (``Bearer …``, ``X-API-Key: …``, ``?key=…``, ``pk_…``, ``sk-…``), its
traceback too, in case one gets through anyway.
"""

from __future__ import annotations

import logging
import random
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from parley import logcontext
from parley.asgi_send import PassingSend

__all__ = ["REQUEST_ID_HEADER", "USER_ID_KEY", "AccessLog", "Redact", "protect", "request_id_of"]

REQUEST_ID_HEADER = "X-Request-ID"
#: Where authentication (``deps.authenticated``) leaves the caller's user id in the scope.
USER_ID_KEY = "parley.user_id"

log = logging.getLogger("parley.access")

_HEADER = REQUEST_ID_HEADER.lower().encode()
_SANE = re.compile(rb"[\x20-\x7e]{1,128}")
#: Request ids' own generator, seeded from the system's randomness at import.
_ids = random.Random()


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's request id when it sent a sane one, else a new one."""
    for name, value in headers:
        if name == _HEADER:
            if _SANE.fullmatch(value) and value.strip():
                return value.decode("ascii")
            break
    # A label to find the request by, not a secret: no system call for it.
    return f"{_ids.getrandbits(64):016x}"


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        header = (_HEADER, rid.encode("ascii"))
        token = logcontext.request_id.set(rid)
        try:
            if log.isEnabledFor(logging.INFO):
                await self._logged(scope, receive, send, header)
                return

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), header]
                await send(message)

            await self.app(scope, receive, PassingSend(send, send_with_id))
        finally:
            logcontext.request_id.reset(token)

    async def _logged(
        self, scope: Scope, receive: Receive, send: Send, header: tuple[bytes, bytes]
    ) -> None:
        start = time.perf_counter()
        status = 500  # what the client gets when the app fails before it answers
        size = 0

        async def send_counted(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)
            # Counted once sent: a stream's tap drops a send that would wait (``kit.direct_write``).
            if message["type"] == "http.response.body":
                size += len(message.get("body", b""))

        try:
            await self.app(scope, receive, PassingSend(send, send_counted))
        finally:
            ms = round((time.perf_counter() - start) * 1000, 1)
            client = scope.get("client")
            address = f"{client[0]}:{client[1]}" if client else "-"
            method, path = scope["method"], scope["path"]
            user = scope.get(USER_ID_KEY)
            log.info(
                "%s %s %d %.1fms %dB %s %s",
                method,
                path,
                status,
                ms,
                size,
                address,
                user or "-",
                extra={
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": ms,
                    "bytes": size,
                    "client": address,
                    "user_id": user,
                },
            )


# --------------------------------------------------------------- what no line may hold

#: The loggers uvicorn sets to the server's level itself; the others follow the root's.
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
#: A credential in a line: an ``Authorization`` value, an ``X-API-Key`` header, a key in a
#: URL's query, or a token of Parley's (``pk_``) or a provider's (``sk-``) shape.
_CREDENTIAL = re.compile(
    r"(?i)\b(?:(bearer|basic)\s+|(x-api-key|api[-_]key)([\"']?\s*[:=]\s*[\"']?))[^\s\"',;]+"
    r"|([?&](?:key|api_key|access_token)=)[^&#\s\"']+"
    r"|\b(pk_|sk-)[A-Za-z0-9_-]{6,}"
)
_formatter = logging.Formatter()


def _hidden(match: re.Match[str]) -> str:
    scheme, header, separator, query, token = match.groups()
    if scheme:
        return f"{scheme} ***"
    if header:
        return f"{header}{separator}***"
    return f"{query or token}***"


def redact(text: str) -> str:
    """``text`` with what looks like a credential in it replaced by ``***``."""
    return _CREDENTIAL.sub(_hidden, text)


class Redact(logging.Filter):
    """A handler's filter: the record's message and its traceback, credentials replaced
    (``redact``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format: the handler reports it as it would
            return True
        scrubbed = redact(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
            record.__dict__.pop("color_message", None)  # uvicorn's copy, with colours
        if record.exc_info:  # formatted here, once, for every handler and formatter
            record.exc_text = redact(_formatter.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def protect() -> None:
    """Keep keys and content out of the log, at every level (see the module's docstring):
    call once logging and uvicorn's loggers are set up (``serving.build_server`` does).

    Below info, the root logger (which the libraries' loggers follow) goes up to info while
    Parley's loggers (``parley.*``) keep the level asked for; uvicorn's loggers, which
    uvicorn sets to the server's level itself, go up to info too. Every handler of the root
    logger's and of uvicorn's gets ``Redact``."""
    root = logging.getLogger()
    if root.level < logging.INFO:
        logging.getLogger("parley").setLevel(max(root.level, 1))  # 0 would follow the root
        root.setLevel(logging.INFO)
    for name in _UVICORN:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:
            logger.setLevel(logging.INFO)
    for logger in (root, *(logging.getLogger(name) for name in _UVICORN)):
        for handler in logger.handlers:
            if not any(isinstance(f, Redact) for f in handler.filters):
                handler.addFilter(Redact())
