"""The hot path's writes on the driver (``store.driver``) store exactly what the statement
layer stores, and fail as it fails: the same values read back (JSON, a None in a JSON
column, U+0000, defaults), the same errors (``sqlalchemy.exc``), and a transaction whose
driver statement failed rolls back whole."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
import pytest
from sqlalchemy import insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DataError, IntegrityError

from parley.errors import Conflict, NotFound
from parley.store import driver
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, new_id
from parley.store.tables import messages, runs
from parley.store.transaction import send_ahead
from tests.store.conftest import new_run, new_user

ODD = {"a": [1, 2.5, None, True], "nul": "x\x00y", "é": "😀"}


def _thread(conn: Connection, user_id: str) -> str:
    return thread_store.create_thread(conn, user_id=user_id, metadata={"k": "v"}).id


def _new_run(conn: Connection, user_id: str, thread_id: str, status: str) -> str:
    return new_run(conn, user_id, thread_id, status).id


def _message(conn: Connection, user_id: str, thread_id: str, seq: int) -> str:
    row = thread_store.new_message(thread_id=thread_id, seq=seq, role="assistant", content="")
    thread_store.insert_messages(conn, user_id=user_id, rows=[row])
    return row.id


def _raw(conn: Connection, table: str, row_id: str) -> dict[str, object]:
    """The row as stored: every column's text where it is JSON (no decoding)."""
    found = conn.execute(text(f"SELECT * FROM {table} WHERE id = :id"), {"id": row_id}).one()
    return dict(found._mapping)


async def test_message_writes_store_what_the_statement_layer_stores(db: Database) -> None:
    user_id = await new_user(db)

    def write(conn: Connection) -> tuple[dict[str, object], dict[str, object]]:
        thread_id = _thread(conn, user_id)
        ours, theirs = _message(conn, user_id, thread_id, 1), _message(conn, user_id, thread_id, 2)
        for layout, reasoning in (([["text", 0, 3]], "why\x00"), (None, None)):
            values: dict[str, Any] = {
                "content": "a\x00b",
                "reasoning": reasoning,
                "layout": layout,
                "tool_calls": [{"id": "c1", "arguments": '{"x": 1}'}],
                "provider_state": ODD,
                "usage": None,
            }
            thread_store.save_message_text(conn, message_id=ours, **values)
            conn.execute(update(messages).where(messages.c.id == theirs).values(**values))
        return _raw(conn, "messages", ours), _raw(conn, "messages", theirs)

    ours, theirs = await db.write(write)
    for column in ("content", "reasoning", "layout", "tool_calls", "provider_state", "usage"):
        assert ours[column] == theirs[column], column
    assert ours["content"] == "a\ufffdb"
    assert ours["usage"] in ("null", None)  # JSON null, as the statement layer writes it


async def test_run_inserts_and_moves_store_what_the_statement_layer_stores(db: Database) -> None:
    user_id = await new_user(db)

    def write(conn: Connection) -> tuple[dict[str, object], dict[str, object]]:
        thread_id = _thread(conn, user_id)
        run = run_store.create_run(
            conn,
            user_id=user_id,
            thread_id=thread_id,
            assistant_id=None,
            model="demo/x\x00",
            instructions="be\x00 brief",
            tools=[{"type": "function", "name": "f"}],
            parameters=ODD,
            status="in_progress",
            lease=("owner", 12.5),
        )
        other = {**run.values(), "id": new_id("run"), "status": "completed"}
        for column in ("input_tokens", "output_tokens", "reasoning_tokens", "cached_tokens"):
            other.pop(column)  # their defaults, as the driver fills them in
        other.pop("last_seq")
        other["lease_owner"], other["lease_expires_at"] = "owner", 12.5
        conn.execute(insert(runs), other)
        moved = run_store.set_status(
            conn,
            run_id=run.id,
            expected=["in_progress"],
            status="completed",
            completed_at=99.0,
            error_message="bad\x00",
            metadata=None,
            lease_owner=None,
        )
        assert moved
        assert not run_store.set_status(
            conn, run_id=run.id, expected=["in_progress", "queued"], status="cancelled"
        )
        conn.execute(
            update(runs)
            .where(runs.c.id == other["id"])
            .values(completed_at=99.0, error_message="bad\x00", metadata=None, lease_owner=None)
        )
        return _raw(conn, "runs", run.id), _raw(conn, "runs", other["id"])

    ours, theirs = await db.write(write)
    assert ours["status"] == theirs["status"] == "completed"
    assert ours.pop("id") != theirs.pop("id")
    assert ours == theirs


async def test_several_messages_take_their_texts_in_one_statement(db: Database) -> None:
    user_id = await new_user(db)

    def write(conn: Connection) -> list[tuple[str, str | None, str | None]]:
        thread_id = _thread(conn, user_id)
        ids = [_message(conn, user_id, thread_id, seq) for seq in (1, 2, 3)]
        thread_store.save_texts(
            conn,
            rows=[
                (ids[0], "one\x00", None, None),
                (ids[1], "two", "why", [["reasoning", 3], ["text", 3]]),
            ],
        )
        rows = conn.execute(
            select(messages.c.id, messages.c.content, messages.c.reasoning, messages.c.layout)
        ).all()
        found = {r.id: (r.content, r.reasoning, r.layout) for r in rows}
        return [found[m] for m in ids]

    rows = await db.write(write)
    assert [(c, r) for c, r, _ in rows] == [("one\ufffd", None), ("two", "why"), ("", None)]
    layout = rows[1][2]
    assert (orjson.loads(layout) if isinstance(layout, str) else layout) == [
        ["reasoning", 3],
        ["text", 3],
    ]


async def test_a_driver_statement_fails_as_the_statement_layer_does(db: Database) -> None:
    user_id = await new_user(db)
    thread_id = await db.write(lambda c: _thread(c, user_id))

    def twice(conn: Connection) -> None:
        for _ in range(2):  # the second: a thread's one active run, refused by the index
            _new_run(conn, user_id, thread_id, "in_progress")

    with pytest.raises(Conflict):
        await db.write(twice)

    def duplicate(conn: Connection) -> None:
        message_id = _message(conn, user_id, thread_id, 1)
        row = thread_store.new_message(thread_id=thread_id, seq=2, role="user", content="x")
        driver.insert_rows(conn, messages, [{"user_id": user_id, **row.values(), "id": message_id}])

    with pytest.raises(IntegrityError):
        await db.write(duplicate)
    # Both transactions rolled back whole; the connection still works.
    count = await db.read(
        lambda c: (
            c.execute(text("SELECT count(*) FROM runs")).scalar_one()
            + c.execute(text("SELECT count(*) FROM messages")).scalar_one()
        )
    )
    assert count == 0


def test_a_column_with_a_default_the_driver_cannot_give_is_refused() -> None:
    from sqlalchemy import Column, Integer, MetaData, String, Table

    table = Table(
        "t", MetaData(), Column("id", String, primary_key=True), Column("n", Integer, default=len)
    )
    with pytest.raises(ValueError, match=r"t\.n"):
        driver.insert(table, ("id",))


async def test_the_claims_read_gives_what_the_statement_layer_reads(db: Database) -> None:
    from parley.store import assistants as assistant_store
    from parley.store.records import Assistant
    from parley.store.tables import assistants

    user_id = await new_user(db)

    def read(conn: Connection) -> tuple[Assistant, Assistant, Assistant]:
        made = assistant_store.create_assistant(
            conn,
            user_id=user_id,
            name="n\x00",
            model="demo/x",
            instructions=None,
            tools=[{"type": "function", "function": {"name": "f", "parameters": ODD}}],
            parameters={"temperature": 0.5, "big": 2**40, "flag": False},
            metadata={},
            options=None,
        )
        ours = assistant_store.get_assistant(conn, user_id=user_id, assistant_id=made.id)
        row = conn.execute(select(assistants).where(assistants.c.id == made.id)).one()
        return made, ours, Assistant.from_row(row)

    made, ours, theirs = await db.write(read)
    assert ours == theirs
    assert ours.name == "n\ufffd" and ours.options is None
    assert ours.tools[0]["function"]["parameters"]["nul"] == "x\ufffdy"
    assert ours.parameters == made.parameters
    with pytest.raises(NotFound):
        await db.read(
            lambda c: assistant_store.get_assistant(c, user_id="usr_other", assistant_id=made.id)
        )


async def test_a_statement_for_a_list_takes_any_length(db: Database) -> None:
    """``ForEach``: the same answer for an empty list, a short one, and one longer than a
    SQLite slice; a renewal moves only this owner's runs still in progress."""
    user_id = await new_user(db)

    def write(conn: Connection) -> tuple[list[int], int, list[tuple[str, Any, Any]]]:
        statuses = ("in_progress", "in_progress", "cancelled")
        ids = [_new_run(conn, user_id, _thread(conn, user_id), s) for s in statuses]
        conn.execute(update(runs).where(runs.c.id.in_(ids)).values(lease_owner="me"))
        conn.execute(update(runs).where(runs.c.id == ids[1]).values(lease_owner="other"))
        unknown = [f"run_{i}" for i in range(driver.ForEach.SLICE + 7)]
        found = [
            len(run_store.in_progress_ids(conn, run_ids=given))
            for given in ([], ids, [*unknown, *ids, *unknown])
        ]
        renewed = driver.ForEach(
            "UPDATE runs SET lease_expires_at = ? WHERE lease_owner = ?"
            " AND status = 'in_progress' AND id IN ??"
        ).run(conn, (77.0, "me"), [*unknown, *ids])
        rows = conn.execute(
            select(runs.c.id, runs.c.lease_owner, runs.c.lease_expires_at).where(runs.c.id.in_(ids))
        ).all()
        order = {r: i for i, r in enumerate(ids)}
        return found, renewed, sorted((tuple(r) for r in rows), key=lambda r: order[r[0]])

    found, renewed, rows = await db.write(write)
    assert found == [0, 2, 2]
    assert renewed == 1
    assert [(owner, lease) for _, owner, lease in rows] == [
        ("me", 77.0),
        ("other", None),
        ("me", None),
    ]


async def test_rows_inserted_together_are_all_stored_or_none(db: Database) -> None:
    """Rows inserted together (``driver.insert_rows``) are all stored, as the statement
    layer stores them; a row that breaks a constraint fails the insert with the statement
    layer's error, and none of its rows stays."""
    user_id = await new_user(db)

    def write(conn: Connection, count: int, clash: bool) -> list[str]:
        thread_id = _thread(conn, user_id)
        rows = [
            thread_store.new_message(thread_id=thread_id, seq=n, role="user", content=f"m{n}\x00")
            for n in range(1, count + 1)
        ]
        if clash:  # two messages at one place of the thread
            rows[-1] = thread_store.new_message(thread_id=thread_id, seq=1, role="user", content="")
        thread_store.insert_messages(conn, user_id=user_id, rows=rows)
        return [r.id for r in rows]

    ids = await db.write(write, 37, False)
    stored = await db.read(
        lambda conn: [
            tuple(r)
            for r in conn.execute(
                select(messages.c.id, messages.c.seq, messages.c.content)
                .where(messages.c.id.in_(ids))
                .order_by(messages.c.seq)
            )
        ]
    )
    assert stored == [(ids[n - 1], n, f"m{n}\ufffd") for n in range(1, 38)]
    before = await db.read(lambda conn: conn.execute(text("SELECT count(*) FROM messages")).one())
    with pytest.raises((IntegrityError, Conflict)):
        await db.write(write, 5, True)
    after = await db.read(lambda conn: conn.execute(text("SELECT count(*) FROM messages")).one())
    assert after == before


class _Tone(StrEnum):
    LOUD = "lo'ud"


#: Values as a turn's writes send them ahead, and the edges of their literals.
LITERALS: list[Any] = [
    "plain",
    "it's ''quoted''",
    "a\\b \\x41 \\'",
    "-- /* */ $$ $1 %s %% ;",
    "é 😀 \n\t\r",
    "",
    0,
    7,
    -7,
    2**70,
    -(2**70),
    1.5,
    -2.25,
    -0.0,
    1e300,
    float("inf"),
    float("-inf"),
    float("nan"),
    True,
    False,
    None,
    b"",
    b"\x00\xff'\\",
    _Tone.LOUD,
]

_CASTS = {str: "text", int: "numeric", float: "float8", bool: "boolean", bytes: "bytea"}


async def test_values_sent_ahead_as_text_read_back_as_they_were(db: Database) -> None:
    """On PostgreSQL a write sent ahead is bound as SQL text (``driver.bound``): every kind
    of value the writes hold reads back as it was, and one minus sign after another makes
    no comment."""
    if db.dialect != "postgresql":
        pytest.skip("values are bound as text on PostgreSQL only")

    def read(conn: Connection) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        casts = [_CASTS.get(type(v), "text") for v in LITERALS]
        sql = "SELECT " + ", ".join(f"%s::{c}" for c in casts)
        minus = "SELECT 1 -%s, 1 -%s::float8"  # "1 --7" would be 1 and a comment
        found = []
        for statement, values in ((sql, LITERALS), (minus, [-7, -2.5])):
            bound = driver.bound(conn, statement, values)
            assert bound is not None
            found.append(conn.connection.driver_connection.execute(bound).fetchone())  # type: ignore[union-attr]
        return tuple(found[0]), tuple(found[1])

    got, minus = await db.read(read)
    assert minus == (8, 3.5)
    for want, value in zip(LITERALS, got, strict=True):
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(value)
        elif isinstance(want, float):
            assert value == want and math.copysign(1, value) == math.copysign(1, want)
        elif isinstance(want, int) and not isinstance(want, bool):
            assert value == want and int(value) == want
        else:
            assert value == want, want


async def test_values_not_bound_as_text_go_to_psycopg(db: Database) -> None:
    """A value the quick binding does not write (U+0000, a kind it does not know), and a
    statement with psycopg's own escapes, are left to psycopg's binding: its refusal of
    U+0000 is the statement layer's error, as for any write."""
    if db.dialect != "postgresql":
        pytest.skip("values are bound as text on PostgreSQL only")
    user_id = await new_user(db)

    def check(conn: Connection) -> None:
        assert driver.bound(conn, "SELECT %s", ["a\x00b"]) is None
        assert driver.bound(conn, "SELECT %s", [datetime.now(UTC)]) is None
        assert driver.bound(conn, "SELECT '%%', %s", [1]) is None
        assert driver.bound(conn, "SELECT %s, %s", [1]) is None
        assert driver.bound(conn, "SELECT %s", [1]) == "SELECT 1"

    await db.read(check)

    def write(conn: Connection) -> None:
        send_ahead(conn)
        statement = driver.Statement("UPDATE users SET name = ? WHERE id = ?")
        statement.run(conn, ["a\x00b", user_id])

    with pytest.raises(DataError):
        await db.write(write)
