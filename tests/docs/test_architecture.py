"""docs/architecture.md says what the code is: its layers are those ``tests/test_layers.py``
enforces, and its tables of the engine's interface name every public call, and only those."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import parley
from parley.engine import Engine, TurnHandle
from tests.test_layers import LAYERS

DOC = (Path(__file__).resolve().parents[2] / "docs/architecture.md").read_text()
LIFESPAN = {"start", "stop"}


def _public(cls: type) -> set[str]:
    return {name for name, _ in inspect.getmembers(cls) if not name.startswith("_")}


def _table_names(header: str) -> set[str]:
    """The names in backquotes in the first cell of each row of the table under ``header``."""
    table = DOC[DOC.index(header) :].split("\n\n")[0]
    rows = table.splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`(?:await )?(\w+)", row.split(" | ")[0])}


def test_the_picture_puts_every_module_in_its_layer() -> None:
    picture = DOC[DOC.index("## Layers") : DOC.index("- **vocabulary**")]
    for module, layer in LAYERS.items():
        (line,) = [ln for ln in picture.splitlines() if ln.startswith(f" layer {layer} ")]
        names = line.split("   the ")[0].split()[2:]  # not the words of a description
        assert module in names, (module, layer, line)


def test_the_engine_table_names_every_public_call() -> None:
    assert _table_names("| call | what it does |") == _public(Engine) - LIFESPAN
    assert all(f"`{name}()`" in DOC for name in LIFESPAN)


def test_the_handle_table_names_every_public_member() -> None:
    assert _table_names("| `TurnHandle` | |") - {"TurnHandle"} == _public(TurnHandle)


def test_the_faces_picture_names_every_face_and_module() -> None:
    """The picture of the server's faces shows each face's modules in its column, the
    kit's in its row, and the shared services' in theirs: nothing more, nothing less."""
    picture = DOC[DOC.index("## The server's faces") :].split("```")[1]
    rows = picture.splitlines()
    heads = rows[1].split()
    assert heads == ["native", "assistants", "responses", "chat"]
    cells: dict[str, set[str]] = {face: set() for face in heads}
    band = ""
    shown: dict[str, set[str]] = {"kit": set(), "server": set()}
    for row in rows[2:]:
        label, _, rest = row.partition("│")
        band = label.strip() or band
        if band == "faces":
            for face, cell in zip(heads, rest.split("│"), strict=False):
                cells[face] |= set(cell.split())
        elif band in shown:
            shown[band] |= set(rest.replace("│", " ").split())
    server = Path(parley.__file__).parent / "server"
    for face in heads:
        assert cells[face] == _modules(server / "faces" / face), face
    assert shown["kit"] == _modules(server / "faces" / "kit")
    assert shown["server"] == _modules(server)


def _modules(folder: Path) -> set[str]:
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
