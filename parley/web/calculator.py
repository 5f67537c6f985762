"""Safe arithmetic for the ``calculator`` tool: Python's ``ast`` of the expression, walked.

Allowed: int and float literals, ``+ - * / // % **``, unary ``+``/``-`` and parentheses.
Everything else (names, calls, attributes, subscripts, comparisons, strings, ...) is refused
before anything is computed. ``eval`` is never used. Sizes are bounded: the expression's
length, the exponent of ``**``, and the size of every intermediate result, so no input can
make the app compute for long or fill its memory.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

__all__ = ["MAX_EXPONENT", "MAX_LENGTH", "CalculatorError", "evaluate", "format_number"]

#: Longest expression accepted, in characters.
MAX_LENGTH = 200
#: Largest absolute exponent of ``**``.
MAX_EXPONENT = 1000
#: Largest integer result, in bits (about 1,200 decimal digits).
MAX_INT_BITS = 4000

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_ALLOWED = "numbers, + - * / // % **, unary minus and parentheses"


class CalculatorError(ValueError):
    """The expression is not allowed or cannot be computed; the message says why."""


def evaluate(expression: str) -> Number:
    """The value of an arithmetic expression.

    Raises:
        CalculatorError: not arithmetic, too long or too large, or a division by zero.
    """
    text = expression.strip()
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_LENGTH:
        raise CalculatorError(f"the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise CalculatorError(f"not an arithmetic expression (allowed: {_ALLOWED})") from None
    return _value(tree.body)


def format_number(value: Number) -> str:
    """A result as text: integers exactly, floats to 15 significant digits."""
    if isinstance(value, int):
        return str(value)
    return format(value, ".15g")


def _value(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return _checked(node.value)
        raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_value(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _binary(node.op, _value(node.left), _value(node.right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        raise CalculatorError("^ is not a power here: use ** (2 ** 8)")
    raise CalculatorError(f"{_describe(node)} is not allowed (allowed: {_ALLOWED})")


def _binary(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Pow):
        _check_power(left, right)
    try:
        result = _BINARY[type(op)](left, right)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("the result is too large") from None
    if isinstance(result, complex):  # (-8) ** 0.5
        raise CalculatorError("the result is not a real number")
    return _checked(result)


def _check_power(base: Number, exponent: Number) -> None:
    if abs(exponent) > MAX_EXPONENT:
        raise CalculatorError(f"exponents are limited to ±{MAX_EXPONENT}")
    if not (isinstance(base, int) and isinstance(exponent, int)):
        return  # a float power overflows into OverflowError, caught by the caller
    if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
        raise CalculatorError("the result is too large")


def _checked(value: Number) -> Number:
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            raise CalculatorError("the result is too large")
    elif not math.isfinite(value):
        raise CalculatorError("the result is too large")
    return value


def _describe(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return f"the name {node.id!r}"
    if isinstance(node, ast.Call):
        return "a function call"
    if isinstance(node, ast.Attribute):
        return "an attribute"
    if isinstance(node, ast.BinOp | ast.UnaryOp | ast.BoolOp | ast.Compare):
        return "this operator"
    return f"a {type(node).__name__.lower()}"
