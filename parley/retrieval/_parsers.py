"""The parsers: bytes of a sniffed kind to ``Extracted``, within ``Limits``.

They run wherever they are called: ``Extractor`` calls the heavy ones (PDF, DOCX, HTML,
zip) in a worker process whose time and memory the system bounds, and the light ones
(text, Markdown, JSON, CSV, code) in its own process. The limits checked here (pages,
characters, inflated size) are those a parser can count; running out of time or memory is
the worker's to report.
"""

from __future__ import annotations

import io
import logging
import zipfile
from html.parser import HTMLParser

from parley.retrieval._base import (
    MB,
    READABLE,
    Extracted,
    ExtractionFailed,
    Limits,
    UnsupportedFile,
)
from parley.retrieval._detect import Kind, NotText, clean, decode_text

_PAGE_JOIN = "\n\n"
_DOCX_MAIN = "word/document.xml"
#: What a zip that is not a DOCX is, by a member it holds.
_ZIP_KINDS: tuple[tuple[str, str], ...] = (
    ("xl/workbook.xml", "an Excel workbook (xlsx)"),
    ("ppt/presentation.xml", "a PowerPoint presentation (pptx)"),
    ("META-INF/container.xml", "an EPUB book"),
    ("content.xml", "an OpenDocument file (odt, ods or odp)"),
    ("META-INF/MANIFEST.MF", "a Java archive (jar)"),
)


def parse(kind: Kind | str, data: bytes, limits: Limits) -> Extracted:
    """The text of ``data``, which ``sniff`` found to be ``kind`` (or ``zip``)."""
    if kind == "pdf":
        return _pdf(data, limits)
    if kind in ("zip", "docx"):
        return _docx(data, limits)
    if kind != "html" and len(data) > 4 * limits.max_text_chars + 4:
        raise _too_long(limits)  # no encoding we read spends more than 4 bytes on a character
    text, encoding = _decoded(data)
    if kind == "html":
        text = html_text(text)
    return Extracted(text=_checked(text, limits), kind=kind, encoding=encoding)  # type: ignore[arg-type]


def _decoded(data: bytes) -> tuple[str, str]:
    try:
        return decode_text(data)
    except NotText as exc:
        raise ExtractionFailed("not_text", exc.message) from None


def _too_long(limits: Limits) -> ExtractionFailed:
    return ExtractionFailed(
        "too_large",
        f"the file's text is longer than the limit of {limits.max_text_chars:,} characters",
    )


def _checked(text: str, limits: Limits) -> str:
    if len(text) > limits.max_text_chars:
        raise _too_long(limits)
    if not text.strip():
        raise ExtractionFailed("empty", "the file has no text")
    return text


# ------------------------------------------------------------------------------ PDF


def _pdf(data: bytes, limits: Limits) -> Extracted:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not _opened(reader):
            raise ExtractionFailed("encrypted", "the PDF is encrypted with a password")
        count = len(reader.pages)
        if count > limits.max_pages:
            raise ExtractionFailed(
                "too_many_pages",
                f"the PDF has {count:,} pages, more than the limit of {limits.max_pages:,}",
            )
        parts: list[str] = []
        starts: list[int] = []
        size = 0
        for page in reader.pages:
            starts.append(size)
            text = clean(page.extract_text() or "").strip()
            parts.append(text)
            size += len(text) + len(_PAGE_JOIN)
            if size > limits.max_text_chars:
                raise _too_long(limits)
    except LimitReachedError:
        raise ExtractionFailed(
            "too_large", "a compressed part of the PDF inflates past the parser's limit"
        ) from None
    except FileNotDecryptedError:
        raise ExtractionFailed("encrypted", "the PDF is encrypted with a password") from None
    except RecursionError:
        raise ExtractionFailed("corrupt", "the PDF's objects are nested too deeply") from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        # pypdf reports a broken file with any of these; the name of the exception is all
        # that is said of it (its text may quote the file).
        raise ExtractionFailed(
            "corrupt", f"the PDF could not be read ({type(exc).__name__})"
        ) from None
    text = _PAGE_JOIN.join(parts)
    if not text.strip():
        raise ExtractionFailed(
            "empty", "the PDF has no text layer (a scanned document needs OCR first)"
        )
    return Extracted(text=text, kind="pdf", pages=len(parts), page_starts=tuple(starts))


def _opened(reader: object) -> bool:
    """Whether an encrypted PDF opens with the empty password (many do: they only
    restrict printing or copying)."""
    from pypdf.errors import PdfReadError

    try:
        return bool(reader.decrypt(""))  # type: ignore[attr-defined]
    except (PdfReadError, NotImplementedError, ValueError):
        return False  # the empty password failed, or a cipher needs an optional library


# ------------------------------------------------------------------------------ DOCX


def _docx(data: bytes, limits: Limits) -> Extracted:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise ExtractionFailed("corrupt", "the file is a broken zip archive") from None
    if _DOCX_MAIN not in names:
        for member, name in _ZIP_KINDS:
            if member in names:
                raise UnsupportedFile(f"the file is {name}, which is not read; {READABLE}")
        raise UnsupportedFile(f"the file is a zip archive, which is not read; {READABLE}")
    inflated = sum(info.file_size for info in archive.infolist())
    if inflated > limits.max_inflated_bytes:
        raise ExtractionFailed(
            "too_large",
            f"the DOCX inflates to {inflated / MB:,.0f} MiB, more than the limit of "
            f"{limits.max_inflated_bytes / MB:,.0f} MiB",
        )
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from lxml.etree import LxmlError  # type: ignore[import-untyped]

    try:
        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        size = 0
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                rows = ["\t".join(cell.text for cell in row.cells) for row in block.rows]
                line = "\n".join(rows)
            else:
                line = block.text
            lines.append(line)
            size += len(line) + 1
            if size > limits.max_text_chars:
                break
    except (zipfile.BadZipFile, PackageNotFoundError, LxmlError, KeyError, ValueError) as exc:
        raise ExtractionFailed(
            "corrupt", f"the DOCX could not be read ({type(exc).__name__})"
        ) from None
    text = "\n".join(lines)
    return Extracted(text=_checked(text, limits), kind="docx")


# ------------------------------------------------------------------------------ HTML

#: Elements whose content is not text for a reader.
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "math"})
#: Elements that start a new line of text.
_BLOCKS = frozenset(
    {
        *("p", "div", "br", "hr", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "h1"),
        *("h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "section", "article", "header"),
        *("footer", "nav", "aside", "main", "figure", "figcaption", "title", "form"),
        *("fieldset", "details", "summary", "address", "caption", "thead", "tbody", "tfoot"),
    }
)


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping.append(tag)
        elif tag in _BLOCKS:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if self.skipping and tag == self.skipping[-1]:
            self.skipping.pop()
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_text(html: str) -> str:
    """The text a reader sees in an HTML page: no tags, scripts or styles, a line per
    block, runs of spaces made one."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)
