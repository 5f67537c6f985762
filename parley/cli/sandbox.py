"""``parley sandbox``: ``setup`` makes the Python environment the code interpreter's
sandboxes run (numpy, pandas and matplotlib from PyPI); ``check`` says whether a sandbox can
run on this machine, which Python it uses, and whether those libraries import inside one.

Exit codes: 0 done (``check``: the sandbox works with every library); 1 not (said why);
2 bad input.

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.config import Settings


def add_parser(subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``sandbox`` and its commands to the ``parley`` subcommands (``add_db_options``
    gives each ``--config``, whose ``[code_interpreter]`` table names the Python)."""
    sandbox = subparsers.add_parser(
        "sandbox",
        help="set up and check the code interpreter's sandbox",
        description="The code interpreter runs the model's Python in a bubblewrap sandbox, "
        "with a Python environment of its own (docs/code-interpreter.md).",
    )
    commands = sandbox.add_subparsers(dest="sandbox_command", required=True)
    setup = commands.add_parser(
        "setup",
        help="make the sandbox's Python environment (numpy, pandas, matplotlib)",
        description="Make a venv with this Python and pip install numpy, pandas and "
        "matplotlib into it (from PyPI). Sandboxes use it when it is at the default place "
        "(sandbox in the data directory), else set PARLEY_CODE_INTERPRETER_PYTHON to its "
        "bin/python.",
    )
    setup.add_argument(
        "--dir", type=Path, metavar="PATH", help="where to make it (default: DATA_DIR/sandbox)"
    )
    check = commands.add_parser(
        "check",
        help="can a sandbox run here, with which Python and libraries? (exit 0 when all work)",
    )
    for command in (setup, check):
        add_db_options(command)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.sandbox_command == "setup":
        return _setup(args.dir)
    return _check(settings)


def _setup(directory: Path | None) -> int:
    import subprocess

    from parley.sandbox.setup import PACKAGES, default_directory, make_environment

    target = directory or default_directory()
    print(f"making {target} with {sys.executable}: {', '.join(PACKAGES)}")
    try:
        python = make_environment(target)
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"parley: the sandbox's environment could not be made: {exc}", file=sys.stderr)
        return 1
    print(f"done: sandboxes run {python}")
    if directory is not None and directory.absolute() != default_directory().absolute():
        print(f"set PARLEY_CODE_INTERPRETER_PYTHON={python} for the server to use it")
    return 0


def _check(settings: Settings) -> int:
    from parley.controls import clean
    from parley.sandbox.setup import check

    answer = check(settings)
    if answer.problem is not None:
        print(clean(f"{'sandbox:':<12}cannot run here: {answer.problem}"))
    else:
        print(f"{'sandbox:':<12}bubblewrap works here")
    if answer.bound is not None:
        print(clean(f"{'bounds:':<12}memory and processes bounded by {answer.bound}"))
        from parley.sandbox.probe import sandbox_user

        print(clean(f"{'runs as:':<12}{sandbox_user(settings)[1]}, on the host"))
    print(clean(f"{'python:':<12}{answer.python}"))
    for name, version in answer.libraries.items():
        print(clean(f"{name + ':':<12}{version or 'does not import in a sandbox'}"))
    if answer.error is not None:
        print(clean(f"{'error:':<12}{answer.error}"))
    return 0 if answer.ok else 1
