"""The test harness's servers: a port of their own when another process is quicker, and
forks of the fork server (``tests/forkserver.py``) that behave as spawned ones do."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import Forked, FreshDatabase, ParleyServer, _ephemeral_ports, free_port


def test_a_free_port_is_outside_the_range_outgoing_connections_take_local_ports_from() -> None:
    ephemeral = _ephemeral_ports()
    for _ in range(20):
        port = free_port()
        assert port not in ephemeral
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_server_whose_port_is_taken_before_it_starts_listens_on_another(
    tmp_path: Path,
) -> None:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(database_url=db.url, workdir=tmp_path)
    chosen = srv.port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", chosen))
        squatter.listen()
        try:
            srv.start()
            assert srv.port != chosen
            with srv.client(srv.admin_key) as http:
                assert http.get("/models").status_code == 200
            assert " is taken by " in srv.log()
        finally:
            srv.stop()
            db.drop()


@pytest.mark.skipif(os.environ.get("PARLEY_TEST_FORK") == "0", reason="PARLEY_TEST_FORK=0")
def test_a_forked_server_stops_and_dies_as_a_spawned_one_does(tmp_path: Path) -> None:
    """Its exit status comes as ``subprocess.Popen`` gives it (uvicorn ends by raising the
    SIGTERM it handled, so -15 after a clean shutdown; -9 after a kill); its environment
    and its log are its own."""
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(database_url=db.url, workdir=tmp_path, env={"PARLEY_LOG_LEVEL": "info"})
    try:
        srv.start()
        assert isinstance(srv.proc, Forked)
        assert srv.proc.poll() is None
        pid = srv.proc.pid
        assert f"Parley is listening on {srv.base_url}" in srv.log()  # info: its own setting
        assert srv.stop() == -signal.SIGTERM
        assert srv.log().rstrip().endswith(f"Finished server process [{pid}]")
        srv.start()
        assert isinstance(srv.proc, Forked)
        pid = srv.proc.pid
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped, not left a zombie
        # A server whose interpreter must read its environment as it starts is spawned.
        srv.env["PYTHONDONTWRITEBYTECODE"] = (
            "1" if os.environ.get("PYTHONDONTWRITEBYTECODE") != "1" else ""
        )
        srv.start()
        assert not isinstance(srv.proc, Forked)
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        srv.stop()
        db.drop()


def test_the_fork_server_ends_with_the_process_that_started_it() -> None:
    """At the exit of the process that started it, the fork server is ended and waited
    for, its socket's folder gone, with no warning of a child still running."""
    script = (
        "import sys; from tests.harness import fork_server; s = fork_server(); "
        "print(s.proc.pid, s.path.parent, flush=True)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", script],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid, folder = done.stdout.split()
    assert "ResourceWarning" not in done.stderr, done.stderr
    assert not Path(folder).exists()
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
