"""The live half of ``docs/conformance.md``: the Open Responses compliance runner against a
real ``parley serve``, and Parley's own protocol tests, grouped by route family.

A test is given one route family by the first of ``WORDS`` found in, in this order, its
module's file name, its module's folder, its name (with its parameters: the SDK scenarios'
``test_scenario[chat_completion]``), and else its folder's default (``DEFAULTS``). The
protocol tests run are the folders of ``SUITES`` and the modules of ``tests/e2e`` whose
file name has one of ``WORDS``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

BEGIN = "<!-- live results: begin -->"
END = "<!-- live results: end -->"

#: Assistants and threads are one protocol's two families: their tests count together.
ASSISTANTS = "/assistants + /threads"

#: (word, route family), the first found wins: the more specific words first.
WORDS: tuple[tuple[str, str], ...] = (
    ("chat", "/chat/completions"),
    ("conversation", "/conversations"),
    ("embedding", "/embeddings"),
    ("models", "/models"),
    ("upload", "/uploads"),
    ("vector_store", "/vector_stores"),
    ("file_search", "/vector_stores"),
    ("code_interpreter", "/containers"),
    ("container", "/containers"),
    ("assistant", ASSISTANTS),
    ("thread", ASSISTANTS),
    ("response", "/responses"),
    ("compact", "/responses"),
    ("files", "/files"),
)

#: The folders (and modules) run whole, beside the matching modules of tests/e2e.
SUITES = (
    "tests/openai_sdk",
    "tests/server/responses",
    "tests/file_search",
    "tests/vector_stores",
    "tests/containers",
    "tests/code_interpreter",
    "tests/files",
    "tests/server/test_models.py",
)

#: A folder's family for its tests that name none (the SDK scenarios of the Responses API).
DEFAULTS = {"tests/openai_sdk": "/responses"}

LIVE_FAMILIES = (
    "/responses",
    "/conversations",
    "/chat/completions",
    ASSISTANTS,
    "/files",
    "/uploads",
    "/vector_stores",
    "/containers",
    "/embeddings",
    "/models",
)


def word_family(text: str) -> str | None:
    for word, family in WORDS:
        if word in text:
            return family
    return None


def family_of_test(module: str, name: str) -> str | None:
    """The route family of test ``name`` of ``module`` (``tests/e2e/test_x.py``)."""
    path = Path(module)
    folder = path.parent.as_posix()
    return (
        word_family(path.stem.removeprefix("test_"))
        or word_family(folder.removeprefix("tests/"))
        or word_family(name)
        or DEFAULTS.get(folder)
    )


def protocol_modules() -> list[str]:
    """The test modules run, as paths from the repository's root, sorted."""
    modules: set[Path] = set()
    for suite in SUITES:
        path = ROOT / suite
        modules |= set(path.rglob("test_*.py")) if path.is_dir() else {path}
    for module in (ROOT / "tests" / "e2e").glob("test_*.py"):
        if word_family(module.stem.removeprefix("test_")):
            modules.add(module)
    return sorted(m.relative_to(ROOT).as_posix() for m in modules)


@dataclass(frozen=True)
class Outcome:
    module: str
    name: str
    status: str  # passed, failed, skipped
    family: str | None


def _module_of(classname: str) -> str:
    """``tests.e2e.test_x`` (or ``tests.e2e.test_x.TestClass``) -> ``tests/e2e/test_x.py``."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        candidate = "/".join(parts[:end]) + ".py"
        if (ROOT / candidate).exists():
            return candidate
    return "/".join(parts) + ".py"


def read_junit(path: Path) -> list[Outcome]:
    outcomes = []
    for case in ET.parse(path).iter("testcase"):
        module = _module_of(case.get("classname", ""))
        name = case.get("name", "")
        tags = {child.tag for child in case}
        status = (
            "failed"
            if tags & {"failure", "error"}
            else "skipped"
            if "skipped" in tags
            else "passed"
        )
        outcomes.append(Outcome(module, name, status, family_of_test(module, name)))
    return outcomes


def run_protocol_tests(workers: int, junit: Path) -> list[Outcome]:
    """pytest over ``protocol_modules()``, its output shown as it goes, read back from its
    JUnit XML."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    if workers:
        command += ["-n", str(workers), "--dist", "loadfile"]
    command += [f"--junitxml={junit}", *protocol_modules()]
    print(f"== pytest over {len(protocol_modules())} protocol test modules", flush=True)
    subprocess.run(command, cwd=ROOT, check=False)
    return read_junit(junit)


def run_compliance() -> dict[str, dict[str, Any]] | str:
    """The Open Responses runner against a fresh ``parley serve`` with the fake upstream:
    model -> its ``--json`` document, or why it could not run."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import pytest

    from parley.testing.fake_upstream import FakeUpstream
    from tests.compliance.test_openresponses import (
        BUN,
        NEEDS_A_TOOL_CALL,
        run_runner,
        runner_test_ids,
    )
    from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

    if not BUN.exists():
        return f"not run: no {BUN.relative_to(ROOT)} (`npm ci --prefix tests/compliance`)"
    documents: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as upstream:
        db = FreshDatabase(Path(tmp))
        server = ParleyServer(
            database_url=db.url,
            workdir=Path(tmp),
            config=provider_config(upstream.base_url, free_port()),
        ).start()
        try:
            key = server.new_user()
            ids = runner_test_ids()
            for model, only in (
                ("fake/auto", None),
                ("demo/parley", [i for i in ids if i not in NEEDS_A_TOOL_CALL]),
            ):
                print(f"== Open Responses runner, -m {model}", flush=True)
                try:
                    documents[model] = run_runner(BUN, f"{server.base_url}/v1", key, model, only)
                except pytest.fail.Exception as exc:
                    return f"the runner did not report: {str(exc)[:300]}"
        finally:
            server.stop()
            db.drop()
    return documents


def commit() -> tuple[str, bool]:
    """The commit measured, and whether the tree had uncommitted changes in parley/ or tests/."""
    head = subprocess.run(
        ["git", "rev-parse", "--short=10", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "parley", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return head or "unknown", bool(dirty)


def _compliance_lines(compliance: dict[str, dict[str, Any]] | str) -> list[str]:
    out = ["### Open Responses compliance runner", ""]
    if isinstance(compliance, str):
        return [*out, f"The runner was {compliance}.", ""]
    from tests.compliance.test_openresponses import runner_test_ids

    results = {
        model: {r.get("id"): r for r in document.get("results", [])}
        for model, document in compliance.items()
    }
    models = list(results)
    out.append(
        "The runner (`tests/compliance/openresponses`) against a fresh `parley serve` with "
        "the fake upstream, as `tests/compliance/test_openresponses.py` runs it: "
        + "; ".join(
            f"`-m {m}`: {sum(r.get('status') == 'passed' for r in results[m].values())} "
            f"of {len(results[m])} passed"
            for m in models
        )
        + " (`demo/parley` is not given `tool-calling`: it calls a tool only when asked "
        "by name)."
    )
    out += ["", f"| test | {' | '.join(f'`{m}`' for m in models)} |", "|---|---|---|"]
    for test_id in runner_test_ids():
        cells = []
        for model in models:
            result = results[model].get(test_id)
            cells.append("not run" if result is None else str(result.get("status")))
        out.append(f"| `{test_id}` | {' | '.join(cells)} |")
    return [*out, ""]


def _counts(outcomes: Iterable[Outcome]) -> Counter[str]:
    return Counter(o.status for o in outcomes)


def _tests_lines(outcomes: list[Outcome], workers: int) -> list[str]:
    out = [
        "### Parley's protocol tests",
        "",
        f"pytest over the folders {', '.join(f'`{s}`' for s in SUITES)} and the modules of "
        "`tests/e2e` whose file name names a route family, "
        f"`-n {workers} --dist loadfile`, read from its JUnit XML. A test's route family is "
        "the first of these words found in its module's file name, then its folder, then "
        "its own name (`test_scenario[chat_completion]`), else its folder's default "
        f"({', '.join(f'`{k}`: `{v}`' for k, v in DEFAULTS.items())}): "
        + ", ".join(f"`{w}` {f}" for w, f in WORDS)
        + ". A family with no test of its own is tested under another (uploads under "
        "`/files`, whose folder has their tests). A skip says why in pytest's output (a "
        "missing tool outside CI, where the test would fail instead).",
        "",
        "| route family | passed | failed | skipped |",
        "|---|---|---|---|",
    ]
    for family in [*LIVE_FAMILIES, None]:
        counts = _counts(o for o in outcomes if o.family == family)
        if counts or family:
            label = family or "(no family)"
            out.append(
                f"| {label} | {counts['passed']} | {counts['failed']} | {counts['skipped']} |"
            )
    total = _counts(outcomes)
    out.append(f"| **all** | {total['passed']} | {total['failed']} | {total['skipped']} |")
    out += ["", "| module | route families | passed | failed | skipped |", "|---|---|---|---|---|"]
    for module in sorted({o.module for o in outcomes}):
        mine = [o for o in outcomes if o.module == module]
        families = sorted({o.family or "(no family)" for o in mine})
        counts = _counts(mine)
        out.append(
            f"| `{module}` | {', '.join(families)} | {counts['passed']} | "
            f"{counts['failed']} | {counts['skipped']} |"
        )
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        out += ["", "Failed:", ""]
        out += [f"- `{o.module}::{o.name}`" for o in failed]
    return [*out, ""]


def section(
    compliance: dict[str, dict[str, Any]] | str,
    outcomes: list[Outcome],
    *,
    date: str,
    workers: int,
) -> str:
    head, dirty = commit()
    tree = " (the working tree had uncommitted changes in `parley/` or `tests/`)" if dirty else ""
    out = [
        BEGIN,
        "## Live results",
        "",
        f"Measured on {date} at commit `{head}`{tree}. These numbers are as fresh as that "
        "run: `make conformance` measures them again. The test of this page "
        "(`tests/docs/test_conformance.py`) does not run them; it checks that the modules, "
        "route families and runner tests named here still exist.",
        "",
        *_compliance_lines(compliance),
        *_tests_lines(outcomes, workers),
        END,
    ]
    return "\n".join(out)
