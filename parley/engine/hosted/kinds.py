"""The registry of hosted tool kinds, by the entry ``type`` each serves (``KINDS``).

A new kind is one module implementing ``hosted.kind.Kind`` and one line here (or a
``register`` call, as the tests' ``echo`` kind makes): the toolbox, the stored records
and the faces' tables find it by its types.
"""

from __future__ import annotations

from parley.engine.hosted import code_interpreter, file_search, mcp, web_search
from parley.engine.hosted.kind import Kind
from parley.engine.hosted.records import RECORDS, Record

#: The kinds, in the order their functions are offered to the model.
ORDER: list[Kind] = [mcp.KIND, file_search.KIND, web_search.KIND, code_interpreter.KIND]
#: Each kind by the entry types it serves, and by its name (a stored mark's ``type``).
KINDS: dict[str, Kind] = {t: k for k in ORDER for t in k.types}
BY_NAME: dict[str, Kind] = {k.name: k for k in ORDER}


def register(kind: Kind, *records: type[Record]) -> None:
    """Add a kind, and the records it stores (``records.RECORDS``)."""
    ORDER.append(kind)
    KINDS.update({t: kind for t in kind.types})
    BY_NAME[kind.name] = kind
    RECORDS.update({r.type: r for r in records})


def unregister(kind: Kind, *records: type[Record]) -> None:
    """Take a ``register`` ed kind away again."""
    ORDER.remove(kind)
    for t in kind.types:
        KINDS.pop(t, None)
    BY_NAME.pop(kind.name, None)
    for r in records:
        RECORDS.pop(r.type, None)


def kind_named(name: str) -> Kind:
    """The kind of that name (a stored mark's ``type``). Raises ``KeyError``."""
    return BY_NAME[name]


def entry_types(name: str) -> frozenset[str]:
    """The entry types the kind of that name serves (``web_search`` has OpenAI's four)."""
    return BY_NAME[name].types


def chosen_functions() -> dict[str, tuple[str, str]]:
    """What a ``tool_choice`` naming a hosted entry type forces, by entry type: the function
    the model sees for its kind, and the one it sees when a client function has that name.
    A kind of many functions (an MCP server's) has none."""
    return {
        entry_type: (kind.function, kind.fallback)
        for entry_type, kind in KINDS.items()
        if kind.function is not None and kind.fallback is not None
    }
