"""When the database refuses the end of a turn, the turn still ends: the run is ``failed``
with its closing events, and every follower gets ``error`` and ``done``. The refusal is the
database's own: a trigger on the runs table of the test's database, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from parley.store.db import normalise_url
from tests.e2e.helpers import check_turn, read_events, stream_process
from tests.harness import FreshDatabase, ParleyServer, free_port, provider_config

#: A model the fake upstream answers like ``text``; the trigger refuses to complete its runs.
REFUSED = "fake/refused-by-the-database"

SQLITE_TRIGGER = f"""
CREATE TRIGGER refuse_completion BEFORE UPDATE OF status ON runs
WHEN NEW.status = 'completed' AND NEW.model = '{REFUSED}'
BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END
"""
POSTGRES_FUNCTION = f"""
CREATE FUNCTION refuse_completion() RETURNS trigger AS $$
BEGIN
  IF NEW.status = 'completed' AND NEW.model = '{REFUSED}' THEN
    RAISE EXCEPTION 'refused by a test trigger';
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER refuse_completion BEFORE UPDATE ON runs
FOR EACH ROW EXECUTE FUNCTION refuse_completion()
"""


@pytest.fixture
def refusing(upstream: Any, tmp_path: Path) -> Iterator[ParleyServer]:
    db = FreshDatabase(tmp_path)
    srv = ParleyServer(
        database_url=db.url,
        workdir=tmp_path,
        config=provider_config(upstream.base_url, free_port()),
    ).start()  # migrated: the tables exist
    engine = create_engine(normalise_url(db.url))
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(text(SQLITE_TRIGGER))
        else:
            conn.execute(text(POSTGRES_FUNCTION))
            conn.execute(text(POSTGRES_TRIGGER))
    engine.dispose()
    yield srv
    srv.stop()
    db.drop()


def test_a_turn_whose_end_the_database_refuses_fails_with_done(refusing: ParleyServer) -> None:
    with refusing.client(refusing.new_user()) as http:
        bot = http.post("/assistants", json={"name": "r", "model": REFUSED}).json()
        turn = stream_process(http, assistant_id=bot["id"], content="hello")
        check_turn(turn.events)
        assert turn.types[-4:] == ["error", "usage", "run.status", "done"], turn.types
        error = next(e for e in turn.events if e.event == "error")
        assert error.data["code"] == "internal_error"
        assert turn.final_status == "failed"
        run = http.get(f"/runs/{turn.run_id}").json()
        assert run["status"] == "failed" and run["last_error"]["code"] == "internal_error"
        replay = read_events(http, f"/runs/{turn.run_id}/events")
        assert replay == turn.events  # the log holds what the client saw, closing included

        # without streaming: the answer says failed, never in_progress
        answer = http.post(
            "/process", json={"assistant_id": bot["id"], "content": "again", "stream": False}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "failed"
    assert "could not write the end of run" in refusing.log()


def test_other_turns_are_not_touched(refusing: ParleyServer) -> None:
    with refusing.client(refusing.new_user()) as http:
        bot = http.post("/assistants", json={"name": "ok", "model": "fake/text:3"}).json()
        turn = stream_process(http, assistant_id=bot["id"], content="hello")
        assert turn.final_status == "completed"
