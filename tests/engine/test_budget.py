"""``engine.budget``: what a run's ``output_budget`` option leaves each model call."""

from __future__ import annotations

from parley.engine.budget import budget_left, call_parameters


def test_a_run_without_a_budget_sends_its_parameters_unchanged() -> None:
    parameters = {"temperature": 0.5, "max_tokens": 100}
    assert budget_left(None, 10) is None and budget_left({"truncation": {}}, 10) is None
    assert call_parameters(parameters, {"truncation": {}}, 1_000) == parameters


def test_each_call_gets_what_the_earlier_calls_left() -> None:
    options = {"output_budget": 50}
    assert budget_left(options, 0) == 50 and budget_left(options, 20) == 30
    assert budget_left(options, 50) == 0 and budget_left(options, 70) == 0
    assert call_parameters({"temperature": 1}, options, 20) == {"temperature": 1, "max_tokens": 30}


def test_the_runs_own_max_tokens_holds_when_it_is_lower() -> None:
    options = {"output_budget": 50}
    assert call_parameters({"max_tokens": 10}, options, 0) == {"max_tokens": 10}
    assert call_parameters({"max_tokens": 10}, options, 45) == {"max_tokens": 5}
    parameters = {"max_tokens": 10}
    call_parameters(parameters, options, 45)
    assert parameters == {"max_tokens": 10}  # a copy: the run's own are left alone
