"""``pip install parley-ai[server]`` brings all that ``parley serve`` imports.

A fresh venv gets the wheel with the server extra alone: the distributions the extra names
(and what they need) are copied from the dev venv, and pip installs the wheel offline
(``venvs.install``). ``parley serve`` then starts there, on SQLite, until ``/healthz``
answers; so do the imports a server makes only on demand (the MCP client of the hosted MCP
tool, the guarded HTTP sessions of webhooks and web search, the providers' transport).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

from parley.cli.extras import DISTRIBUTION
from tests.harness import free_port
from tests.packaging.venvs import ROOT, clean_env, install, run

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
        reason="the server extra's install does not depend on the database: the SQLite pass "
        "checks it",
    ),
]

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: What the server imports only when a request needs it.
ON_DEMAND = (
    "parley.mcp.client",
    "mcp.client.streamable_http",
    "parley.guarded_http",
    "parley.providers.transport",
    "parley.webhooks.delivery",
    "parley.retrieval.websearch",
)


def extra_requirements(extra: str) -> list[Requirement]:
    """The requirements of ``extra`` (pyproject.toml), with those of the extras it names of
    Parley itself (``parley-ai[documents]``)."""
    found = []
    for line in PROJECT["optional-dependencies"][extra]:
        requirement = Requirement(line)
        if requirement.name == DISTRIBUTION:
            for named in sorted(requirement.extras):
                found += extra_requirements(named)
        else:
            found.append(requirement)
    return found


@pytest.fixture(scope="module")
def server_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with ``parley-ai[server]`` alone."""
    requirements = [Requirement(line) for line in PROJECT["dependencies"]]
    requirements += extra_requirements("server")
    folder = tmp_path_factory.mktemp("server-extra") / "venv"
    return install(folder, wheel, requirements, extras="server")


def test_the_server_extra_has_what_the_server_imports_on_demand(server_install: Path) -> None:
    code = f"import importlib\nfor name in {ON_DEMAND!r}:\n    importlib.import_module(name)\n"
    out = run(server_install / "python", "-c", code)
    assert out.returncode == 0, out.stderr


def test_parley_serve_answers_healthz(server_install: Path, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "parley.toml").write_text("")
    env = clean_env(
        {
            "HOME": str(tmp_path / "home"),
            "PARLEY_DATABASE_URL": f"sqlite:///{tmp_path / 'parley.db'}",
            "PARLEY_CONFIG": str(tmp_path / "parley.toml"),
            "PARLEY_CODE_INTERPRETER_DIR": str(tmp_path / "containers"),
            "PARLEY_EMBEDDING_MODEL": "",
        }
    )
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [server_install / "parley", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert _healthy(f"http://127.0.0.1:{port}/healthz", server, within=120), log.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # A clean stop: uvicorn ends by the signal it was stopped with, once shut down.
    assert server.returncode in (0, -signal.SIGTERM), log.read_text()
    assert "Traceback" not in log.read_text()


def _healthy(url: str, server: subprocess.Popen[bytes], *, within: float) -> bool:
    """Whether ``url`` answers 200 before ``within`` seconds pass or the server exits."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    return False
