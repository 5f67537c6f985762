"""The web app's own tools: Python functions run by the app itself.

    tools = default_tools()                      # current_time, calculator

    @tools.tool(description="Look up a word in the glossary.")
    def glossary(word: str) -> str:
        ...

``default_tools`` fills the SDK's ``ToolRegistry`` (``parley.sdk.tools``): a decorated
function's schema comes from its signature unless ``parameters=`` gives one;
``definitions()`` is what the assistant is given; ``execute(name, arguments)`` runs a call
and answers ``(output, is_error)``: a tool that raises sends ``"Error: <message>"`` back to
the model.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from parley.sdk.tools import ToolRegistry
from parley.web.calculator import evaluate, format_number

__all__ = ["calculator", "current_time", "default_tools"]


# ------------------------------------------------------------------------- built-ins

#: What a time zone argument looks like: ``UTC``, ``GMT`` or an IANA ``Area/Location`` name.
#: Models read it as a hint; the demo model fills the argument only with text that matches.
_ZONE_PATTERN = r"^(?:UTC|GMT|[A-Z][A-Za-z_]*(?:/[A-Za-z0-9_+-]+)+)$"
#: The characters of the calculator's arithmetic (``evaluate`` still checks the expression).
_EXPRESSION_PATTERN = r"^[-+*/%().0-9\s]+$"


def current_time(timezone: str = "UTC") -> str:
    """The current date and time in an IANA time zone (``Europe/Paris``; ``UTC`` if none).

    Raises:
        ValueError: an unknown time zone.
    """
    key = timezone.strip() or "UTC"
    try:
        if len(key) > 64:
            raise ValueError(key)
        zone = ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"unknown time zone {key[:64]!r}; use an IANA name such as Europe/Paris or UTC"
        ) from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now:%A}, {key}, {now.tzname()})"


def calculator(expression: str) -> str:
    """The value of an arithmetic expression (+ - * / // % ** and parentheses)."""
    return format_number(evaluate(expression))


def default_tools() -> ToolRegistry:
    """A new registry with the two built-in tools, ``current_time`` and ``calculator``."""
    tools = ToolRegistry()
    tools.register(
        current_time,
        description="The current date and time in an IANA time zone such as Europe/Paris.",
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, for example Europe/Paris (default UTC)",
                    "pattern": _ZONE_PATTERN,
                }
            },
        },
    )
    tools.register(
        calculator,
        description="Evaluate an arithmetic expression: numbers, + - * / // % ** and "
        "parentheses, for example (2 + 3) * 4.",
        parameters={
            "type": "object",
            "properties": {
                "expression": {
                    "type": "string",
                    "description": "the arithmetic expression",
                    "pattern": _EXPRESSION_PATTERN,
                }
            },
            "required": ["expression"],
        },
    )
    return tools
