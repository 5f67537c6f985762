"""The extra each command needs, and one line instead of a traceback when it is missing.

The base install (``pip install parley-ai``) is the SDK alone; each command imports what it
needs when it runs, from an extra (pyproject.toml). ``missing_extra`` looks for the modules of
the command's extras before it starts (``parley web`` would otherwise start an embedded server
before it imports Flask, and that server would fail on its own), and catches a
``ModuleNotFoundError`` while it runs; either way it prints
``parley serve needs the server extra (no module 'fastapi'): install parley-ai[server] as
you installed Parley (in a clone: pip install '.[server]'; README.md, Install)`` and exits 1
(Parley is not on PyPI yet, so the line names no index). A missing module of Parley's own is a broken install, not a missing extra: that
one keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.util import find_spec

DISTRIBUTION = "parley-ai"

#: The extras a command needs, where not ``server`` (every other command reads the settings
#: and the store). ``chat``, ``ask`` and ``web`` start an embedded server without
#: ``--server``: their extras hold the server's too; ``run`` serves the web page as well.
_CLIENT_EXTRAS = {
    "chat": ("chat",),
    "ask": ("chat",),
    "web": ("web",),
    "run": ("server", "web"),
}


#: The modules of each extra's own requirements (pyproject.toml; a test keeps them in step).
#: ``chat`` and ``web`` require the ``server`` extra too.
MODULES = {
    "server": (
        "pydantic_settings",
        "platformdirs",
        "fastapi",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "aiohttp",
        "orjson",
        "redis",
        "prometheus_client",
        "zstandard",
        "mcp",
        "httpx2",
    ),
    "chat": ("rich", "prompt_toolkit"),
    "web": ("flask", "cheroot"),
}


def extras_of(command: str) -> tuple[str, ...]:
    """The extras ``parley COMMAND`` imports from."""
    return _CLIENT_EXTRAS.get(command, ("server",))


def message(command: str, module: str) -> str:
    """The line that says which extra brings ``module``, missing for ``parley COMMAND``."""
    extras = extras_of(command)
    noun = "extra" if len(extras) == 1 else "extras"
    wanted = ",".join(extras)
    return (
        f"parley {command} needs the {' and '.join(extras)} {noun} (no module {module!r}): "
        f"install {DISTRIBUTION}[{wanted}] as you installed Parley (in a clone: pip install "
        f"'.[{wanted}]'; README.md, Install)"
    )


@contextmanager
def missing_extra(command: str) -> Iterator[None]:
    """Run ``parley COMMAND``; exit 1 with ``message`` when a module of its extra is missing."""
    for extra in dict.fromkeys(("server", *extras_of(command))):  # every one needs server's
        for module in MODULES[extra]:
            if find_spec(module) is None:
                print(message(command, module), file=sys.stderr)
                raise SystemExit(1)
    try:
        yield
    except ModuleNotFoundError as exc:
        module = exc.name or ""
        if not module or module.partition(".")[0] == "parley":
            raise
        print(message(command, module), file=sys.stderr)
        raise SystemExit(1) from None
