"""Text out of files: every kind read right, the type told from the bytes, and hostile files
(bombs, huge files, lies, broken bytes) ending in a clear error, quickly, with the caller
alive and its event loop free."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest

from parley.retrieval import (
    Extracted,
    ExtractionFailed,
    Extractor,
    Limits,
    UnsupportedFile,
    chunk,
    extract,
)
from tests.retrieval import documents

#: The most any one file may take here, hostile or not.
BOUND = 30.0


@pytest.fixture(scope="module")
def extractor() -> Iterator[Extractor]:
    extractor = Extractor(Limits(max_seconds=10), workers=2)
    yield extractor
    asyncio.run(extractor.close())


@pytest.fixture(scope="module")
def tight() -> Iterator[Extractor]:
    """Small bounds, for the files that must hit them."""
    extractor = Extractor(Limits(max_seconds=2, max_memory_mb=256), workers=1)
    yield extractor
    asyncio.run(extractor.close())


@pytest.fixture(scope="module")
def timed_only() -> Iterator[Extractor]:
    """A short time bound and room to spare in memory: a slow parse ends by its time, however
    fast the machine gets through it (the slow PDF's parse grows as it goes, and passed
    256 MiB within its 2 s on a quiet machine)."""
    extractor = Extractor(Limits(max_seconds=2, max_memory_mb=2048), workers=1)
    yield extractor
    asyncio.run(extractor.close())


async def timed(
    extractor: Extractor, data: bytes, name: str, content_type: str | None = None
) -> Extracted:
    """The extraction, which must end within ``BOUND`` (whatever it ends with)."""
    started = time.monotonic()
    try:
        return await asyncio.wait_for(extractor.extract(data, name, content_type), BOUND)
    finally:
        assert time.monotonic() - started < BOUND


async def still_works(extractor: Extractor) -> None:
    """The extractor (and so its caller) goes on: a PDF reads after whatever came before."""
    pdf = documents.pdf(["Still here after that."])
    assert (await timed(extractor, pdf, "after.pdf")).text == "Still here after that."


async def failure(extractor: Extractor, data: bytes, name: str) -> ExtractionFailed:
    with pytest.raises(ExtractionFailed) as raised:
        await timed(extractor, data, name)
    assert raised.value.code == "invalid_file"
    return raised.value


# ------------------------------------------------------------------------- kinds


async def test_plain_text_markdown_json_csv_and_code(extractor: Extractor) -> None:
    cases = [
        (b"Just some notes.\r\nA second line.", "notes.txt", None, "text"),
        (b"# Title\n\nSome *Markdown*.", "README.md", None, "markdown"),
        (b'{"answer": 42, "name": "deep thought"}', "data.json", None, "json"),
        (b"city,population\nParis,2100000\n", "cities.csv", None, "csv"),
        (b"def main() -> int:\n    return 0\n", "tool.py", None, "code"),
        (b"fn main() {}\n", "main.rs", None, "code"),
        (b"FROM python:3.12\n", "Dockerfile", None, "code"),
        (b"key: value\n", "config.yaml", None, "code"),
        (b"No name says what I am.", "upload", "text/markdown", "markdown"),
    ]
    for data, name, content_type, kind in cases:
        extracted = await timed(extractor, data, name, content_type)
        assert extracted.kind == kind, name
        assert extracted.text == data.decode().replace("\r\n", "\n"), name
        assert extracted.encoding == "utf-8"
        assert extracted.pages is None


async def test_html_keeps_the_text_and_drops_tags_scripts_and_styles(
    extractor: Extractor,
) -> None:
    page = b"""<!DOCTYPE html><html><head><title>The title</title>
        <style>body { color: red }</style><script>alert("no")</script></head>
        <body><h1>Heading</h1><p>First <b>bold</b> &amp; plain.</p>
        <table><tr><td>cell one</td><td>cell two</td></tr></table>
        <noscript>hidden</noscript><p>Last.</p></body></html>"""
    extracted = await timed(extractor, page, "page.html")
    assert extracted.kind == "html"
    assert extracted.text == "The title\nHeading\nFirst bold & plain.\ncell one cell two\nLast."


async def test_pdf_pages_and_their_offsets(extractor: Extractor) -> None:
    texts = ["Page one says hello.", "Page two (with parentheses).", "Page three."]
    extracted = await timed(extractor, documents.pdf(texts), "three.pdf", "application/pdf")
    assert extracted.kind == "pdf"
    assert extracted.pages == 3
    assert extracted.text == "\n\n".join(texts)
    assert [extracted.text[s : s + 8] for s in extracted.page_starts] == [t[:8] for t in texts]
    assert extracted.page_of(extracted.text.index("three")) == 3
    assert extracted.page_of(0) == 1


async def test_docx_paragraphs_and_tables_in_order(extractor: Extractor) -> None:
    data = documents.docx(
        ["First paragraph.", "Second paragraph."], table=[["name", "value"], ["pi", "3.14"]]
    )
    extracted = await timed(extractor, data, "report.docx")
    assert extracted.kind == "docx"
    assert extracted.text == (
        "Generated document\nFirst paragraph.\nSecond paragraph.\nname\tvalue\npi\t3.14"
    )


async def test_extract_in_process_gives_the_same_text(extractor: Extractor) -> None:
    data = documents.pdf([documents.prose(3000, seed) for seed in range(3)])
    assert extract(data, "x.pdf") == await timed(extractor, data, "x.pdf")


# ----------------------------------------------------------------- what a file is


async def test_a_file_is_read_as_what_its_bytes_are(extractor: Extractor) -> None:
    pdf = documents.pdf(["I am a PDF."])
    docx = documents.docx(["I am a DOCX."])
    assert (await timed(extractor, pdf, "letter.docx", "application/msword")).kind == "pdf"
    assert (await timed(extractor, docx, "scan.pdf", "application/pdf")).kind == "docx"
    assert (await timed(extractor, b"plain words", "photo.png", "image/png")).kind == "text"
    html = b"<html><body><p>hi</p></body></html>"
    assert (await timed(extractor, html, "page.txt")).text == "hi"


async def test_text_that_mentions_a_pdf_header_is_text(extractor: Extractor) -> None:
    note = b"A PDF file starts with %PDF-1.7 and ends with %%EOF somewhere.\n" * 3
    assert (await timed(extractor, note, "note.txt")).kind == "text"
    junk_first = b"junk before the header\n" + documents.pdf(["Late header."])
    assert (await timed(extractor, junk_first, "late.pdf")).text == "Late header."


async def test_a_name_with_dot_dots_is_only_a_name(extractor: Extractor) -> None:
    extracted = await timed(extractor, b"root:x:0:0", "../../../etc/passwd")
    assert (extracted.kind, extracted.text) == ("text", "root:x:0:0")
    assert (await timed(extractor, b"# x", "..\\..\\notes.md")).kind == "markdown"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "an executable (ELF)"),
        (b"some text\x00\x01\x02 and binary", "binary data of an unknown kind"),
        (b"MZ\x90\x00\x03\x00", "an executable (Windows)"),
        (documents.zip_of({"xl/workbook.xml": b"<x/>"}), "an Excel workbook (xlsx)"),
        (documents.zip_of({"a.txt": b"hello"}), "a zip archive"),
    ],
)
async def test_binary_named_as_text_is_refused(
    extractor: Extractor, data: bytes, says: str
) -> None:
    with pytest.raises(UnsupportedFile) as raised:
        await timed(extractor, data, "notes.txt", "text/plain")
    assert raised.value.code == "unsupported_file"
    assert says in raised.value.message


async def test_an_empty_file_and_one_of_only_spaces(extractor: Extractor) -> None:
    assert (await failure(extractor, b"", "empty.txt")).reason == "empty"
    assert (await failure(extractor, b" \n\t\n", "blank.md")).reason == "empty"


# ----------------------------------------------------------------------- encodings


async def test_a_few_invalid_utf8_bytes_are_replaced(extractor: Extractor) -> None:
    data = ("Valid text, " * 100).encode() + b"\xff\xfe bad " + "café".encode()
    extracted = await timed(extractor, data, "mostly.txt")
    assert extracted.text.endswith("\ufffd\ufffd bad café")
    assert extracted.encoding == "utf-8"


async def test_legacy_8bit_text_is_read_as_windows_1252(extractor: Extractor) -> None:
    data = "Crème brûlée, déjà vu, naïve façade — 20 €.\n".encode("cp1252") * 20
    extracted = await timed(extractor, data, "menu.csv")
    assert extracted.encoding == "cp1252"
    assert extracted.text.startswith("Crème brûlée, déjà vu, naïve façade — 20 €.")


async def test_mostly_invalid_bytes_with_control_bytes_are_not_text(
    extractor: Extractor,
) -> None:
    garbage = bytes((7 * i + 1) % 255 + 1 for i in range(5000))  # no NUL, much invalid
    failed = await failure(extractor, garbage, "data.txt")
    assert failed.reason == "not_text"
    assert "not valid UTF-8" in failed.message


async def test_utf16_with_a_byte_order_mark(extractor: Extractor) -> None:
    data = "\ufeffUnicode text, ünïcödé.\r\n".encode("utf-16-le")
    extracted = await timed(extractor, data, "wide.txt")
    assert (extracted.text, extracted.encoding) == ("Unicode text, ünïcödé.\n", "utf-16-le")


# ------------------------------------------------------------------- hostile files


async def test_a_pdf_bomb(extractor: Extractor) -> None:
    bomb = documents.pdf_inflating_to(300 << 20)
    assert len(bomb) < 1 << 20
    failed = await failure(extractor, bomb, "bomb.pdf")
    assert failed.reason == "too_large"
    assert "inflates" in failed.message
    await still_works(extractor)


async def test_a_zip_bomb_docx(extractor: Extractor) -> None:
    bomb = documents.docx_with_document_xml(documents.docx(["x"]), 300 << 20)
    assert len(bomb) < 1 << 20
    failed = await failure(extractor, bomb, "bomb.docx")
    assert failed.reason == "too_large"
    assert re.search(r"inflates to 30\d MiB, more than the limit of 128 MiB", failed.message)
    await still_works(extractor)


async def test_a_docx_past_the_memory_limit_ends_its_worker(tight: Extractor) -> None:
    heavy = documents.docx_with_document_xml(
        documents.docx(["x"]), documents.many_paragraphs_xml(800_000)
    )
    await still_works(tight)
    started = tight.workers_started
    failed = await failure(tight, heavy, "heavy.docx")
    assert failed.reason == "memory"
    assert "256 MiB" in failed.message
    await still_works(tight)
    assert tight.workers_started == started + 1  # the worker that ran out was replaced


async def test_a_pdf_that_parses_forever_is_stopped_and_the_loop_stays_free(
    timed_only: Extractor,
) -> None:
    tight = timed_only
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.05)
            ticks += 1

    await still_works(tight)
    workers = tight.workers_started
    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        failed = await failure(tight, documents.pdf_slow(), "slow.pdf")
    finally:
        ticking.cancel()
    took = time.monotonic() - started
    assert failed.reason == "timeout"
    assert "2 s" in failed.message
    assert 2 <= took < 10
    assert ticks >= took / 0.05 / 4  # the event loop went on while the worker parsed
    await still_works(tight)
    assert tight.workers_started == workers + 1  # the late worker was killed and replaced


async def test_ten_thousand_pages(extractor: Extractor) -> None:
    pages = documents.pdf([f"page {n}" for n in range(10_000)])
    failed = await failure(extractor, pages, "long.pdf")
    assert failed.reason == "too_many_pages"
    assert "10,000 pages" in failed.message
    await still_works(extractor)


async def test_deeply_nested_and_truncated_pdfs_are_corrupt(extractor: Extractor) -> None:
    assert (await failure(extractor, documents.pdf_nested(), "deep.pdf")).reason == "corrupt"
    whole = documents.pdf([documents.prose(3000, seed) for seed in range(10)])
    cut = whole[: len(whole) // 2]
    assert (await failure(extractor, cut, "cut.pdf")).reason == "corrupt"
    assert (await failure(extractor, b"%PDF-1.7\n", "stub.pdf")).reason == "corrupt"
    await still_works(extractor)


async def test_a_broken_docx_is_corrupt(extractor: Extractor) -> None:
    whole = documents.docx(["x"])
    assert (await failure(extractor, whole[:200], "cut.docx")).reason == "corrupt"
    await still_works(extractor)


async def test_a_huge_single_line(extractor: Extractor) -> None:
    line = b"x" * (8 << 20)
    extracted = await timed(extractor, line, "line.txt")
    assert len(extracted.text) == 8 << 20
    chunks = chunk(extracted.text)
    assert len(chunks) == 2621  # 1,048,576 tokens of 8 letters, 800 a chunk, 400 apart
    assert chunks[-1].end == 8 << 20
    small = Extractor(Limits(max_text_chars=1_000_000))
    failed = await failure(small, line, "line.txt")
    assert failed.reason == "too_large"
    assert "1,000,000 characters" in failed.message


async def test_a_file_over_the_size_limit_is_not_parsed() -> None:
    small = Extractor(Limits(max_bytes=1000))
    failed = await failure(small, documents.pdf([documents.prose(3000)]), "big.pdf")
    assert failed.reason == "too_large"
    assert small.workers_started == 0
    await small.close()


async def test_files_at_once_share_the_warm_workers() -> None:
    async with Extractor(workers=2) as extractor:
        await extractor.start()
        files = [documents.pdf([f"file {n}"]) for n in range(6)]
        texts = await asyncio.gather(*(timed(extractor, f, "f.pdf") for f in files))
        assert [t.text for t in texts] == [f"file {n}" for n in range(6)]
        assert extractor.workers_started == 2


async def test_a_closed_extractor_refuses_heavy_files() -> None:
    extractor = Extractor(workers=1)
    await still_works(extractor)
    await extractor.close()
    with pytest.raises(RuntimeError, match="closed"):
        await extractor.extract(documents.pdf(["x"]), "x.pdf")
