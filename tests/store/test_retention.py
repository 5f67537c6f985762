"""Pruning finished runs' event logs (``store.retention``), on SQLite or PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from parley.engine.pruning import pruned_ending
from parley.store import retention
from parley.store import runs as run_store
from parley.store import threads as thread_store
from parley.store.db import Database, now
from parley.store.tables import messages, run_events, runs
from tests.store.conftest import new_run, new_user

DAY = 86400.0
EVENTS = 5


def _seed(
    conn: Connection,
    *,
    user_id: str,
    status: str,
    ended: float | None = None,
    paused: float | None = None,
) -> str:
    """A run of its own thread with a user message and ``EVENTS`` logged events."""
    thread = thread_store.create_thread(conn, user_id=user_id, metadata={}, message_count=1)
    message = thread_store.new_message(thread_id=thread.id, seq=1, role="user", content="hi")
    thread_store.insert_messages(conn, user_id=user_id, rows=[message])
    run = new_run(conn, user_id, thread.id, status)
    logged = [(seq, "content.delta", '{"text": "x"}') for seq in range(1, EVENTS + 1)]
    run_store.append_events(conn, run_id=run.id, events=logged)
    run_store.update_run(conn, run_id=run.id, completed_at=ended, paused_at=paused, last_seq=EVENTS)
    return run.id


def _counts(conn: Connection) -> dict[str, int]:
    """Events per run."""
    query = select(run_events.c.run_id).distinct()
    return {
        run_id: len(run_store.read_events(conn, run_id=run_id, after=0))
        for run_id in conn.execute(query).scalars()
    }


async def _seeded(
    db: Database, user: str, *specs: tuple[str, float | None, float | None]
) -> list[str]:
    def seed(conn: Connection) -> list[str]:
        return [
            _seed(conn, user_id=user, status=status, ended=ended, paused=paused)
            for status, ended, paused in specs
        ]

    return await db.write(seed)


async def test_prunes_only_old_finished_runs(db: Database) -> None:
    user = await new_user(db)
    old, recent = now() - 8 * DAY, now() - 60
    finished = ["completed", "failed", "cancelled", "expired", "incomplete"]
    pruned_ids = await _seeded(db, user, *[(s, old, None) for s in finished])
    kept_ids = await _seeded(
        db,
        user,
        ("completed", recent, None),  # ended, but within the retention period
        ("action_required", None, old),  # paused long ago: its log must stay
        ("in_progress", None, None),
        ("queued", None, None),
    )
    before = now() - 7 * DAY

    assert await db.read(retention.count_prunable, before=before) == (
        retention.Pruned(runs=5, events=5 * EVENTS)
    )
    pruned = await db.write(retention.prune_event_logs, before=before)
    assert pruned == retention.Pruned(runs=5, events=5 * EVENTS)

    counts = await db.read(_counts)
    assert not any(run_id in counts for run_id in pruned_ids)
    assert all(counts[run_id] == EVENTS for run_id in kept_ids)
    rows = await db.read(
        lambda c: {r.id: r for r in c.execute(select(runs)).all()}  # every run is kept
    )
    assert set(rows) == {*pruned_ids, *kept_ids}
    assert all(rows[r].events_pruned_at is not None for r in pruned_ids)
    assert all(rows[r].events_pruned_at is None for r in kept_ids)
    assert all(rows[r].status == s for r, s in zip(pruned_ids, finished, strict=True))
    kept_messages = await db.read(
        lambda c: c.execute(select(func.count()).select_from(messages)).scalar_one()
    )
    assert kept_messages == 9

    again = await db.write(retention.prune_event_logs, before=before)
    assert again == retention.Pruned()  # idempotent
    assert await db.read(retention.count_prunable, before=before) == (retention.Pruned())


async def test_prunes_in_batches_oldest_first(db: Database) -> None:
    user = await new_user(db)
    t = now() - 10 * DAY
    ids = await _seeded(db, user, *[("completed", t + i, None) for i in range(5)])
    before = now() - DAY
    sizes = []
    for _ in range(4):
        sizes.append((await db.write(retention.prune_event_logs, before=before, limit=2)).runs)
        if len(sizes) == 1:  # the two that ended first went first
            left = await db.read(_counts)
            assert set(left) == set(ids[2:])
    assert sizes == [2, 2, 1, 0]
    assert await db.read(_counts) == {}


@pytest.mark.parametrize(
    ("status", "error", "after", "expected"),
    [
        ("completed", None, 0, ["run.status", "done"]),
        ("failed", "upstream_error", 0, ["error", "run.status", "done"]),
        ("incomplete", "max_output_tokens", 0, ["error", "run.status", "done"]),
        ("completed", None, 11, ["done"]),
        ("completed", None, 12, []),
    ],
)
async def test_a_pruned_log_ends_with_the_runs_end(
    db: Database, status: str, error: str | None, after: int, expected: list[str]
) -> None:
    user = await new_user(db)
    (run_id,) = await _seeded(db, user, (status, now() - DAY, None))
    await db.write(
        lambda c: run_store.update_run(
            c, run_id=run_id, last_seq=12, error_code=error, error_message=error and "oops"
        )
    )
    await db.write(retention.prune_event_logs, before=now())
    run = await db.read(run_store.get_run, run_id=run_id)

    entries = pruned_ending(run, after=after)

    assert [kind for _, kind, _ in entries] == expected
    assert [seq for seq, _, _ in entries] == list(range(13 - len(expected), 13))
    if entries:
        done = entries[-1][2]
        assert f'"status":"{status}"' in done
        reason = error if status == "incomplete" else None
        assert (f'"reason":"{reason}"' if reason else '"reason":null') in done
