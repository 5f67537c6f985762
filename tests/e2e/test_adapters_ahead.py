"""The provider adapters a server is set up to call are imported as it starts, on a thread
of their own (``ProviderRegistry.warm``): the first model call imports nothing on the
event loop. aiohttp reads the system's certificates as it loads; on a loaded machine
that import held the loop for a second while every other request waited.

Who imports what is told by the server process itself: a ``sitecustomize`` on its
``PYTHONPATH`` adds an audit hook that writes which thread ran each watched module's code.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

#: The modules watched, by the end of their file's path.
WATCHED = {
    "aiohttp/__init__.py": "aiohttp",
    "parley/providers/transport.py": "parley.providers.transport",
    "parley/providers/openai_chat.py": "parley.providers.openai_chat",
}

# A module's code runs through ``exec`` (an audit event with the code object) however it is
# imported: an ``import`` statement or ``importlib.import_module``.
SITECUSTOMIZE = f"""
import os, sys, threading

_out = os.environ["PARLEY_TEST_IMPORTS"]
_watched = {WATCHED!r}


def _heard(event, args):
    if event != "exec":
        return
    path = getattr(args[0], "co_filename", "").replace(os.sep, "/")
    for end, module in _watched.items():
        if path.endswith("/" + end):
            main = threading.current_thread() is threading.main_thread()
            with open(_out, "a") as f:
                f.write(f"{{os.getpid()}} {{module}} {{'main' if main else 'other'}}\\n")


sys.addaudithook(_heard)
"""


def _imports(path: Path, pid: int) -> list[tuple[str, str]]:
    """The watched imports of process ``pid``: (module, "main" or "other" thread)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        who, module, thread = line.split()
        if who == str(pid):
            out.append((module, thread))
    return out


def test_the_first_model_call_imports_no_adapter_on_the_event_loop(
    upstream: Any, tmp_path: Path
) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    heard = tmp_path / "imports.txt"
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    db = FreshDatabase(tmp_path)
    server = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
        env={"PYTHONPATH": path, "PARLEY_TEST_IMPORTS": str(heard)},
    ).start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        deadline = time.monotonic() + 20
        while {m for m, _ in _imports(heard, pid)} != set(WATCHED.values()):
            assert time.monotonic() < deadline, (
                f"not imported ahead of any call: {_imports(heard, pid)}"
            )
            time.sleep(0.05)
        with httpx.Client(
            base_url=f"{server.base_url}/v1",
            headers={"Authorization": f"Bearer {server.new_user()}"},
            timeout=30,
        ) as http:
            answer = http.post(
                "/chat/completions",
                json={"model": "fake/text:5", "messages": [{"role": "user", "content": "hi"}]},
            )
        assert answer.status_code == 200, answer.text
        imports = _imports(heard, pid)
        assert all(thread == "other" for _, thread in imports), imports
    finally:
        server.stop()
        db.drop()
    server.assert_clean_log()
