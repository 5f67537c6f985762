"""An idle replica's looks at its database: one read a sweep, which also looks for files to
index and webhook deliveries to send, instead of a read of each of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import event

from parley.config import Tuning
from tests.engine.inprocess import running_engine


async def test_an_idle_replica_reads_its_database_once_a_sweep(tmp_path: Path) -> None:
    # Sweeps every lease and a half-sweep (1.25 s here); the webhook loop's own looks are
    # due every 2 s, the ingestion's every few seconds: both find the sweep's look stands
    # for theirs.
    async with running_engine(
        tmp_path, {}, lease_seconds=1.0, tuning=Tuning(webhook_poll_seconds=2.0)
    ) as engine:
        await asyncio.sleep(3.0)  # the loops' first looks, made as they start
        began: list[Any] = []

        def begin(conn: Any) -> None:
            began.append(conn)

        event.listen(engine.db.engine, "begin", begin)
        try:
            await asyncio.sleep(5.0)
        finally:
            event.remove(engine.db.engine, "begin", begin)
    # About four sweeps in 5 s, each one transaction; the looks of their own would add
    # two or three of the webhook loop's and one or two of the ingestion's.
    assert 1 <= len(began) <= 5, len(began)
