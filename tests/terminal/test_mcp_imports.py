"""Parley uses the MCP SDK through its public modules only: a private one (a ``_`` name
anywhere in the dotted path) may change or go in any release, whatever ``pyproject.toml``
allows."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import parley

PACKAGE = Path(parley.__file__).parent
_MODULE_NAME = re.compile(r"mcp(\.\w+)+")


def _private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "mcp" and any(part.startswith("_") for part in parts[1:])


def mcp_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """``(line, module)`` for each MCP module ``tree`` imports: ``import``, ``from … import``
    (the names imported, which may be modules too) and module names in string constants (for
    ``importlib.import_module``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_NAME.fullmatch(node.value)
        ):
            yield node.lineno, node.value


def test_no_private_module_of_the_mcp_sdk_is_imported() -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module in mcp_modules(ast.parse(path.read_text(encoding="utf-8")))
        if _private(module)
    ]
    assert not found, "private MCP SDK modules imported:\n" + "\n".join(found)


def test_the_scan_sees_each_way_of_importing() -> None:
    source = (
        "import mcp.shared._httpx_utils\n"
        "from mcp.shared._httpx_utils import create_mcp_http_client\n"
        "from mcp.shared import _httpx_utils\n"
        "importlib.import_module('mcp.shared._httpx_utils')\n"
        "from mcp import Client, types\n"
    )
    private = [line for line, module in mcp_modules(ast.parse(source)) if _private(module)]
    assert sorted(set(private)) == [1, 2, 3, 4]
