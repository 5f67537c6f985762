"""An Assistants run whose server died mid-answer reads ``incomplete`` (``interrupted``),
and so do its parts: the step that was writing reads ``incomplete``, not ``failed``, and
its message ``incomplete`` for the same reason, not ``run_failed``. A dedicated server
(short lease, fast sweep) that the test kills (-9) and starts again on the same database."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from parley.testing.fake_upstream import expected_text
from tests.e2e.helpers import guarded, wait_until
from tests.e2e.test_assistants_api import assistant, thread
from tests.harness import ParleyServer, restartable_server


@pytest.fixture(scope="module")
def restartable(upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParleyServer]:
    yield from restartable_server(upstream.base_url, tmp_path_factory.mktemp("interrupted"))


def test_the_step_and_message_of_an_interrupted_run_read_incomplete(
    restartable: ParleyServer, upstream: Any
) -> None:
    log_start = len(restartable.log())
    with guarded(restartable.client(restartable.new_user())) as http:
        bot = assistant(http, "fake/stall:3")
        t = thread(http, "hello")
        run = http.post(f"/threads/{t['id']}/runs", json={"assistant_id": bot["id"]}).json()
        path = f"/threads/{t['id']}"

        def checkpointed() -> bool:
            listed = http.get(f"{path}/messages", params={"order": "asc"}).json()["data"]
            parts = listed[-1]["content"] if listed[-1]["role"] == "assistant" else []
            return bool(parts) and parts[0]["text"]["value"] == expected_text(3)

        wait_until(checkpointed, 5, "the streamed text to be checkpointed")
        restartable.kill()
        wait_until(lambda: upstream.active_streams == 0, 5, "the upstream connection to close")
        restartable.start()

        def ended() -> dict[str, Any] | None:
            read = http.get(f"{path}/runs/{run['id']}").json()
            return read if read["status"] == "incomplete" else None

        read = wait_until(ended, 10, "the run to become incomplete")
        assert read["incomplete_details"] == {"reason": "interrupted"}, read
        assert read["last_error"] is None and read["failed_at"] is None, read

        [step] = http.get(f"{path}/runs/{run['id']}/steps").json()["data"]
        assert step["type"] == "message_creation", step
        assert step["status"] == "incomplete", step
        assert step["failed_at"] is None and step["last_error"] is None, step
        same = http.get(f"{path}/runs/{run['id']}/steps/{step['id']}").json()
        assert same["status"] == "incomplete", same

        message_id = step["step_details"]["message_creation"]["message_id"]
        message = http.get(f"{path}/messages/{message_id}").json()
        assert message["status"] == "incomplete", message
        assert message["incomplete_details"] == {"reason": "interrupted"}, message
        assert message["incomplete_at"] is not None and message["completed_at"] is None, message
    restartable.assert_clean_log(log_start)
