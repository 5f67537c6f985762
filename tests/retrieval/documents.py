"""Documents made on the spot, for the retrieval tests and ``bench/ingest.py``: PDFs
written by a small writer of our own (text pages, and hostile ones), DOCX files by
python-docx, and zip bombs.

The PDF writer knows just enough of the format (PDF 1.4: a catalog, one page tree, the
standard Helvetica font, a content stream per page, a cross-reference table) to give
pypdf real files to read, and to build the malformed ones a real writer never would.
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Sequence

_VOCABULARY = (
    "the of and to in is was for on that with as by at from this are be or an which "
    "retrieval document passage search index vector token chunk answer question model "
    "server thread message assistant upload extract parser limit memory worker process "
    "page table figure section chapter result method system value number report data"
)
WORDS = _VOCABULARY.split()


def prose(chars: int, seed: int = 0) -> str:
    """About ``chars`` characters of English-like prose, in sentences and paragraphs."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18)))
        sentence = sentence.capitalize() + ". "
        if rng.random() < 0.12:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _lines(text: str, width: int = 95) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        words = paragraph.split()
        line = ""
        for word in words:
            if line and len(line) + 1 + len(word) > width:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def page_content(text: str) -> bytes:
    """A content stream that shows ``text`` in Helvetica, a line at a time."""
    ops = ["BT", "/F1 9 Tf", "11 TL", "40 800 Td"]
    for line in _lines(text):
        ops.append(f"({_escape(line)}) Tj T*")
    ops.append("ET")
    return "\n".join(ops).encode("latin-1", "replace")


class PdfWriter:
    """Objects in order, numbered from 1; ``bytes()`` adds the table and trailer."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def add(self, body: bytes) -> int:
        self.objects.append(body)
        return len(self.objects)

    def reserve(self) -> int:
        return self.add(b"null")

    def set(self, number: int, body: bytes) -> None:
        self.objects[number - 1] = body

    def stream(self, data: bytes, *, compress: bool = True, extra: bytes = b"") -> int:
        if compress:
            data = zlib.compress(data, 6)
            extra += b" /Filter /FlateDecode"
        return self.add(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), extra, data))

    def bytes(self, root: int) -> bytes:
        out = io.BytesIO()
        out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, 1):
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
        table = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(self.objects) + 1))
        for offset in offsets:
            out.write(b"%010d 00000 n \n" % offset)
        out.write(
            b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(self.objects) + 1, root, table)
        )
        return out.getvalue()


def pdf(
    pages: Sequence[str], *, compress: bool = True, contents: Sequence[bytes] | None = None
) -> bytes:
    """A PDF with a page per text of ``pages`` (or per raw content stream of ``contents``)."""
    writer = PdfWriter()
    catalog = writer.reserve()
    tree = writer.reserve()
    font = writer.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for content in contents if contents is not None else [page_content(t) for t in pages]:
        stream = writer.stream(content, compress=compress)
        kids.append(
            writer.add(
                b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
                b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (tree, stream, font)
            )
        )
    refs = b" ".join(b"%d 0 R" % kid for kid in kids)
    writer.set(tree, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (refs, len(kids)))
    writer.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return writer.bytes(catalog)


def pdf_inflating_to(size: int) -> bytes:
    """A one-page PDF whose content stream (a word, then spaces) inflates to ``size``
    bytes."""
    squeeze = zlib.compressobj(9)
    block = b" " * (1 << 20)
    packed = [squeeze.compress(b"BT /F1 9 Tf 40 800 Td (bomb) Tj ET")]
    packed += [squeeze.compress(block) for _ in range(size >> 20)]
    packed.append(squeeze.flush())
    writer = PdfWriter()
    catalog = writer.reserve()
    tree = writer.reserve()
    font = writer.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    data = b"".join(packed)
    stream = writer.add(
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (len(data), data)
    )
    page = writer.add(
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
        b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (tree, stream, font)
    )
    writer.set(tree, b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    writer.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return writer.bytes(catalog)


def pdf_of_forms(depth: int = 12, fan_out: int = 10) -> bytes:
    """A "billion laughs" PDF: its page draws form X0 ``fan_out`` times, X0 draws X1 as
    often, and so on ``depth`` levels down, so the text to walk is ``fan_out**depth``
    times a word."""
    writer = PdfWriter()
    catalog = writer.reserve()
    tree = writer.reserve()
    font = writer.add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    below = writer.stream(
        b"BT /F1 9 Tf 40 800 Td (laugh) Tj ET",
        compress=False,
        extra=b" /Type /XObject /Subtype /Form /BBox [0 0 595 842]"
        b" /Resources << /Font << /F1 %d 0 R >> >>" % font,
    )
    for _ in range(depth):
        draws = b"\n".join([b"/X Do"] * fan_out)
        below = writer.stream(
            draws,
            compress=False,
            extra=b" /Type /XObject /Subtype /Form /BBox [0 0 595 842]"
            b" /Resources << /XObject << /X %d 0 R >> >>" % below,
        )
    content = writer.stream(b"\n".join([b"/X Do"] * fan_out), compress=False)
    page = writer.add(
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R "
        b"/Resources << /XObject << /X %d 0 R >> >> >>" % (tree, content, below)
    )
    writer.set(tree, b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    writer.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return writer.bytes(catalog)


def pdf_slow(operations: int = 5_000_000) -> bytes:
    """A one-page PDF whose content stream shows a letter ``operations`` times: a few
    hundred kilobytes that take a parser minutes."""
    return pdf([], contents=[b"BT /F1 9 Tf 40 800 Td " + b"(a) Tj " * operations + b"ET"])


def pdf_nested(depth: int = 100_000) -> bytes:
    """A PDF whose page holds an array nested ``depth`` deep."""
    writer = PdfWriter()
    catalog = writer.reserve()
    tree = writer.reserve()
    stream = writer.stream(page_content("Nested arrays below."))
    nested = b"[" * depth + b"]" * depth
    page = writer.add(
        b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %d 0 R /Deep %s >>"
        % (tree, stream, nested)
    )
    writer.set(tree, b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % page)
    writer.set(catalog, b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return writer.bytes(catalog)


def docx(paragraphs: Sequence[str], *, table: Sequence[Sequence[str]] = ()) -> bytes:
    """A DOCX with a heading, ``paragraphs``, and ``table`` (rows of cells) if given."""
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading("Generated document", level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for row, cells in zip(grid.rows, table, strict=True):
            for cell, text in zip(row.cells, cells, strict=True):
                cell.text = text
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def docx_with_document_xml(base: bytes, document_xml: bytes | int) -> bytes:
    """``base`` (a DOCX) with its ``word/document.xml`` replaced: by ``document_xml``, or
    (an int) by that many bytes of spaces, deflated as they are written (a zip bomb)."""
    source = zipfile.ZipFile(io.BytesIO(base))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            if info.filename != "word/document.xml":
                target.writestr(info, source.read(info))
            elif isinstance(document_xml, bytes):
                target.writestr("word/document.xml", document_xml)
            else:
                entry = zipfile.ZipInfo("word/document.xml")
                entry.compress_type = zipfile.ZIP_DEFLATED
                with target.open(entry, "w", force_zip64=True) as sink:
                    block = b" " * (1 << 20)
                    for _ in range(document_xml >> 20):
                        sink.write(block)
    return out.getvalue()


def many_paragraphs_xml(count: int) -> bytes:
    """A ``word/document.xml`` of ``count`` one-word paragraphs."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = b"<w:p><w:r><w:t>w</w:t></w:r></w:p>" * count
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<w:document xmlns:w="%s"><w:body>%s</w:body></w:document>' % (ns.encode(), body)
    )


def zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()
