"""Bounds on a request's head (its request line and headers), which uvicorn's httptools
protocol does not bound at all: a head larger than ``MAX_HEAD_BYTES`` or with more than
``MAX_HEADERS`` headers is answered 431 (a JSON error, then the connection closes),
before any of the app runs. A head still arriving is counted as its bytes come, so that
one endless header cannot fill the memory either.

``http_protocol()`` is what ``parley serve`` gives uvicorn as its ``http`` protocol:
httptools' with these bounds, or, without httptools, h11's, which bounds the head itself
(``h11_max_incomplete_event_size``, answered 400)."""

from __future__ import annotations

import asyncio
import json
from typing import Literal

#: The most bytes a request's head may have: its request line and all its headers.
MAX_HEAD_BYTES = 64 * 1024
#: The most headers a request may have.
MAX_HEADERS = 128

_BODY = json.dumps(
    {
        "error": {
            "message": (
                f"The request's headers are too large: at most {MAX_HEADERS} headers, "
                f"{MAX_HEAD_BYTES // 1024} KiB in all."
            ),
            "type": "invalid_request",
            "param": None,
            "code": "request_headers_too_large",
        }
    }
).encode()
_ANSWER = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"content-length: " + str(len(_BODY)).encode() + b"\r\n"
    b"connection: close\r\n\r\n" + _BODY
)


class HeadTooLarge(Exception):
    """Raised in a parser callback: the head passed a bound (the parser stops there)."""


def http_protocol() -> type[asyncio.Protocol] | Literal["h11"]:
    """The HTTP protocol for uvicorn: ``BoundedHttpTools`` when httptools is installed,
    else ``"h11"`` (give uvicorn ``h11_max_incomplete_event_size=MAX_HEAD_BYTES``)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return "h11"

    class BoundedHttpTools(HttpToolsProtocol):
        """uvicorn's httptools protocol with the head bounded (``MAX_HEAD_BYTES``,
        ``MAX_HEADERS``)."""

        #: Between a request's first byte and the end of its headers.
        _in_head = False
        #: Bytes of the head parsed (request target and headers), and bytes received
        #: while it was still arriving (a header not yet whole is not parsed yet).
        _parsed = _arrived = 0
        _too_large = False

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._in_head:
                self._arrived = 0
                return
            self._arrived += len(data)
            if self._arrived > 2 * MAX_HEAD_BYTES:  # one endless header: stop reading it
                self._refuse()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head, self._parsed = True, 0

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            self._count(len(url))

        def on_header(self, name: bytes, value: bytes) -> None:
            super().on_header(name, value)
            self._count(len(name) + len(value) + 4)
            if len(self.headers) > MAX_HEADERS:
                self._too_large = True
                raise HeadTooLarge

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def _count(self, size: int) -> None:
            """``size`` more bytes of the head were parsed; past the bound, the parser
            stops (and uvicorn calls ``send_400_response``)."""
            self._parsed += size
            if self._parsed > MAX_HEAD_BYTES:
                self._too_large = True
                raise HeadTooLarge

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers 400 to whatever stops the parser, ours included.
            if self._too_large:
                self._refuse()
            else:
                super().send_400_response(msg)

        def _refuse(self) -> None:
            self._too_large = True
            if not self.transport.is_closing():
                self.transport.write(_ANSWER)
                self.transport.close()

    return BoundedHttpTools
