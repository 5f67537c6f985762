"""Retrieval: files to text (``extract``), text to chunks (``chunking``).

    from parley.retrieval import Extractor, chunk

    async with Extractor() as extractor:
        extracted = await extractor.extract(data, "report.pdf", "application/pdf")
    chunks = chunk(extracted.text, max_tokens=800, overlap=400)

Below the engine and the server, above the store, whose chunk index (``parley.store.index``)
holds the chunks it makes. ``docs/retrieval.md`` says which files are read and how.
"""

from __future__ import annotations

from parley.retrieval.chunking import (
    Chunk,
    ChunkingStrategy,
    chunk,
    count_tokens,
    parse_chunking_strategy,
)
from parley.retrieval.extract import (
    Extracted,
    ExtractionFailed,
    Extractor,
    Kind,
    Limits,
    Reason,
    UnsupportedFile,
    extract,
)

__all__ = [
    "Chunk",
    "ChunkingStrategy",
    "Extracted",
    "ExtractionFailed",
    "Extractor",
    "Kind",
    "Limits",
    "Reason",
    "UnsupportedFile",
    "chunk",
    "count_tokens",
    "extract",
    "parse_chunking_strategy",
]
