"""Writes ``docs/conformance.md``: Parley against OpenAI's OpenAPI document, and the live
results of the Open Responses runner and of Parley's protocol tests (``make conformance``).

    .venv/bin/python bench/conformance.py [--workers 2] [--static-only] [--spec PATH]

With OpenAI's ``openapi.yaml`` at ``--spec``, its digest (``bench/conformance_openai.json``)
is written again first; README.md's line for the page gets the headline numbers.
``--static-only`` rewrites the static comparison and keeps the page's
live results as they were (their date and commit with them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import conformance_live as live
import conformance_page as page
from conformance_static import OPENAI_DIGEST, OPENAI_SPEC, ROOT, write_openai_digest

PAGE = ROOT / "docs" / "conformance.md"

INTRO = """\
# Conformance with OpenAI's API

<!-- Written by `make conformance` (`bench/conformance.py`); do not edit by hand.
tests/docs/test_conformance.py fails when the static comparison is stale. -->

Parley serves three of OpenAI's protocols: Responses (with Conversations), Chat Completions
and Assistants v2, and the resources they use (Files, Uploads, Vector Stores, Containers,
Embeddings, Models). This page measures how much of each it serves, two ways:

- **Static comparison**: Parley's OpenAPI document against OpenAI's, endpoint by endpoint
  and field by field, with the reason wherever Parley differs on purpose (the request
  fields' reasons are the rules of [compatibility.md](compatibility.md)). It is checked on
  every CI run: a test writes it again and compares.
- **Live results**: the Open Responses compliance runner and Parley's own protocol tests,
  as last measured (date and commit below).
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: none)")
    parser.add_argument("--static-only", action="store_true", help="keep the live results")
    parser.add_argument("--spec", type=Path, default=OPENAI_SPEC, help="OpenAI's openapi.yaml")
    parser.add_argument("--output", type=Path, default=PAGE)
    args = parser.parse_args(argv)

    if args.spec.exists():
        print(f"== OpenAI's digest from {args.spec}", flush=True)
        write_openai_digest(args.spec, OPENAI_DIGEST)
    else:
        print(f"== no {args.spec}: keeping {OPENAI_DIGEST.relative_to(ROOT)}", flush=True)
    print("== static comparison", flush=True)
    source, results = page.static_results()
    static = page.section(source, results)

    if args.static_only:
        old = args.output.read_text() if args.output.exists() else ""
        live_part = page.between(old, live.BEGIN, live.END) or f"{live.BEGIN}\n{live.END}"
    else:
        started = time.monotonic()
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        compliance = live.run_compliance()
        with tempfile.TemporaryDirectory() as tmp:
            outcomes = live.run_protocol_tests(args.workers, Path(tmp) / "junit.xml")
        live_part = live.section(compliance, outcomes, date=date, workers=args.workers)
        print(f"== live results in {time.monotonic() - started:.0f} s", flush=True)

    args.output.write_text(f"{INTRO}\n{static}\n\n{live_part}\n")
    print(f"== wrote {args.output}", flush=True)
    update_readme(page.readme_line(results))
    return 0


def update_readme(line: str) -> None:
    """Puts the headline numbers on README.md's line for this page (that line only)."""
    readme = ROOT / "README.md"
    lines = readme.read_text().split("\n")
    mine = [i for i, old in enumerate(lines) if old.startswith(line.split(":")[0] + ":")]
    if not mine:
        print(f"== README.md has no line for docs/conformance.md; it should read:\n{line}")
        return
    if lines[mine[0]] != line:
        lines[mine[0]] = line
        readme.write_text("\n".join(lines))
        print(f"== README.md: {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
