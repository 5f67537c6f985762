from __future__ import annotations

from parley.engine.states import TRANSITIONS, can_move, sources_of
from parley.types import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(RunStatus)


def test_terminal_states_are_never_left_and_active_ones_can_end() -> None:
    for status in TERMINAL_STATUSES:
        assert TRANSITIONS[status] == frozenset()
    for status in ACTIVE_STATUSES:
        assert TRANSITIONS[status] & TERMINAL_STATUSES


def test_the_tool_loop_is_a_cycle_through_queued() -> None:
    assert can_move(RunStatus.QUEUED, RunStatus.IN_PROGRESS)
    assert can_move(RunStatus.IN_PROGRESS, RunStatus.ACTION_REQUIRED)
    assert can_move(RunStatus.ACTION_REQUIRED, RunStatus.QUEUED)
    assert not can_move(RunStatus.ACTION_REQUIRED, RunStatus.IN_PROGRESS)
    assert not can_move(RunStatus.COMPLETED, RunStatus.QUEUED)


def test_only_a_running_turn_can_be_incomplete_and_only_a_wait_can_expire() -> None:
    assert sources_of(RunStatus.INCOMPLETE) == {RunStatus.IN_PROGRESS}
    assert sources_of(RunStatus.EXPIRED) == {RunStatus.ACTION_REQUIRED}
