"""A client that stops reading while its turn streams (a full socket: the server's writes
wait for it) gets every event once, in order, when it reads again: the turn's events go
straight to the socket while it takes them, and through the stream's own task while it
does not."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import httpx
import orjson

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import create_assistant

CHUNKS = 40000


def test_a_reader_that_stalls_gets_every_event_once_in_order(
    server: Any, user_key: str, http: httpx.Client
) -> None:
    bot = create_assistant(http, model=f"fake/text:{CHUNKS}")
    body = orjson.dumps({"assistant_id": bot["id"], "content": "hi"})
    request = (
        f"POST /v1/process HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {user_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
        client.connect(("127.0.0.1", server.port))
        client.sendall(request)
        time.sleep(1.0)  # the whole answer streams meanwhile: the server's writes back up
        client.settimeout(30)
        received = bytearray()
        while chunk := client.recv(65536):
            received += chunk
    text = bytes(received).decode()
    assert text.startswith("HTTP/1.1 200"), text[:200]
    ids = [int(n) for n in re.findall(r"^id: (\d+)$", text, re.MULTILINE)]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "an event missing or twice"
    deltas = re.findall(r"^event: content\.delta\ndata: (.*)$", text, re.MULTILINE)
    assert len(deltas) == CHUNKS
    assert "".join(orjson.loads(d)["text"] for d in deltas) == expected_text(CHUNKS)
    assert re.search(r"^event: done\ndata: .*\"completed\"", text, re.MULTILINE)
