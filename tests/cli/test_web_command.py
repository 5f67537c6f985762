"""``parley web`` and the web page of ``parley run``, as a user runs them."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Command
from tests.harness import free_port
from tests.terminal.conftest import parley
from tests.web.conftest import Browser, Events


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), **extra}
    for name in ("PARLEY_BASE_URL", "PARLEY_API_KEY", "PARLEY_DATABASE_URL", "OPENAI_API_KEY"):
        if name not in extra:
            env.pop(name, None)
    return env


def _chat(page_url: str, content: str) -> Events:
    """Load the page and send one message, as the browser does."""
    browser = Browser(page_url)
    try:
        browser.open_page()
        return browser.process(content)
    finally:
        browser.close()


def _tool_output(events: Events) -> str:
    return str(next(data["output"] for name, data in events if name == "tool.result"))


def test_web_against_a_server(server: Any, user_key: str, tmp_path: Path) -> None:
    port = free_port()
    cmd = Command(
        *("web", "--port", str(port), "--server", server.base_url, "--api-key", user_key),
        env=_env(tmp_path),
    )
    try:
        url = cmd.wait_for(r"Parley web is running at (\S+)").group(1)
        assert url == f"http://127.0.0.1:{port}"
        events = _chat(url, "calculator 2+2")
        assert _tool_output(events) == "4"
        assert events[-1][1]["status"] == "completed"
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130
    assert "Traceback" not in out and user_key not in out
    secret = tmp_path / "parley" / "web-secret"
    assert _mode(secret) == 0o600 and _mode(secret.parent) == 0o700


def test_web_tightens_a_secret_readable_by_others(
    server: Any, user_key: str, tmp_path: Path
) -> None:
    secret = tmp_path / "parley" / "web-secret"
    secret.parent.mkdir()
    secret.write_text("s" * 64 + "\n")
    secret.chmod(0o644)
    args = ["web", "--port", str(free_port()), "--server", server.base_url]
    cmd = Command(*args, "--api-key", user_key, env=_env(tmp_path))
    try:
        cmd.wait_for(r"Parley web is running at")
        assert _mode(secret) == 0o600
    finally:
        cmd.kill()
    assert secret.read_text() == "s" * 64 + "\n"  # the same secret, kept


def test_web_starts_an_embedded_server_and_stops_it(tmp_path: Path) -> None:
    cmd = Command("web", "--port", str(free_port()), "--model", "demo/web", env=_env(tmp_path))
    try:
        url = cmd.wait_for(r"Parley web is running at (\S+)").group(1)
        found = cmd.wait_for(r"Parley server: (\S+) \(embedded\)\s+default model: demo/web")
        embedded = found.group(1)
        assert httpx.get(f"{embedded}/healthz").status_code == 200
        events = _chat(url, "calculator 10/4")
        assert _tool_output(events) == "2.5"
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130 and "Traceback" not in out
    with pytest.raises(httpx.ConnectError):  # the embedded server went with it
        httpx.get(f"{embedded}/healthz")


@pytest.mark.parametrize("against", ["a server", "an embedded one"])
def test_web_on_a_taken_port_says_so(
    against: str, server: Any, user_key: str, taken_port: int, tmp_path: Path
) -> None:
    args = ["web", "--port", str(taken_port)]
    if against == "a server":  # the port is found taken as the page binds it
        args += ["--server", server.base_url, "--api-key", user_key]
    # The option wins over the variable.
    done = parley(*args, env=_env(tmp_path, PARLEY_WEB_PORT=str(free_port())))
    assert done.returncode == 1
    assert f"port {taken_port} on 127.0.0.1 is taken by process {os.getpid()}" in done.stderr
    assert "parley web --port " in done.stderr and "PARLEY_WEB_PORT=" in done.stderr
    assert "Traceback" not in done.stderr
    assert "embedded" not in done.stderr  # said before any server starts


def test_web_warns_when_the_server_cannot_be_reached(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    cmd = Command("web", "--port", str(free_port()), "--server", dead, env=_env(tmp_path))
    try:
        cmd.wait_for(rf"warning: Cannot reach the Parley server at {re.escape(dead)}")
        cmd.wait_for(r"Parley web is running at")
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130 and "Traceback" not in out


def test_run_serves_the_page_next_to_the_server(tmp_path: Path) -> None:
    port, web_port = free_port(), free_port()
    env = _env(tmp_path, PARLEY_WEB_PORT=str(web_port))  # the page's port, as make run's
    cmd = Command("run", "--port", str(port), env=env)
    try:
        assert cmd.wait_for(r"Parley is running at (\S+)").group(1) == f"http://127.0.0.1:{port}"
        web_url = cmd.wait_for(r"Web page: (\S+)").group(1)
        assert web_url == f"http://127.0.0.1:{web_port}"
        cmd.wait_for(r"API key:")
        assert _tool_output(_chat(web_url, "calculator 3*3")) == "9"
        code, out = cmd.interrupt()
    finally:
        cmd.kill()
    assert code == 130 and "Traceback" not in out


@pytest.mark.parametrize("where", ["option", "variable"])
def test_run_on_a_taken_web_port_says_so_before_it_starts(
    where: str, tmp_path: Path, taken_port: int
) -> None:
    args = ["run", "--port", str(free_port())]
    if where == "option":
        args += ["--web-port", str(taken_port)]
        env = _env(tmp_path, PARLEY_WEB_PORT=str(free_port()))
    else:
        env = _env(tmp_path, PARLEY_WEB_PORT=str(taken_port))
    done = parley(*args, env=env)
    assert done.returncode == 1, done
    said = done.stderr
    assert f"the web page's port {taken_port} on 127.0.0.1 is taken by process {os.getpid()}" in (
        said
    )
    assert "parley run --web-port " in said and "make run WEB_PORT=" in said
    assert "PARLEY_WEB_PORT=" in said and "--no-web" in said
    assert "Traceback" not in said and "Parley is running" not in done.stdout
    assert not (tmp_path / "parley" / "parley.db").exists()  # nothing started


@pytest.mark.parametrize("url", ["localhost:8700", "ftp://host", "http://"])
def test_web_refuses_a_server_url_it_cannot_use(url: str, tmp_path: Path) -> None:
    done = parley("web", "--server", url, env=_env(tmp_path))
    assert done.returncode == 2
    assert "use http(s)://host[:port]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "extra", "said"),
    [
        (("--max-exchanges", "0"), {}, "--max-exchanges must be at least 1, not 0"),
        ((), {"PARLEY_WEB_MAX_EXCHANGES": "lots"}, "PARLEY_WEB_MAX_EXCHANGES must be a whole"),
        ((), {"PARLEY_WEB_MAX_EXCHANGES": "0"}, "PARLEY_WEB_MAX_EXCHANGES must be a whole"),
        ((), {"PARLEY_WEB_PORT": "http"}, "PARLEY_WEB_PORT must be a port number"),
    ],
)
def test_web_refuses_a_setting_it_cannot_use(
    args: tuple[str, ...], extra: dict[str, str], said: str, tmp_path: Path
) -> None:
    done = parley("web", "--server", "http://127.0.0.1:9", *args, env=_env(tmp_path, **extra))
    assert done.returncode == 2, done
    assert said in done.stderr and "Traceback" not in done.stderr, done.stderr
