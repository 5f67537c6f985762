"""Ingestion speed with the offline default: pages of text per second, extraction and
chunking, on one core.

    .venv/bin/python bench/ingest.py [--pages 200] [--documents 5] [--rounds 3] [--strict]

Generates ``--documents`` documents of ``--pages`` pages for each kind (plain text,
Markdown, HTML, PDF, DOCX; a page is about 3,000 characters of English-like prose; the PDFs
by the tests' own writer, ``tests/retrieval/documents.py``, the DOCX files by python-docx),
then, pinned with its worker process to one CPU, reads each through
``parley.retrieval.Extractor`` (one warm worker, the server's path: text in this process,
HTML, PDF and DOCX in the worker) and cuts its text with ``chunk`` (800 tokens, 400 of
overlap). Pages per second = pages of text (characters / 3,000) over the wall time of
extraction plus chunking, the best of ``--rounds`` rounds; the extraction alone in this
process (``extract``, no worker) is shown beside it, so the cost of the worker shows.

Prints a table, writes JSON to ``bench/results/ingest.json``. The target is 200 pages a
second for every kind; ``--strict`` exits 1 when a kind misses it.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path += [str(ROOT)]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from html import escape  # noqa: E402
from typing import Any  # noqa: E402

from report import markdown_table, text_table, write_json  # noqa: E402

from parley.retrieval import Extractor, Limits, chunk, extract  # noqa: E402
from tests.retrieval import documents  # noqa: E402

PAGE_CHARS = 3000
TARGET = 200.0
HEADER = (
    "kind",
    "pages",
    "MB",
    "extract ms/page",
    "chunk ms/page",
    "pages/s",
    "in-process pages/s",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pages", type=int, default=200, help="pages per document")
    p.add_argument("--documents", type=int, default=5, help="documents per kind")
    p.add_argument("--rounds", type=int, default=3, help="rounds; the best one counts")
    p.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    p.add_argument("--strict", action="store_true", help="exit 1 when a kind misses the target")
    p.add_argument("--output", type=Path, default=BENCH / "results" / "ingest.json")
    return p.parse_args(argv)


# --------------------------------------------------------------------- the documents


def _text(pages: list[str]) -> tuple[bytes, str]:
    return "\n\n".join(pages).encode(), "document.txt"


def _markdown(pages: list[str]) -> tuple[bytes, str]:
    parts = []
    for number, page in enumerate(pages, 1):
        paragraphs = page.split("\n\n")
        parts.append(f"## Section {number}\n\n" + "\n\n".join(paragraphs[:-1]))
        parts.append("- " + paragraphs[-1][:200] + "\n- *a point* and **another**")
    return "\n\n".join(parts).encode(), "document.md"


def _html(pages: list[str]) -> tuple[bytes, str]:
    body = []
    for number, page in enumerate(pages, 1):
        body.append(f'<section id="s{number}"><h2>Section {number}</h2>')
        body += [f"<p>{escape(p)} <a href='#s{number}'>link</a></p>" for p in page.split("\n\n")]
        body.append(f"<script>track({number})</script></section>")
    page = (
        "<!DOCTYPE html><html><head><title>Document</title><style>p { margin: 0 }</style>"
        f"</head><body><main>{''.join(body)}</main></body></html>"
    )
    return page.encode(), "document.html"


def _pdf(pages: list[str]) -> tuple[bytes, str]:
    return documents.pdf(pages), "document.pdf"


def _docx(pages: list[str]) -> tuple[bytes, str]:
    return documents.docx([p for page in pages for p in page.split("\n\n")]), "document.docx"


KINDS: dict[str, Callable[[list[str]], tuple[bytes, str]]] = {
    "text": _text,
    "markdown": _markdown,
    "html": _html,
    "pdf": _pdf,
    "docx": _docx,
}


# --------------------------------------------------------------------- the measure


async def measure(
    extractor: Extractor, files: list[tuple[bytes, str]], rounds: int
) -> dict[str, Any]:
    """The best round's times for ``files``: extraction, chunking, and in-process extraction."""
    best: dict[str, Any] | None = None
    for _ in range(rounds):
        extract_s = chunk_s = 0.0
        chars = chunks = 0
        for data, name in files:
            started = time.perf_counter()
            extracted = await extractor.extract(data, name)
            middle = time.perf_counter()
            chunks += len(chunk(extracted.text))
            extract_s += middle - started
            chunk_s += time.perf_counter() - middle
            chars += len(extracted.text)
        started = time.perf_counter()
        for data, name in files:
            extract(data, name)
        local_s = time.perf_counter() - started
        total = extract_s + chunk_s
        if best is None or total < best["extract_s"] + best["chunk_s"]:
            best = {
                "extract_s": extract_s,
                "chunk_s": chunk_s,
                "in_process_s": local_s,
                "chars": chars,
                "chunks": chunks,
                "bytes": sum(len(d) for d, _ in files),
            }
    assert best is not None
    pages = best["chars"] / PAGE_CHARS
    best["pages"] = pages
    best["pages_per_s"] = pages / (best["extract_s"] + best["chunk_s"])
    best["in_process_pages_per_s"] = pages / best["in_process_s"]
    return best


def row(kind: str, m: dict[str, Any]) -> tuple[str, ...]:
    pages = m["pages"]
    return (
        kind,
        f"{pages:,.0f}",
        f"{m['bytes'] / 1e6:.1f}",
        f"{m['extract_s'] * 1000 / pages:.2f}",
        f"{m['chunk_s'] * 1000 / pages:.2f}",
        f"{m['pages_per_s']:,.0f}",
        f"{m['in_process_pages_per_s']:,.0f}",
    )


async def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with Extractor(Limits(max_pages=max(2000, args.pages)), workers=1) as extractor:
        await extractor.start()
        await extractor.extract(documents.pdf(["warm up"]), "warm.pdf")
        for kind, make in KINDS.items():
            files = []
            for number in range(args.documents):
                seed = number * args.pages
                pages = [documents.prose(PAGE_CHARS, seed + n) for n in range(args.pages)]
                files.append(make(pages))
            results[kind] = await measure(extractor, files, args.rounds)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = None if args.no_pin else cpus[-1]
    if pinned is not None:
        os.sched_setaffinity(0, {pinned})  # the worker, started later, inherits it
    load = os.getloadavg()[0]
    results = asyncio.run(run(args))
    table = [row(kind, m) for kind, m in results.items()]
    command = "bench/ingest.py " + " ".join(sys.argv[1:] if argv is None else argv)
    where = f"pinned to CPU {pinned}" if pinned is not None else "not pinned"
    notes = (
        f"One core ({where}, this process and its one extraction worker); load average "
        f"before: {load:.2f}; {args.documents} documents of {args.pages} pages per kind, a "
        f"page = {PAGE_CHARS:,} characters of text; chunks of 800 tokens, 400 of overlap; "
        f"best of {args.rounds} rounds. Target: {TARGET:.0f} pages/s."
    )
    print(text_table(table, HEADER))
    print(
        f"\n{notes}\n\nMarkdown:\n\nCommand: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M %Z')})\n"
    )
    print(markdown_table(table, HEADER))
    missed = [kind for kind, m in results.items() if m["pages_per_s"] < TARGET]
    write_json(
        args.output,
        {"command": command, "notes": notes, "target_pages_per_s": TARGET, "results": results},
    )
    if missed:
        print(f"\nbelow {TARGET:.0f} pages/s: {', '.join(missed)}", file=sys.stderr)
        if args.strict:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
