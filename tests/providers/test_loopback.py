"""The loopback server under every fake upstream (``parley.testing.loopback``), through a
real client over real sockets."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from parley.testing.loopback import Connection, LoopbackServer, Received, Request


async def _handle(request: Request, conn: Connection) -> bool:
    """``/json`` says what it got; ``/stream/end|cut|hold`` streams two chunks and ends so."""
    if request.path == "/json":
        seen = Received.of(request)
        await conn.send_json(201, {"target": seen.target, "body": seen.body}, headers={"x-a": "b"})
        return True
    await conn.begin_chunked(content_type="application/x-ndjson")
    for piece in (b'{"n": 1}\n', b'{"n": 2}\n'):
        await conn.send_chunk(piece)
    if request.path.endswith("/cut"):
        return False
    if request.path.endswith("/hold"):
        await conn.wait_for_close()
        return False
    await conn.end_chunked()
    return True


async def test_json_answers_on_one_kept_alive_connection() -> None:
    async with LoopbackServer(_handle) as server, httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.post("/json?q=a%20b", json={"x": [1]})
        assert (answer.status_code, answer.headers["x-a"]) == (201, "b")
        assert answer.json() == {"target": "/json?q=a%20b", "body": {"x": [1]}}
        assert (await http.get("/json")).json() == {"target": "/json", "body": None}
        assert (server.connections, server.open_connections) == (1, 1)


async def test_a_chunked_answer_ends_cleanly_or_is_cut() -> None:
    async with LoopbackServer(_handle) as server, httpx.AsyncClient(base_url=server.url) as http:
        answer = await http.get("/stream/end")
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.content == b'{"n": 1}\n{"n": 2}\n'
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/stream/cut")


async def test_nonsense_drops_only_its_own_connection() -> None:
    async with LoopbackServer(_handle) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"NOT HTTP\r\n\r\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed on us
        writer.close()
        async with httpx.AsyncClient(base_url=server.url) as http:
            assert (await http.get("/json")).status_code == 201


async def test_closing_the_server_ends_a_held_answer() -> None:
    server = LoopbackServer(_handle)
    await server.start()
    async with (
        httpx.AsyncClient(base_url=server.url) as http,
        http.stream("GET", "/stream/hold") as answer,
    ):
        chunks = answer.aiter_raw()
        assert await anext(chunks) == b'{"n": 1}\n'
        await asyncio.wait_for(server.aclose(), 5)
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in chunks:
                pass
    assert server.open_connections == 0
