"""Request bodies sent compressed (``Content-Encoding: gzip`` or ``zstd``, as OpenAI takes
them and Codex sends them): taken on every JSON route, with or without a
``Content-Length``; a body that lies about its encoding is a 400, an encoding not taken a
415, and one that expands past the body limit (a decompression bomb) a 413, after which the
server answers as before."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import zstandard

from tests.harness import ParleyServer

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    """A server of its own with a 1 MiB body limit, so that the bombs stay small."""
    from tests.harness import FreshDatabase

    tmp = tmp_path_factory.mktemp("compressed")
    db = FreshDatabase(tmp)
    srv = ParleyServer(
        database_url=db.url, workdir=tmp, env={"PARLEY_MAX_BODY_BYTES": str(LIMIT)}
    ).start()
    try:
        yield srv
    finally:
        srv.stop()
        srv.assert_clean_log()
        db.drop()


def post(
    server: ParleyServer, key: str, path: str, body: bytes, encoding: str, *, chunked: bool = False
) -> httpx.Response:
    headers = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
        "Content-Encoding": encoding,
    }
    content: Any = body
    if chunked:  # no Content-Length: the body comes in pieces
        content = iter([body[i : i + 4096] for i in range(0, len(body), 4096)])
    return httpx.post(f"{server.base_url}{path}", content=content, headers=headers, timeout=30)


def request(text: str) -> bytes:
    return json.dumps({"model": "demo/parley", "input": text}).encode()


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize(
    ("encoding", "squeeze"),
    [("gzip", gzip.compress), ("zstd", zstandard.ZstdCompressor().compress)],
)
def test_compressed_requests_are_taken(
    small: ParleyServer, encoding: str, squeeze: Any, chunked: bool
) -> None:
    key = small.new_user()
    said = f"hello in {encoding}"
    answer = post(small, key, "/v1/responses", squeeze(request(said)), encoding, chunked=chunked)
    assert answer.status_code == 200, answer.text
    assert said in answer.json()["output"][-1]["content"][0]["text"]
    native = post(small, key, "/v1/threads", squeeze(b"{}"), encoding, chunked=chunked)
    assert native.status_code == 200, native.text


def test_bodies_that_lie_or_explode_are_refused_and_the_server_goes_on(small: ParleyServer) -> None:
    key = small.new_user()
    plain = request("hi")
    bombs = {
        "gzip": gzip.compress(b"0" * (64 * LIMIT), compresslevel=9),
        "zstd": zstandard.ZstdCompressor(level=19).compress(b"0" * (64 * LIMIT)),
    }
    for encoding, bomb in bombs.items():
        assert len(bomb) < LIMIT  # small on the wire
        refused = post(small, key, "/v1/responses", bomb, encoding)
        assert refused.status_code == 413, (encoding, refused.text)
        assert "decompressed" in refused.json()["error"]["message"]
        lying = post(small, key, "/v1/responses", plain, encoding)
        assert lying.status_code == 400, (encoding, lying.text)
        assert lying.json()["error"]["code"] == "invalid_content_encoding"
        cut = post(small, key, "/v1/responses", bombs[encoding][:100], encoding)
        assert cut.status_code in (400, 413), cut.text
    unknown = post(small, key, "/v1/responses", plain, "br")
    assert unknown.status_code == 415, unknown.text
    assert unknown.json()["error"]["code"] == "unsupported_content_encoding"
    on_files = post(small, key, "/v1/files", gzip.compress(b"x"), "gzip")
    assert on_files.status_code == 415
    fine = post(small, key, "/v1/responses", gzip.compress(plain), "gzip")
    assert fine.status_code == 200
    identity = post(small, key, "/v1/responses", plain, "identity")
    assert identity.status_code == 200
