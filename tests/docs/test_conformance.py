"""docs/conformance.md is current: its static comparison is what ``bench/conformance.py``
writes now (Parley's OpenAPI document against the kept digest of OpenAI's), README.md
carries its headline numbers, and what its live results name (test modules, route
families, the runner's tests) still exists. The live numbers themselves are as of the date
and commit the page gives; ``make conformance`` measures them again."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.compliance.test_openresponses import runner_test_ids

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "conformance.md"
STALE = "docs/conformance.md is stale: make conformance (or bench/conformance.py --static-only)"


def bench(name: str) -> ModuleType:
    """A module of ``bench/`` (its scripts import each other by their bare names)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def results() -> tuple[str, list[Any]]:
    return bench("conformance_page").static_results()  # type: ignore[no-any-return]


def test_the_static_comparison_is_current(results: tuple[str, list[Any]]) -> None:
    page = bench("conformance_page")
    written = page.between(PAGE.read_text(), page.BEGIN, page.END)
    assert written, f"no static comparison between its markers in {PAGE}"
    assert written == page.section(*results), STALE


def test_the_readme_has_the_headline_numbers(results: tuple[str, list[Any]]) -> None:
    line = bench("conformance_page").readme_line(results[1])
    assert line in (ROOT / "README.md").read_text().splitlines(), f"README.md: {line}"


def test_the_kept_digest_is_openai_s_document() -> None:
    static = bench("conformance_static")
    if not static.OPENAI_SPEC.exists():
        pytest.skip(f"no {static.OPENAI_SPEC} on this machine to check the digest against")
    kept = json.loads(static.OPENAI_DIGEST.read_text())
    assert kept == static.openai_digest_from_spec(), STALE


def test_what_the_live_results_name_still_exists() -> None:
    live = bench("conformance_live")
    text = bench("conformance_page").between(PAGE.read_text(), live.BEGIN, live.END)
    assert re.search(r"Measured on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC at commit `[0-9a-f]+`", text)
    modules = set(re.findall(r"^\| `(tests/[\w/]+\.py)` \|", text, flags=re.MULTILINE))
    assert modules, "the live results name no test module"
    assert modules <= set(live.protocol_modules()), modules - set(live.protocol_modules())
    families = re.findall(r"^\| (/[\w/ +]+) \| \d+ \|", text, flags=re.MULTILINE)
    assert families and set(families) <= set(live.LIVE_FAMILIES), families
    runner_ids = re.findall(r"^\| `([a-z0-9-]+)` \|", text, flags=re.MULTILINE)
    assert runner_ids == runner_test_ids()


@pytest.mark.parametrize(
    ("module", "name", "family"),
    [
        ("tests/e2e/test_responses_api.py", "test_x", "/responses"),
        ("tests/e2e/test_chat_completions_api.py", "test_x", "/chat/completions"),
        ("tests/code_interpreter/test_assistants.py", "test_x", "/assistants + /threads"),
        ("tests/code_interpreter/test_engine.py", "test_x", "/containers"),
        ("tests/containers/test_api.py", "test_files_are_uploaded", "/containers"),
        ("tests/openai_sdk/test_sdk_3x.py", "test_scenario[chat_completion]", "/chat/completions"),
        ("tests/openai_sdk/test_sdk_3x.py", "test_scenario[stream_events]", "/responses"),
        ("tests/e2e/test_nginx.py", "test_x", None),
    ],
)
def test_a_test_s_route_family(module: str, name: str, family: str | None) -> None:
    assert bench("conformance_live").family_of_test(module, name) == family


SPEC: dict[str, Any] = {
    "paths": {
        "/widgets": {
            "post": {
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/c/Create"}}}
                },
                "responses": {
                    "200": {"content": {"application/json": {"schema": {"$ref": "#/c/W"}}}}
                },
            }
        },
        "/widgets/{widget_id}": {"delete": {"responses": {"200": {}}}},
    },
    "c": {
        "Create": {
            "allOf": [
                {"properties": {"size": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}},
                {"properties": {"mode": {"enum": ["a", "b"]}, "gone": {"type": "string"}}},
            ]
        },
        "W": {"oneOf": [{"properties": {"id": {"type": "string"}}}, {"$ref": "#/c/W2"}]},
        "W2": {"properties": {"kind": {"type": "string", "enum": ["x"]}}},
    },
}


def test_refs_and_branches_are_followed_and_fields_compared() -> None:
    static = bench("conformance_static")
    static.FAMILIES = (*static.FAMILIES, "/widgets")
    try:
        openai = static.digest(SPEC)
        ours = json.loads(json.dumps(SPEC))
        ours["c"]["Create"]["allOf"][0]["properties"]["size"] = {"type": "integer"}
        ours["c"]["Create"]["allOf"][1]["properties"] = {"mode": {"enum": ["a"]}}
        ours["c"]["W2"]["properties"]["kind"]["enum"] = ["x", "y"]
        del ours["paths"]["/widgets/{widget_id}"]
        results = static.compare(openai, static.digest(ours))
    finally:
        static.FAMILIES = static.FAMILIES[:-1]
    create, delete = results
    assert (create.key, create.present, delete.key, delete.present) == (
        "POST /widgets",
        True,
        "DELETE /widgets/{}",
        False,
    )
    request = {row.name: (row.status, row.detail) for row in create.request}
    assert request == {
        "size": ("different", "takes no string (OpenAI: number or string)"),
        "mode": ("different", "values not taken: b"),
        "gone": ("missing", ""),
    }
    response = {row.name: (row.status, row.detail) for row in create.response}
    assert response == {
        "id": ("present", ""),
        "kind": ("different", "values OpenAI does not list: y"),
    }
