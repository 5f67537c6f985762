"""The vocabulary of extraction: its limits, its result and its two errors.

    InvalidRequest (parley.errors)
    ├── UnsupportedFile      code unsupported_file   a kind of file Parley does not read
    └── ExtractionFailed     code invalid_file       a kind it reads, but not this file
                                                     (``reason`` says why)

The codes are those of OpenAI's ``last_error`` on a vector store file.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Literal

from parley.errors import InvalidRequest
from parley.retrieval._detect import Kind

#: Why a file that is of a kind Parley reads gave no text.
Reason = Literal[
    "empty",  # no bytes, or no text in them (a scanned PDF without a text layer)
    "too_large",  # over a size limit: the file, its text, or what a compressed part inflates to
    "too_many_pages",
    "timeout",  # the parse ran past its time (wall clock or CPU)
    "memory",  # the parse ran past its memory
    "corrupt",  # the parser could not read it
    "encrypted",  # a PDF that needs a password
    "not_text",  # bytes that are neither a known format nor text
]

MB = 1024 * 1024
#: What an ``UnsupportedFile`` error adds.
READABLE = "Parley reads text, Markdown, HTML, JSON, CSV, source code, PDF and DOCX files"


class UnsupportedFile(InvalidRequest):
    """A kind of file Parley does not read; the message names the kind seen."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="unsupported_file")


class ExtractionFailed(InvalidRequest):
    """A file of a kind Parley reads, whose text could not be had; ``reason`` says why."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message, code="invalid_file")
        self.reason: Reason = reason


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one extraction. ``max_seconds`` and ``max_memory_mb`` hold in the
    worker processes (wall clock and CPU time; address space); the others everywhere."""

    #: The largest file read, in bytes (128 MiB).
    max_bytes: int = 128 * MB
    #: The most pages a PDF may have.
    max_pages: int = 2_000
    #: The most characters of text one file may give (about 5 million tokens).
    max_text_chars: int = 20_000_000
    #: The longest a parse in a worker may take, wall clock and CPU alike.
    max_seconds: float = 30.0
    #: The address space of a worker process, in MiB; the parts of a DOCX may inflate to
    #: an eighth of it at most.
    max_memory_mb: int = 1024

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pages", "max_text_chars", "max_seconds", "max_memory_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    @property
    def max_inflated_bytes(self) -> int:
        """The most the parts of a DOCX may inflate to, all together."""
        return self.max_memory_mb * MB // 8


@dataclass(frozen=True, slots=True)
class Extracted:
    """The text of a file.

    ``page_starts`` (PDF): where each page's text starts in ``text`` (pages are joined by a
    blank line), so that an offset tells its page. ``encoding``: what text files were read
    as (``utf-8``, ``utf-16-le``, ``cp1252``, ...); ``None`` for PDF and DOCX.
    """

    text: str
    kind: Kind
    pages: int | None = None
    page_starts: tuple[int, ...] = ()
    encoding: str | None = None

    def page_of(self, offset: int) -> int | None:
        """The 1-based page that holds the character at ``offset`` (PDF), else ``None``."""
        if not self.page_starts:
            return None
        return max(1, bisect_right(self.page_starts, offset))
