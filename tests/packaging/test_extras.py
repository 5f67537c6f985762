"""The extras of pyproject.toml and the modules ``parley`` looks for before a command runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from parley.cli.extras import DISTRIBUTION, MODULES, message

PYPROJECT = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())


def test_the_modules_of_each_extra_are_those_pyproject_requires() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    for extra, modules in MODULES.items():
        required = [Requirement(line) for line in extras[extra]]
        own = [r.name for r in required if r.name != DISTRIBUTION]
        assert [name.replace("-", "_").lower() for name in own] == list(modules), extra
        if extra != "server":
            assert Requirement(f"{DISTRIBUTION}[server]") in required, extra


def test_the_all_extra_holds_every_other_one() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    (everything,) = (Requirement(line) for line in extras["all"])
    assert everything.name == DISTRIBUTION == PYPROJECT["project"]["name"]
    assert everything.extras == set(extras) - {"all", "test", "bench"}


def test_the_message_names_the_module_and_the_pip_command() -> None:
    assert message("serve", "fastapi") == (
        "parley serve needs the server extra (no module 'fastapi'): install "
        "parley-ai[server] as you installed Parley (in a clone: pip install '.[server]'; "
        "README.md, Install)"
    )
    assert message("run", "flask") == (
        "parley run needs the server and web extras (no module 'flask'): install "
        "parley-ai[server,web] as you installed Parley (in a clone: pip install "
        "'.[server,web]'; README.md, Install)"
    )
