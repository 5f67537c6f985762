"""A chunk of a file's text: what chunking makes (``parley.retrieval.chunking``) and the
chunk index holds (``parley.store.index``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Chunk"]


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk: its place among the chunks, its text, where it is in the whole text
    (``start`` included, ``end`` excluded) and its tokens by the approximation."""

    index: int
    text: str
    start: int
    end: int
    tokens: int
