"""A retry that arrives while the request before it has recorded nothing yet waits a moment
for it (``Idempotency._settled``): it gets the first request's answer or stream, or makes
its own when the first failed, instead of an ``idempotency_key_in_use`` it would have to
retry. On the real database (SQLite, or PostgreSQL with ``PARLEY_TEST_DATABASE_URL``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from fastapi.responses import JSONResponse, Response, StreamingResponse

from parley.errors import Conflict
from parley.server import idempotency
from parley.server.idempotency import Idempotency, Made, Streamed
from parley.store.db import Database
from parley.store.idempotency_keys import Fingerprint
from tests.store.conftest import new_user

REQUEST = Fingerprint("POST", "/v1/process", "0" * 64)


def keyed() -> Idempotency:
    return Idempotency("retry-me", REQUEST)


def answering(
    gate: asyncio.Event, made: list[str], name: str, status: int = 201
) -> Callable[[], Awaitable[Made]]:
    async def make() -> Made:
        made.append(name)
        await gate.wait()
        return JSONResponse({"made_by": name}, status_code=status)

    return make


async def started(made: list[str], count: int = 1) -> None:
    """Until ``count`` requests have begun their work (the first has claimed the key)."""
    for _ in range(500):
        if len(made) >= count:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"{made}: the work did not start")


async def test_a_retry_waits_for_the_first_answer_and_gets_it(db: Database) -> None:
    user_id = await new_user(db)
    gate, made = asyncio.Event(), []
    first = asyncio.create_task(keyed().once(db, user_id, answering(gate, made, "first")))
    await started(made)
    retry = asyncio.create_task(keyed().once(db, user_id, answering(gate, made, "retry")))
    await asyncio.sleep(0.1)
    assert not retry.done()  # waiting, not told the key is in use
    gate.set()
    answer, again = await first, await retry
    assert answer.status_code == again.status_code == 201
    assert bytes(again.body) == bytes(answer.body) == b'{"made_by":"first"}'
    assert again.headers["Idempotent-Replayed"] == "true"
    assert made == ["first"]  # the retry made nothing


async def test_a_retry_gets_the_stream_recorded_a_moment_after(db: Database) -> None:
    user_id = await new_user(db)
    gate = asyncio.Event()

    made: list[str] = []

    async def stream() -> Made:
        made.append("first")
        await gate.wait()
        return Streamed(StreamingResponse(iter([b"data: 1\n\n"])), "run_1", 4, {"X-A": "b"})

    replayed: list[tuple[str, int, dict[str, str]]] = []

    async def replay(run_id: str, after: int, headers: dict[str, str]) -> Response:
        replayed.append((run_id, after, headers))
        return Response(b"again")

    async def never() -> Made:
        raise AssertionError("the retry made its own")

    first = asyncio.create_task(keyed().once(db, user_id, stream, replay))
    await started(made)
    retry = asyncio.create_task(keyed().once(db, user_id, never, replay))
    await asyncio.sleep(0.05)
    gate.set()
    await first
    again = await retry
    assert bytes(again.body) == b"again" and again.headers["Idempotent-Replayed"] == "true"
    assert replayed == [("run_1", 4, {"X-A": "b"})]


async def test_a_retry_after_a_first_that_failed_is_made_anew(db: Database) -> None:
    user_id = await new_user(db)
    gate, made = asyncio.Event(), []
    first = asyncio.create_task(keyed().once(db, user_id, answering(gate, made, "first", 400)))
    await started(made)
    retry = asyncio.create_task(keyed().once(db, user_id, answering(gate, made, "retry")))
    await asyncio.sleep(0.05)
    gate.set()
    assert (await first).status_code == 400
    again = await retry
    assert again.status_code == 201 and bytes(again.body) == b'{"made_by":"retry"}'
    assert "Idempotent-Replayed" not in again.headers
    assert made == ["first", "retry"]


async def test_a_first_that_records_nothing_in_time_is_in_use(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "SETTLE_SECONDS", 0.3)
    user_id = await new_user(db)
    gate, made = asyncio.Event(), []
    first = asyncio.create_task(keyed().once(db, user_id, answering(gate, made, "first")))
    await started(made)
    began = time.monotonic()
    with pytest.raises(Conflict) as busy:
        await keyed().once(db, user_id, answering(gate, made, "retry"))
    assert busy.value.code == "idempotency_key_in_use"
    assert 0.3 <= time.monotonic() - began < 3
    gate.set()
    await first
    assert made == ["first"]


async def test_a_retry_of_a_turn_that_started_its_run_is_told_at_once(db: Database) -> None:
    """A ``stream: false`` turn records its run and answers at its end, however long it
    runs: a retry meanwhile is told so without waiting."""
    user_id = await new_user(db)
    gate, made = asyncio.Event(), []
    idem = keyed()

    async def turn() -> Made:
        await idem.started("run_1")
        made.append("first")  # its run recorded
        await gate.wait()
        return JSONResponse({"id": "run_1"})

    first = asyncio.create_task(idem.once(db, user_id, turn))
    await started(made)
    began = time.monotonic()
    with pytest.raises(Conflict) as busy:
        await keyed().once(db, user_id, answering(gate, made, "retry"))
    assert time.monotonic() - began < idempotency.SETTLE_SECONDS
    assert "run_1" in busy.value.message
    gate.set()
    await first
