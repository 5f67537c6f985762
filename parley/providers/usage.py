"""What the adapters share in reading token counts: the detail counts (reasoning and cached
tokens), and the ``UsagePart`` that keeps each detail within its total.

A provider's totals are checked strictly by its adapter (a count that is not an integer is
a malformed answer); its details are read leniently: a detail that is missing, null or not
a count says nothing (0), and never fails a turn.
"""

from __future__ import annotations

from typing import Any

from parley.events import UsagePart


def detail(counts: Any, key: str) -> int:
    """The count ``counts[key]`` when ``counts`` is an object holding a positive integer
    there; else 0."""
    value = counts.get(key) if isinstance(counts, dict) else None
    return value if type(value) is int and value > 0 else 0


def usage_part(
    input_tokens: int, output_tokens: int, *, reasoning_tokens: int = 0, cached_tokens: int = 0
) -> UsagePart:
    """A ``UsagePart`` whose details are part of their totals: a provider that says more
    reasoning than output (or more cached than input) is not believed past the total."""
    return UsagePart(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        reasoning_tokens=min(reasoning_tokens, output_tokens),
        cached_tokens=min(cached_tokens, input_tokens),
    )
