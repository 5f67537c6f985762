"""``parley.engine``'s names (its ``__all__``) are the ones code outside the engine uses:
functions, classes and constants, not modules: not even a hosted tool's (a face reaches
the kinds through their interface, ``kind_named``, ``entry_types``, ``chosen_functions``)."""

from __future__ import annotations

import re
import types
from pathlib import Path

import parley
import parley.engine

ROOT = Path(parley.__file__).parent


def _outside_code() -> str:
    """The text of every Python file outside ``parley/engine``: the rest of the package,
    its tests and its benchmarks."""
    paths = [p for p in ROOT.rglob("*.py") if "engine" not in p.relative_to(ROOT).parts[:1]]
    paths += [*ROOT.parent.joinpath("tests").rglob("*.py")]
    paths += [*ROOT.parent.joinpath("bench").rglob("*.py")]
    return "\n".join(p.read_text() for p in paths)


def test_the_engine_exports_names_not_modules() -> None:
    exported = {
        name
        for name in parley.engine.__all__
        if isinstance(getattr(parley.engine, name), types.ModuleType)
    }
    assert exported == set()


def test_every_name_the_engine_exports_is_used_outside_it() -> None:
    code = _outside_code()
    unused = [
        name for name in parley.engine.__all__ if not re.search(rf"\b{re.escape(name)}\b", code)
    ]
    assert unused == []
