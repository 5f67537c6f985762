"""A file's bytes to its text: plain text, Markdown, HTML, JSON, CSV, source code, PDF, DOCX.

    extracted = extract(data, "notes.md", "text/markdown")     # in this process

    async with Extractor(Limits(max_pages=500)) as extractor:  # untrusted files
        extracted = await extractor.extract(data, filename, content_type)

What a file is comes from its bytes (``_detect``): a PDF named ``.docx`` is read as a PDF,
binary data named ``.txt`` is refused (``UnsupportedFile``), and the name and claimed type
only tell which kind of text a text file is. The file name is never used as a path.

Text encodings (``_detect.decode_text``): UTF-8, or UTF-16/32 with a byte order mark. A
few bytes that are not UTF-8 (up to 1 %) become U+FFFD; more, and the file is read as
Windows-1252 (legacy 8-bit text) unless it holds control bytes, and is then refused
(``ExtractionFailed``, reason ``not_text``).

``extract`` parses in the calling process: only the limits a parser can count hold there
(size, pages, characters, what a DOCX inflates to). ``Extractor`` is for files from users:
it reads text in its own process (in a thread, not to block the event loop) and parses PDF,
DOCX and HTML in a small pool of warm worker processes (``_worker``) whose memory and CPU
time the system caps and whose wall-clock time it watches, so a PDF bomb, a zip bomb or a
10,000-page file gives ``ExtractionFailed`` with its reason, never a stuck or dead caller.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from parley.retrieval._base import (
    MB,
    READABLE,
    Extracted,
    ExtractionFailed,
    Limits,
    Reason,
    UnsupportedFile,
)
from parley.retrieval._detect import HEAVY, Kind, sniff
from parley.retrieval._parsers import parse
from parley.retrieval._worker import Pool, WorkerGone

__all__ = [
    "Extracted",
    "ExtractionFailed",
    "Extractor",
    "Kind",
    "Limits",
    "Reason",
    "UnsupportedFile",
    "extract",
]

#: Light files up to this size are read on the event loop itself (a thread costs more).
_INLINE_BYTES = 64 * 1024


def _kind_of(data: bytes, filename: str, content_type: str | None, limits: Limits) -> str:
    """The kind to parse ``data`` as (or ``zip``), after the checks that need no parser."""
    if not data:
        raise ExtractionFailed("empty", "the file is empty")
    if len(data) > limits.max_bytes:
        raise ExtractionFailed(
            "too_large",
            f"the file is {len(data) / MB:,.1f} MiB, more than the limit of "
            f"{limits.max_bytes / MB:,.1f} MiB",
        )
    sniffed = sniff(data, filename, content_type)
    if sniffed.kind is None:
        raise UnsupportedFile(f"the file is {sniffed.refused}, which is not read; {READABLE}")
    return sniffed.kind


def extract(
    data: bytes, filename: str, content_type: str | None = None, *, limits: Limits | None = None
) -> Extracted:
    """The text of a file, parsed in this process (no bound on time or memory: for files
    you trust; ``Extractor`` for the others)."""
    limits = limits or Limits()
    return parse(_kind_of(data, filename, content_type, limits), data, limits)


class Extractor:
    """Extraction for files from users: bounded in time and memory, safe on an event loop.

    ``workers`` worker processes at most (started on first use, or by ``start``), reused
    across files; one that died or ran late is replaced. Close it when done.
    """

    def __init__(self, limits: Limits | None = None, *, workers: int = 2) -> None:
        self.limits = limits or Limits()
        self._pool = Pool(self.limits, workers)

    @property
    def workers_started(self) -> int:
        """How many worker processes were started so far (the warm ones count once)."""
        return self._pool.started

    async def start(self) -> None:
        """Starts the worker processes now, so that the first files do not wait for them."""
        await asyncio.to_thread(self._pool.warm)

    async def extract(
        self, data: bytes, filename: str, content_type: str | None = None
    ) -> Extracted:
        """The text of a file; ``UnsupportedFile`` or ``ExtractionFailed`` when none."""
        kind = _kind_of(data, filename, content_type, self.limits)
        if kind in HEAVY:
            return await asyncio.to_thread(self._in_worker, kind, data)
        if len(data) <= _INLINE_BYTES:
            return parse(kind, data, self.limits)
        return await asyncio.to_thread(parse, kind, data, self.limits)

    def extract_blocking(
        self, data: bytes, filename: str, content_type: str | None = None
    ) -> Extracted:
        """``extract`` for a thread that may block (a script, a worker thread)."""
        kind = _kind_of(data, filename, content_type, self.limits)
        if kind in HEAVY:
            return self._in_worker(kind, data)
        return parse(kind, data, self.limits)

    def _in_worker(self, kind: str, data: bytes) -> Extracted:
        try:
            answer = self._pool.run(kind, data)
        except WorkerGone as gone:
            raise gone.failure from None
        return _extracted(answer)

    async def close(self) -> None:
        """Stops the idle workers; a busy one stops when its file is done."""
        await asyncio.to_thread(self._pool.close)

    async def __aenter__(self) -> Extractor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


def _extracted(answer: dict[str, Any]) -> Extracted:
    if answer.get("ok"):
        return Extracted(
            text=answer["text"],
            kind=answer["kind"],
            pages=answer["pages"],
            page_starts=tuple(answer["page_starts"]),
            encoding=answer["encoding"],
        )
    if answer.get("error") == "unsupported":
        raise UnsupportedFile(answer["message"])
    raise ExtractionFailed(answer["reason"], answer["message"])
