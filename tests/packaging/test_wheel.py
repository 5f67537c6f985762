"""The wheel as a user installs it: ``pip install parley-ai``, the SDK and nothing else.

A fresh venv gets the wheel and its base dependencies (httpx and pydantic), with what they
need, copied from the dev venv and installed offline (``venvs.install``), failing if the
wheel asks for anything more.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from parley.cli.extras import MODULES
from tests.packaging.venvs import install, run

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
        reason="the wheel does not depend on the database: the SQLite pass checks it",
    ),
]

BASE_DEPENDENCIES = ("httpx", "pydantic")


@pytest.fixture(scope="session")
def base_install(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with the wheel and its base dependencies."""
    base = [Requirement(name) for name in BASE_DEPENDENCIES]
    return install(tmp_path_factory.mktemp("packaging") / "venv", wheel, base)


def test_the_sdk_imports_with_the_base_dependencies_alone(base_install: Path) -> None:
    code = (
        "import importlib.util, parley\n"
        "from parley import AsyncClient, Client\n"
        "print(Client.__name__, AsyncClient.__name__, parley.events.ContentDelta.__name__)\n"
        "print([m for m in ('fastapi', 'sqlalchemy', 'flask', 'rich', 'mcp')"
        " if importlib.util.find_spec(m)])\n"
    )
    out = run(base_install / "python", "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Client AsyncClient ContentDelta", "[]"]


def test_help_and_version_work_without_extras(base_install: Path) -> None:
    version = run(base_install / "parley", "--version")
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"parley \d+\.\d+\.\d+\n", version.stdout)
    help_ = run(base_install / "parley", "--help")
    assert help_.returncode == 0, help_.stderr
    assert "serve" in help_.stdout


@pytest.mark.parametrize(
    ("command", "extras"),
    [
        (["serve"], "server"),
        (["models"], "server"),
        (["users", "create", "ada"], "server"),
        (["run", "--no-web"], "server,web"),
        (["ask", "hello"], "chat"),
        (["chat"], "chat"),
        (["web"], "web"),
    ],
)
def test_a_command_without_its_extra_says_which_to_install(
    base_install: Path, command: list[str], extras: str
) -> None:
    out = run(base_install / "parley", *command, timeout=30)
    assert out.returncode == 1
    assert out.stdout == ""
    assert re.fullmatch(
        rf"parley {command[0]} needs the \w+( and \w+)? extras? \(no module '[\w.]+'\): "
        rf"install parley-ai\[{extras}\] as you installed Parley "
        rf"\(in a clone: pip install '\.\[{extras}\]'; README\.md, Install\)\n",
        out.stderr,
    ), out.stderr


def test_a_missing_module_found_only_as_the_command_runs_gets_the_same_line(
    base_install: Path, tmp_path: Path
) -> None:
    """The server's requirements are there (stand-ins on ``PYTHONPATH``), but one of theirs
    is not: the command fails at that import, and says so in one line."""
    for module in {m for modules in MODULES.values() for m in modules}:
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text("import _absent_dependency\n")
    out = run(base_install / "parley", "serve", env={"PYTHONPATH": str(tmp_path)}, timeout=30)
    assert out.returncode == 1
    assert out.stderr == (
        "parley serve needs the server extra (no module '_absent_dependency'): install "
        "parley-ai[server] as you installed Parley (in a clone: pip install '.[server]'; "
        "README.md, Install)\n"
    )
