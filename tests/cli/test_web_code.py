"""The code interpreter of the page, as ``parley run`` and ``parley web`` start it: on by
default (the demo model's ``python ...`` runs on the server), off with
``--no-code-interpreter``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.cli.conftest import Command
from tests.cli.test_web_command import _chat, _env
from tests.harness import free_port
from tests.web.conftest import Events


def _code_items(events: Events) -> list[dict[str, Any]]:
    return [
        data["item"]
        for name, data in events
        if name == "hosted_tool"
        and data["phase"] == "done"
        and data["item"]["type"] == "code_interpreter_call"
    ]


def test_the_page_of_run_runs_code(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    cmd = Command("run", "--port", str(port), "--web-port", str(web_port), env=_env(tmp_path))
    try:
        web_url = cmd.wait_for(r"Web page: (\S+)").group(1)
        cmd.wait_for(r"API key:")
        (item,) = _code_items(_chat(web_url, "python print(6*7)"))
        assert item["status"] == "completed"
        assert item["outputs"] == [{"type": "logs", "logs": "42\n"}]
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130 and "Traceback" not in out


def test_web_without_the_code_interpreter(server: Any, user_key: str, tmp_path: Path) -> None:
    port = free_port()
    cmd = Command(
        *("web", "--port", str(port), "--server", server.base_url, "--api-key", user_key),
        "--no-code-interpreter",
        env=_env(tmp_path),
    )
    try:
        url = cmd.wait_for(r"Parley web is running at (\S+)").group(1)
        events = _chat(url, "python print(6*7)")
        assert not _code_items(events)
        assert events[-1][1]["status"] == "completed"
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130 and "Traceback" not in out
