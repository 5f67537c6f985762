"""A run's output token budget: the output tokens all of its model calls may use together.

A face sets it as the run option ``output_budget`` (the Assistants API's
``max_completion_tokens``), beside ``truncation`` (``engine.context``). Each model call of
the run is sent what is left of it as ``max_tokens``: the budget less the output tokens of
the run's earlier calls, or the run's own ``max_tokens`` parameter when that is lower. A
run with nothing left when its next call would start (after tool outputs, say) ends
``incomplete`` without calling the model, as an answer cut at its limit ends it.
"""

from __future__ import annotations

from typing import Any

#: The run option (``runs.options``) that holds the budget.
OUTPUT_BUDGET = "output_budget"


def budget_left(options: dict[str, Any] | None, used: int) -> int | None:
    """The output tokens a run may still use, its calls having used ``used``; None for a
    run without a budget."""
    budget = (options or {}).get(OUTPUT_BUDGET)
    if budget is None:
        return None
    return max(0, int(budget) - used)


def call_parameters(
    parameters: dict[str, Any], options: dict[str, Any] | None, used: int
) -> dict[str, Any]:
    """The parameters of a run's next model call: ``parameters``, with ``max_tokens`` at
    most what is left of the budget."""
    sent = dict(parameters)
    left = budget_left(options, used)
    if left is not None:
        own = sent.get("max_tokens")
        sent["max_tokens"] = min(own, left) if isinstance(own, int) else left
    return sent
