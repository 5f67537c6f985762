"""The first minutes of ``parley serve`` and ``parley run``: where they say they listen, what
they say when a port is taken, and how ``make run`` moves the ports."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from parley.cli.serve import redacted_url
from tests.cli.conftest import Command
from tests.harness import free_port
from tests.terminal.conftest import parley

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), **extra}
    for name in ("PARLEY_DATABASE_URL", "PARLEY_PORT", "PARLEY_WEB_PORT", "PARLEY_LOG_LEVEL"):
        if name not in extra:
            env.pop(name, None)
    for name in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GROQ_API_KEY"):
        env.pop(name, None)
    return env


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_serve_says_where_it_listens_once_ready(log_format: str, tmp_path: Path) -> None:
    port, db = free_port(), f"sqlite:///{tmp_path}/s.db"
    args = ("serve", "--port", str(port), "--database-url", db, "--log-format", log_format)
    cmd = Command(*args, env=_env(tmp_path, OPENAI_API_KEY="sk-test-not-shown"))
    try:
        line = cmd.wait_for(r"listening on").string
    finally:
        cmd.kill()
    url = f"http://127.0.0.1:{port}"
    if log_format == "json":
        record = json.loads(line)
        assert record["level"] == "info"
        assert record["url"] == url and record["database"] == db
        assert record["providers"]["demo"] == "ready"
        assert record["providers"]["openai"] == "key set"
        assert "anthropic" not in record["providers"]  # no key: not ready
        assert record["docs"] == f"{url}/docs"
    else:
        assert f"listening on {url};" in line and f"database: {db};" in line
        assert "demo" in line and "openai (key set)" in line and "anthropic" not in line
        assert f"API docs: {url}/docs" in line
    assert "sk-test" not in "".join(cmd.lines)


def test_a_database_url_is_shown_without_its_password() -> None:
    shown = redacted_url("postgresql://parley:s3cret@db:5432/parley?sslmode=require")
    assert shown == "postgresql://parley:***@db:5432/parley?sslmode=require"
    assert redacted_url("postgresql+psycopg://u:p%40ss@h/d") == "postgresql+psycopg://u:***@h/d"
    assert redacted_url("postgresql://parley@db/parley") == "postgresql://parley@db/parley"
    assert redacted_url("sqlite:////tmp/p.db") == "sqlite:////tmp/p.db"
    assert redacted_url("not a url") == "not a url"


@pytest.mark.parametrize(
    ("command", "hints"),
    [
        (("serve",), ("parley serve --port ", "PARLEY_PORT=")),
        (("run", "--no-web"), ("parley run --port ", "make run PORT=", "PARLEY_PORT=")),
    ],
)
def test_a_taken_server_port_is_named_with_what_holds_it(
    command: tuple[str, ...], hints: tuple[str, ...], taken_port: int, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/t.db"
    done = parley(*command, "--port", str(taken_port), "--database-url", db, env=_env(tmp_path))
    assert done.returncode == 1, done
    said = done.stderr
    assert f"port {taken_port} on 127.0.0.1 is taken by process {os.getpid()}" in said, said
    assert all(hint in said for hint in hints), said
    assert "Traceback" not in said and "Errno" not in said and "ERROR" not in said
    assert not (tmp_path / "t.db").exists()  # refused before the database was touched


def _make_run(*variables: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "run", *variables],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return next(line for line in done.stdout.splitlines() if "/bin/parley run" in line)


def test_make_run_passes_the_ports_and_host_it_is_given() -> None:
    line = _make_run("PORT=8801", "WEB_PORT=5051", "HOST=0.0.0.0")
    assert line.endswith("/bin/parley run --host 0.0.0.0 --port 8801 --web-port 5051")
    # Without them, parley run's own defaults and PARLEY_* variables apply; a PORT or HOST
    # of the shell's environment (another program's) is not taken for Parley's.
    env = {**os.environ, "PORT": "3000", "HOST": "myhost"}
    assert _make_run(env=env).endswith("/bin/parley run")
