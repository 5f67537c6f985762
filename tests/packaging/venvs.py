"""Fresh venvs with the wheel built from this tree, installed offline.

The wheel is built once per session (``python -m build --no-isolation``, with the build
backend of the test extra). A fresh venv has neither the system's nor the dev venv's
packages: the distributions the wheel will need are copied there from the dev venv first,
so pip installs the wheel with ``--no-index``, offline, and fails if the wheel asks for
anything more than they are.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from parley.cli.extras import DISTRIBUTION

ROOT = Path(__file__).resolve().parents[2]


def run(
    *args: str | Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command outside this tree (``python -c`` would import ``parley`` from it) and
    without this session's ``PYTHONPATH`` or pip settings, with ``env`` added."""
    return subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        cwd=Path(sys.executable).parent,  # no parley package there
    )


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without its Python, pip or Parley settings, with ``env``
    added."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PIP_", "PYTHON", "PARLEY_"))
    }
    return kept | (env or {})


def build_wheel(folder: Path) -> Path:
    """The wheel of this tree, built into ``folder``."""
    built = run(
        sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", folder, ROOT
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = folder.glob("parley_ai-*.whl")
    return wheel


def closure(requirements: Iterable[Requirement]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``requirements`` need (their extras' too), with what
    those need in turn; Parley's own distribution left out."""
    found: dict[str, importlib.metadata.Distribution] = {}
    seen: set[tuple[str, str]] = set()
    todo = [r for r in requirements if r.marker is None or r.marker.evaluate({"extra": ""})]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name == DISTRIBUTION:
            continue
        dist = found.setdefault(name, importlib.metadata.distribution(name))
        for extra in ("", *sorted(requirement.extras)):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in dist.requires or ():
                needed = Requirement(line)
                if needed.marker is None or needed.marker.evaluate({"extra": extra}):
                    todo.append(needed)
    return list(found.values())


def _copy_installed(dist: importlib.metadata.Distribution, site: Path) -> None:
    """Install ``dist`` into ``site`` by copying the files pip put in the dev venv."""
    for file in dist.files or ():
        if file.parts[0] == ".." or "__pycache__" in file.parts:  # scripts, bytecode
            continue
        target = site / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(str(dist.locate_file(file))), target)


def install(folder: Path, wheel: Path, requirements: list[Requirement], extras: str = "") -> Path:
    """The ``bin`` folder of a fresh venv in ``folder`` with what ``requirements`` need
    copied from the dev venv, then the wheel (``wheel[extras]``) installed offline."""
    venv.create(folder, with_pip=False, symlinks=True)
    python = folder / "bin" / "python"
    site = Path(
        run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    )
    for dist in closure(requirements):
        _copy_installed(dist, site)
    wanted = f"{wheel}[{extras}]" if extras else str(wheel)
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--isolated", "--no-index",
        "--no-cache-dir", "--quiet", wanted, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return folder / "bin"
