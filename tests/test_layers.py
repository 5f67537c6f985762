"""Imports point one way: no module of ``parley`` imports from a layer above its own.

    cli                                   the commands
    server, terminal, web, embedded       the faces (and the embedded server's launcher)
    sdk, engine                           the client, and the run engine
    providers, store                      upstream adapters, the database
    events, types, config, errors,        the vocabulary, and the one filter of control
    controls                              characters

Imports inside functions count too (deferred imports are still dependencies). The package
``__init__`` (lazy public names) and ``parley.testing`` (fakes for tests and benchmarks) stand
outside the stack.
"""

from __future__ import annotations

import ast
from pathlib import Path

import parley

ROOT = Path(parley.__file__).parent
LAYERS = {
    "cli": 5,
    "server": 4,
    "terminal": 4,
    "web": 4,
    "embedded": 4,
    "sdk": 3,
    "engine": 3,
    "providers": 2,
    "store": 2,
    "events": 1,
    "types": 1,
    "config": 1,
    "errors": 1,
    "controls": 1,
}


def _part(module: str) -> str | None:
    """The top part of a ``parley.X...`` module name (None outside parley's layers)."""
    if not module.startswith("parley."):
        return None
    top = module.split(".")[1]
    return top if top in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return found


def upward_imports() -> list[str]:
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("parley", *path.relative_to(ROOT).with_suffix("").parts))
        own = _part(module)
        if own is None:
            continue
        for line, imported in _imports(path):
            other = _part(imported)
            if other is not None and LAYERS[other] > LAYERS[own]:
                problems.append(f"{module}:{line} imports {imported} (a layer above {own})")
    return problems


def test_no_module_imports_from_a_layer_above() -> None:
    assert upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from parley.cli.serve import build_server\n")
    assert _imports(bad) == [(2, "parley.cli.serve")]
    assert LAYERS[_part("parley.cli.serve") or ""] > LAYERS["terminal"]


def test_the_engine_is_reached_through_its_interface_only() -> None:
    """Outside ``parley.engine``, code imports the package (``Engine``, ``TurnHandle``, ...),
    never one of its modules: a face cannot reach into a turn."""
    inside = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.relative_to(ROOT).parts[0] == "engine":
            continue
        inside += [
            f"{path.relative_to(ROOT)}:{line} imports {imported}"
            for line, imported in _imports(path)
            if imported.startswith("parley.engine.")
        ]
    assert inside == []
