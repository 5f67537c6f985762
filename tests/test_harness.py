"""The test harness's servers find a port of their own when another process is quicker."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.harness import FreshDatabase, ParleyServer, _ephemeral_ports, free_port


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
