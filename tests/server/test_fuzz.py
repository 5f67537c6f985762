"""Schemathesis over the whole OpenAPI document, against a real ``parley serve`` on loopback:
no 5xx, no status code, content type, header or body the document does not list.

A short pass with a fixed seed runs with the suite; ``make fuzz`` runs a longer one
(``PARLEY_FUZZ_EXAMPLES`` examples per operation, seed ``PARLEY_FUZZ_SEED``). Any failure
prints Schemathesis' report with a ``curl`` line that reproduces it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import FreshDatabase, ParleyServer

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
#: 60 with the suite: 100 took over ten minutes on a slow two-core machine under the rest
#: of the suite (``make fuzz`` runs 1000).
EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "60"))
SEED = int(os.environ.get("PARLEY_FUZZ_SEED", "20261122"))


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server of its own: what the fuzzer creates stays out of the other tests' way."""
    workdir = tmp_path_factory.mktemp("fuzz")
    db = FreshDatabase(workdir)
    server = ParleyServer(database_url=db.url, workdir=workdir).start()
    try:
        yield server
    finally:
        code = server.stop()
        db.drop()
    server.assert_clean_log()
    assert code in (0, -15), server.log()


def test_the_api_answers_as_its_document_says(fuzzed_server: ParleyServer, tmp_path: Path) -> None:
    key = fuzzed_server.new_user("fuzz")
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{fuzzed_server.base_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--continue-on-failure",
        "--no-color",
        "--output-truncate",
        "false",
    ]
    run = subprocess.run(
        command,
        cwd=tmp_path,  # its reports and caches stay out of the tree
        capture_output=True,
        text=True,
        timeout=max(900, EXAMPLES * 3),
        check=False,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert " passed" in run.stdout, run.stdout
