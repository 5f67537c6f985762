from __future__ import annotations

from typing import Any


def test_process_streams_a_demo_turn(server: Any, user_key: str) -> None:
    with server.client(user_key) as http:
        bot = http.post("/assistants", json={"name": "d", "model": "demo/x"}).json()
        with http.stream(
            "POST", "/process", json={"assistant_id": bot["id"], "content": "hi"}
        ) as r:
            assert r.status_code == 200
            body = r.read().decode()
    assert body.count("event: done") == 1
    assert "event: content.delta" in body
