"""Imports point one way: no module of ``parley`` imports from a layer above its own.

    cli                                   the commands
    server, terminal, web, embedded       the faces (and the embedded server's launcher)
    sdk, engine                           the client, and the run engine
    retrieval                             text out of files, chunks and their embeddings
    providers, store, mcp, files,         upstream adapters, the database (and its chunk
    sandbox, webhooks                     index), the MCP client, file bytes, code
                                          containers, and webhook deliveries
    events, types, config, errors,        the vocabulary, the one filter of control
    controls, wake                        characters, and the timed wait of the loops

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
    "cli": 6,
    "server": 5,
    "terminal": 5,
    "web": 5,
    "embedded": 5,
    "sdk": 4,
    "engine": 4,
    "retrieval": 3,
    "providers": 2,
    "store": 2,
    "mcp": 2,
    "files": 2,
    "sandbox": 2,
    "webhooks": 2,
    "guarded_http": 2,
    "events": 1,
    "types": 1,
    "config": 1,
    "errors": 1,
    "controls": 1,
    "wake": 1,
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


# ------------------------------------------------------------------- the server's faces

SERVER = ROOT / "server"
FACES = SERVER / "faces"
#: The shared parts under every face: no face imports another, the kit imports none.
KIT = "kit"


def _face(module: str) -> str | None:
    """The face (``native``, ``responses``, ..., or ``kit``) of a ``parley.server.faces.X``
    module name; None for any other module."""
    parts = module.split(".")
    if parts[:3] != ["parley", "server", "faces"] or len(parts) < 4:
        return None
    return parts[3]


def _server_modules() -> list[tuple[Path, str]]:
    return [
        (path, ".".join(("parley", *path.relative_to(ROOT).with_suffix("").parts)))
        for path in sorted(SERVER.rglob("*.py"))
    ]


def face_crossings() -> list[str]:
    """Imports from one face into another, from the kit into a face, and from the server's
    shared services into a face (only the app, which puts the faces together, may)."""
    problems = []
    for path, module in _server_modules():
        own = _face(module)
        for line, imported in _imports(path):
            other = _face(imported)
            if other in (None, KIT, own):
                continue
            if own is None and module == "parley.server.app":
                continue
            where = "the kit" if own == KIT else f"face {own}" if own else "a shared service"
            problems.append(f"{module}:{line}: {where} imports {imported}")
    return problems


def test_no_face_imports_another_and_the_kit_imports_none() -> None:
    assert face_crossings() == []


def test_the_face_check_sees_a_crossing() -> None:
    assert _face("parley.server.faces.chat.routes") == "chat"
    assert _face("parley.server.faces.kit.readers") == KIT
    assert _face("parley.server.faces") is None
    assert _face("parley.server.app") is None


def test_every_face_has_its_folder() -> None:
    folders = {p.name for p in FACES.iterdir() if (p / "__init__.py").exists()}
    assert folders == {
        "native",
        "assistants",
        "responses",
        "chat",
        "files",
        "vector_stores",
        "containers",
        "webhooks",
        KIT,
    }


def test_only_reads_modules_touch_sqlalchemy_in_the_server() -> None:
    """Queries live in each face's ``reads`` module (``kit/reads.py`` for shared ones): no
    route takes a connection."""
    touching = [
        str(path.relative_to(ROOT))
        for path, _ in _server_modules()
        if path.stem != "reads"
        and any(i == "sqlalchemy" or i.startswith("sqlalchemy.") for _, i in _imports(path))
    ]
    assert touching == []
