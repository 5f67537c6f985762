"""Text to overlapping chunks of about ``max_tokens`` tokens, as OpenAI's static chunking.

    chunks = chunk(text, max_tokens=800, overlap=400)   # OpenAI's defaults, also ``auto``

A window of ``max_tokens`` tokens slides over the text by ``max_tokens - overlap`` tokens;
each chunk keeps its character offsets, ``text[c.start:c.end] == c.text``. The last chunk
ends with the text, so it may be shorter; a text of at most ``max_tokens`` tokens is one
chunk, and a text without tokens (empty, or only spaces) none.

Tokens are counted offline by an approximation of OpenAI's BPE tokenizers (``o200k_base``
and ``cl100k_base``); no tokenizer file is needed. A regular expression splits the text
into runs, each charged:

    run                                    tokens           as a BPE tokenizer mostly does
    ASCII letters                          1 per 8          a common word is one token
    digits                                 1 per 3          numbers go by groups of three
    CJK, kana or hangul character          1 each
    other letters (accented, Cyrillic...)  1 per 5
    punctuation and symbols                1 per 5          runs of them merge
    whitespace                             1 per 8 (a run of fewer is free)

The weights were fitted on English prose, Python, YAML, French, German and Russian against
``o200k_base``: on each the count is within 10 % (15 % on French, 40 % more on Chinese),
about 3.7 characters a token on English prose.

A run worth several tokens is cut into pieces of that many characters, so a chunk may end
inside a long word or a line without spaces, as a real tokenizer's would. ``count_tokens`` gives the
same count. How close it comes to a real tokenizer: ``docs/retrieval.md``, "Chunks".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from parley.errors import InvalidRequest
from parley.store.chunks import Chunk

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_OVERLAP",
    "Chunk",
    "ChunkingStrategy",
    "chunk",
    "count_tokens",
    "parse_chunking_strategy",
]

DEFAULT_MAX_TOKENS = 800
DEFAULT_OVERLAP = 400
MIN_MAX_TOKENS = 100
MAX_MAX_TOKENS = 4096

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
#: One match, one token: a run longer than a token's worth gives several matches.
_TOKENS = re.compile(
    r"[A-Za-z]{1,8}"
    r"|\d{1,3}"
    rf"|[{_CJK}]"
    rf"|[^\W\d_A-Za-z{_CJK}]{{1,5}}"
    r"|(?:[^\w\s]|_){1,5}"
    r"|\s{8}"
)


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """A static chunking strategy; ``auto`` is OpenAI's defaults, 800 and 400."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    overlap: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        _validate(self.max_tokens, self.overlap)

    def to_dict(self) -> dict[str, Any]:
        """OpenAI's shape of the strategy of a vector store file."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_tokens,
                "chunk_overlap_tokens": self.overlap,
            },
        }


_PARAM = "chunking_strategy"


def _validate(max_tokens: int, overlap: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
        raise InvalidRequest(
            "'max_chunk_size_tokens' must be an integer",
            param=f"{_PARAM}.static.max_chunk_size_tokens",
        )
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise InvalidRequest(
            "'chunk_overlap_tokens' must be an integer",
            param=f"{_PARAM}.static.chunk_overlap_tokens",
        )
    if not MIN_MAX_TOKENS <= max_tokens <= MAX_MAX_TOKENS:
        raise InvalidRequest(
            f"'max_chunk_size_tokens' must be between {MIN_MAX_TOKENS} and {MAX_MAX_TOKENS}, "
            f"got {max_tokens}",
            param=f"{_PARAM}.static.max_chunk_size_tokens",
        )
    if overlap < 0:
        raise InvalidRequest(
            f"'chunk_overlap_tokens' must be 0 or more, got {overlap}",
            param=f"{_PARAM}.static.chunk_overlap_tokens",
        )
    if overlap > max_tokens // 2:
        raise InvalidRequest(
            f"'chunk_overlap_tokens' must not exceed half of 'max_chunk_size_tokens' "
            f"({max_tokens // 2} for {max_tokens}), got {overlap}",
            param=f"{_PARAM}.static.chunk_overlap_tokens",
        )


def parse_chunking_strategy(value: Mapping[str, Any] | None) -> ChunkingStrategy:
    """The strategy of a request's ``chunking_strategy``: absent or ``{"type": "auto"}``
    is the default; ``{"type": "static", "static": {"max_chunk_size_tokens",
    "chunk_overlap_tokens"}}`` is checked by OpenAI's rules (``InvalidRequest``)."""
    if value is None:
        return ChunkingStrategy()
    kind = value.get("type")
    if kind == "auto" and set(value) == {"type"}:
        return ChunkingStrategy()
    if kind == "static":
        static = value.get("static")
        if not isinstance(static, Mapping) or set(value) != {"type", "static"}:
            raise InvalidRequest(
                "a static chunking strategy needs 'static' with 'max_chunk_size_tokens' and "
                "'chunk_overlap_tokens'",
                param=f"{_PARAM}.static",
            )
        unknown = set(static) - {"max_chunk_size_tokens", "chunk_overlap_tokens"}
        missing = {"max_chunk_size_tokens", "chunk_overlap_tokens"} - set(static)
        if unknown or missing:
            name = sorted(unknown or missing)[0]
            what = "unknown parameter" if unknown else "missing required parameter"
            raise InvalidRequest(f"{what}: '{name}'", param=f"{_PARAM}.static.{name}")
        return ChunkingStrategy(static["max_chunk_size_tokens"], static["chunk_overlap_tokens"])
    raise InvalidRequest(
        "'chunking_strategy' must be {'type': 'auto'} or {'type': 'static', 'static': {...}}",
        param=_PARAM,
    )


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Where each token starts and ends in ``text``, by the approximation."""
    return [match.span() for match in _TOKENS.finditer(text)]


def count_tokens(text: str) -> int:
    """The tokens of ``text`` by the approximation."""
    return sum(1 for _ in _TOKENS.finditer(text))


def chunk(
    text: str, *, max_tokens: int = DEFAULT_MAX_TOKENS, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """``text`` cut into chunks of at most ``max_tokens`` tokens, each sharing ``overlap``
    tokens with the one before; limits as OpenAI's (``InvalidRequest`` otherwise)."""
    _validate(max_tokens, overlap)
    spans = _token_spans(text)
    total = len(spans)
    step = max_tokens - overlap
    chunks: list[Chunk] = []
    first = 0
    while first < total:
        last = min(first + max_tokens, total)
        start, end = spans[first][0], spans[last - 1][1]
        piece = text[start:end]
        if not piece.isspace():  # a window inside a long run of spaces holds no text
            chunks.append(
                Chunk(index=len(chunks), text=piece, start=start, end=end, tokens=last - first)
            )
        if last == total:
            break
        first += step
    return chunks
