"""A Parley server for the file_search tests, and the test data: vector stores whose chunk
index is filled directly (``create_vector_store`` + ``index.add_chunks``), so that the
search does not wait for the ingestion worker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import openai

from parley.retrieval.chunking import Chunk
from parley.store import index, users, vector_stores
from parley.store.db import Database

#: The passage the tests search for, and its file.
OWLS = "Owls hunt at night: their soft feathers make their flight silent."
OWLS_FILE = "owls.txt"
#: Another user's passage, with the same words.
THEIRS = "Owls hunt at night, says the other user's secret notebook."


async def user_id_of(db: Database, key: str) -> str:
    owner = await db.read(users.find_key, key_hash=users.hash_key(key))
    assert owner is not None
    return owner.user.id


async def upload(http: httpx.AsyncClient, filename: str, text: str) -> str:
    """A file of the user of ``http`` (``POST /v1/files``); its id."""
    answer = await http.post(
        "/files",
        files={"file": (filename, text.encode(), "text/plain")},
        data={"purpose": "assistants"},
    )
    assert answer.status_code in (200, 201), answer.text
    return str(answer.json()["id"])


async def indexed_store(
    db: Database, http: httpx.AsyncClient, user_id: str, filename: str, text: str
) -> tuple[str, str]:
    """A vector store of the user holding one file (uploaded) whose one chunk is ``text``,
    indexed by its words: ``(store id, file id)``."""
    file_id = await upload(http, filename, text)
    store = await db.write(vector_stores.create_vector_store, user_id=user_id, name="tests")
    chunk = Chunk(index=0, text=text, start=0, end=len(text), tokens=len(text.split()))
    await db.write(
        index.add_chunks,
        user_id=user_id,
        vector_store_id=store.id,
        file_id=file_id,
        chunks=[chunk],
        attributes={"topic": "birds"},
    )
    return store.id, file_id


@dataclass
class Library:
    """The server, a user's HTTP client and SDK, their store, and another user's store."""

    http: httpx.AsyncClient
    sdk: openai.AsyncOpenAI
    db: Database
    store_id: str
    file_id: str
    other_store_id: str
    other_http: httpx.AsyncClient
    upstreams: dict[str, Any]
    #: The test MCP server (``RecordingMCP``) and its URL.
    mcp: Any
    mcp_url: str


def file_search_tool(store_id: str, **more: Any) -> dict[str, Any]:
    return {"type": "file_search", "vector_store_ids": [store_id], **more}
