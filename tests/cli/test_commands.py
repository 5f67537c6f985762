"""The ``parley`` command as a user runs it."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.cli.conftest import Command
from tests.harness import free_port
from tests.terminal.conftest import parley


def _parley(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return parley(*args, env={**os.environ, **(env or {})}, timeout=60)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_version() -> None:
    out = _parley("--version")
    assert out.returncode == 0
    assert re.fullmatch(r"parley \d+\.\d+\.\d+\n", out.stdout)


def test_users_create_prints_a_working_key_last(server: Any) -> None:
    out = _parley("users", "create", "carol", env={"PARLEY_DATABASE_URL": server.database_url})
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    with server.client(key) as http:
        me = http.get("/me").json()
    assert me["name"] == "carol"
    assert me["is_admin"] is False


def test_a_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.x]\nkind = "nonsense"\n')
    out = _parley("serve", "--config", str(bad), "--database-url", f"sqlite:///{tmp_path}/x.db")
    assert out.returncode == 2
    assert "providers.x" in out.stderr and "kind" in out.stderr
    assert "Traceback" not in out.stderr
    missing = _parley("serve", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2
    assert "not found" in missing.stderr


def test_an_unknown_default_provider_is_a_clear_error(tmp_path: Path) -> None:
    out = _parley(
        "serve",
        "--database-url",
        f"sqlite:///{tmp_path}/x.db",
        env={"PARLEY_DEFAULT_PROVIDER": "nosuch"},
    )
    assert out.returncode == 2, out.stderr
    assert "PARLEY_DEFAULT_PROVIDER" in out.stderr and "'nosuch'" in out.stderr
    assert "Traceback" not in out.stderr


def test_run_prints_url_key_and_example_that_work(tmp_path: Path) -> None:
    port = free_port()
    # A provider nothing answers: the Python example's failed run must say so.
    config = tmp_path / "parley.toml"
    config.write_text(
        f'[providers.dead]\nkind = "openai-chat"\nbase_url = "http://127.0.0.1:{free_port()}/v1"'
        '\napi_key = "sk-dead"\nmax_retries = 0\n'
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "PARLEY_CONFIG": str(config)}
    env.pop("PARLEY_DATABASE_URL", None)
    command = Command("run", "--port", str(port), "--no-web", env=env)
    try:
        command.wait_for(r"roll_dice please", timeout=30)  # the banner's last line
        banner = "".join(command.lines)
        assert f"http://127.0.0.1:{port}" in banner
        assert "Web page" not in banner  # --no-web
        key = banner.split("API key:")[1].split("\n")[0].strip()
        # Both examples run as printed: the Python one, and the shell one.
        python = _indented_block(banner, "Try it from Python")
        done = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True)
        assert done.returncode == 0 and 'you said "Hello!"' in done.stdout, done.stderr
        # With a model whose provider fails, it says why (not an empty line and exit 0).
        failing = python.replace('"demo/parley"', '"dead/model"')
        done = subprocess.run([sys.executable, "-c", failing], capture_output=True, text=True)
        assert done.returncode == 1 and done.stdout.strip() == "", done.stdout
        last = done.stderr.strip().splitlines()[-1]
        assert re.fullmatch(r"\S*RunFailed: run run_\w+ failed: upstream_unreachable: .+", last)
        shell = _indented_block(banner, "Or over HTTP")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", shell], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert '"status":"completed"' in done.stdout and "Hello!" in done.stdout
        # And the terminal's, with the parley of this install (the venv's: not on PATH).
        terminal = _indented_block(banner, "In another terminal")
        assert "parley ask --server" in terminal
        done = subprocess.run(["bash", "-c", terminal], capture_output=True, text=True, env=env)
        assert done.returncode == 0 and 'you said "Hello!"' in done.stdout, done.stderr
        # And the example MCP server, from this clone, on this start's port.
        mcp = _indented_block(banner, "page's assistant gets its tools")
        assert mcp.splitlines() == [
            "make mcp-example &",
            f"PARLEY_MCP_ALLOW_URLS=127.0.0.1 make run PORT={port} "
            "HOSTED_MCP=example=http://127.0.0.1:8765/mcp",
        ]
        # The default database lives in the user data directory.
        assert (tmp_path / "parley" / "parley.db").exists()
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/v1", headers={"X-API-Key": key}
        ) as http:
            assert http.get("/me").json()["is_admin"] is True
        # What is kept there is the user's only (the database open, with its side files).
        data = tmp_path / "parley"
        assert _mode(data) == 0o700
        private = ("parley.db", "parley.db-wal", "parley.db-shm", "local-api-key")
        assert {name: _mode(data / name) for name in private} == dict.fromkeys(private, 0o600)
    finally:
        command.kill()
    # A second start reuses the saved key.
    assert (tmp_path / "parley" / "local-api-key").read_text().strip() == key


def _indented_block(text: str, after: str) -> str:
    """The indented lines that follow the line starting with ``after``, dedented."""
    lines = text.split(after, 1)[1].split("\n")[1:]
    block: list[str] = []
    for line in lines:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip() + "\n"


def test_ctrl_c_stops_serve_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "parley.cli.main",
            "serve",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{tmp_path}/c.db",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "Traceback" not in out
