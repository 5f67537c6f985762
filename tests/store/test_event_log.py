"""The run event log (``store.runs``): the events a write logs together are one row, and a
read from any sequence number, up to any other, of any type, gives exactly the events
logged, in order; rows of one event (written before batches) read as before."""

from __future__ import annotations

import zlib

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from parley.events import ContentDelta
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database
from parley.store.tables import run_events
from tests.store.conftest import new_run, new_user


def _run(conn: Connection, user_id: str) -> str:
    thread = thread_store.create_thread(conn, user_id=user_id, metadata={})
    return new_run(conn, user_id, thread.id).id


def _event(seq: int) -> tuple[int, str, str]:
    kind = "hosted_tool" if seq % 4 == 0 else "content.delta"
    # Text that looks like the packing itself: a newline, spaces, digits, unicode.
    text = f"{seq} content.delta 12\n chunk {seq} — ünï\\n"
    return seq, kind, orjson.dumps({"run_id": "r", "text": text}).decode()


async def test_any_window_of_the_log_reads_back_exactly(db: Database) -> None:
    user_id = await new_user(db)
    logged = [_event(seq) for seq in range(1, 31)]

    def write(conn: Connection) -> str:
        run_id = _run(conn, user_id)
        # Rows written before batches: one event each, as they stay in old databases.
        legacy = [{"run_id": run_id, "seq": s, "type": t, "data": d} for s, t, d in logged[:3]]
        conn.execute(insert(run_events), legacy)
        run_store.append_events(conn, run_id=run_id, events=logged[3:10])  # a turn's round
        run_store.append_many_events(  # a checkpoint of two runs
            conn, batches=[(run_id, logged[10:11]), (_run(conn, user_id), [_event(1)])]
        )
        run_store.append_events(conn, run_id=run_id, events=logged[11:])
        return run_id

    run_id = await db.write(write)
    rows = await db.read(
        lambda c: c.execute(
            select(run_events.c.first_seq, run_events.c.seq)
            .where(run_events.c.run_id == run_id)
            .order_by(run_events.c.seq)
        ).all()
    )
    assert [tuple(r) for r in rows] == [
        (None, 1),
        (None, 2),
        (None, 3),
        (4, 10),
        (11, 11),
        (12, 30),
    ]

    def read(**kw: object) -> list[tuple[int, str, str]]:
        def go(conn: Connection) -> list[tuple[int, str, str]]:
            found = run_store.read_events(conn, run_id=run_id, **kw)  # type: ignore[arg-type]
            return [(e.seq, e.type, e.data) for e in found]

        return db.read(go)  # type: ignore[return-value]

    for after in range(0, 31):
        assert await read(after=after) == logged[after:]
    for after, before in ((0, 1), (2, 6), (5, 11), (9, 12), (10, 31), (29, 31), (3, 4)):
        assert await read(after=after, before=before) == logged[after : before - 1]
    hosted = [e for e in logged if e[1] == "hosted_tool"]
    assert await read(after=0, kind="hosted_tool") == hosted
    assert await read(after=8, kind="hosted_tool") == [e for e in hosted if e[0] > 8]


def test_pack_and_unpack_are_inverse() -> None:
    events = [_event(seq) for seq in range(7, 12)] + [(12, "done", "")]
    for run_id in ("run_x", 'run_%s{}"\\é'):  # an imported run's id may hold anything
        row = run_store.pack(run_id, events)
        assert (row["first_seq"], row["seq"], row["type"]) == (7, 12, run_store.BATCH)
        assert [(e.seq, e.type, e.data) for e in run_store.unpack(row["packed"], run_id)] == events


def test_rows_packed_without_the_dictionary_still_read() -> None:
    """Rows written before the dictionary: plain zlib, read by the same ``unpack``."""
    events = [_event(seq) for seq in range(1, 6)]
    text = "".join(f"{s} {t} {len(d)}\n{d}" for s, t, d in events)
    old = zlib.compress(text.encode(), 1)
    assert [(e.seq, e.type, e.data) for e in run_store.unpack(old, "run_x")] == events


WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog"]


def test_the_dictionary_makes_a_checkpoints_row_smaller() -> None:
    run_id, message_id = "run_0123456789abcdef01234567", "msg_76543210fedcba9876543210"
    events = [
        (
            seq,
            "content.delta",
            ContentDelta(run_id=run_id, message_id=message_id, text=w).model_dump_json(),
        )
        for seq, w in enumerate(WORDS, 1)
    ]
    text = "".join(f"{s} {t} {len(d)}\n{d}" for s, t, d in events)
    assert len(run_store.pack(run_id, events)["packed"]) < 0.85 * len(
        zlib.compress(text.encode(), 1)
    )
