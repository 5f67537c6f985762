"""The wheel as a user installs it: ``pip install parley-ai``, the SDK and nothing else.

Once per session the wheel is built from this tree (``python -m build --no-isolation``, with
the build backend of the test extra) and installed into a fresh venv without the system's or
the dev venv's packages. Its base dependencies (httpx and pydantic), with what they need, are copied there from the dev venv
first, so pip installs the wheel with ``--no-index``: offline, and failing if the wheel asks
for anything more.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from parley.cli.extras import MODULES

pytestmark = [
    pytest.mark.packaging,
    pytest.mark.skipif(
        bool(os.environ.get("PARLEY_TEST_DATABASE_URL")),
        reason="the wheel does not depend on the database: the SQLite pass checks it",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
BASE_DEPENDENCIES = ("httpx", "pydantic")


def _run(
    *args: str | Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command outside this tree (``python -c`` would import ``parley`` from it) and
    without this session's ``PYTHONPATH`` or pip settings, with ``env`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))} | (
        env or {}
    )
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=Path(sys.executable).parent,  # no parley package there
    )


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need, with what those need in turn."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in found:
            continue
        found[name] = dist = importlib.metadata.distribution(name)
        for line in dist.requires or ():
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _copy_installed(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Install ``dist`` into ``site`` by copying the files pip put in the dev venv."""
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts:  # scripts, bytecode
            continue
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(dist.locate_file(file))), target)


@pytest.fixture(scope="session")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv with the wheel and its base dependencies."""
    tmp = tmp_path_factory.mktemp("packaging")
    built = _run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp / "dist", ROOT
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (tmp / "dist").glob("parley_ai-*.whl")

    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / "bin" / "python"
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    for dist in _closure(BASE_DEPENDENCIES):
        _copy_installed(dist, site)
    installed = _run(
        sys.executable, "-m", "pip", "--python", python, "install", "--isolated", "--no-index",
        "--no-cache-dir", "--quiet", wheel,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env_dir / "bin"


def test_the_sdk_imports_with_the_base_dependencies_alone(base_install: Path) -> None:
    code = (
        "import importlib.util, parley\n"
        "from parley import AsyncClient, Client\n"
        "print(Client.__name__, AsyncClient.__name__, parley.events.ContentDelta.__name__)\n"
        "print([m for m in ('fastapi', 'sqlalchemy', 'flask', 'rich', 'mcp')"
        " if importlib.util.find_spec(m)])\n"
    )
    out = _run(base_install / "python", "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["Client AsyncClient ContentDelta", "[]"]


def test_help_and_version_work_without_extras(base_install: Path) -> None:
    version = _run(base_install / "parley", "--version")
    assert version.returncode == 0, version.stderr
    assert re.fullmatch(r"parley \d+\.\d+\.\d+\n", version.stdout)
    help_ = _run(base_install / "parley", "--help")
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
    out = _run(base_install / "parley", *command, timeout=30)
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
    out = _run(base_install / "parley", "serve", env={"PYTHONPATH": str(tmp_path)}, timeout=30)
    assert out.returncode == 1
    assert out.stderr == (
        "parley serve needs the server extra (no module '_absent_dependency'): install "
        "parley-ai[server] as you installed Parley (in a clone: pip install '.[server]'; "
        "README.md, Install)\n"
    )
