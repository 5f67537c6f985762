"""The requests of ``bench/local_model.py``, and what each reads from its answer.

Each takes the ``Side`` it is sent to (Parley, or the llama-server Parley runs, called
directly) and gives one ``Sample``: seconds, and counts, of one request. Every prompt
begins with a number of its own (``tagged``): llama-server keeps a prompt's state for the
next request that starts the same way, and without it the side asked second would skip
the prompt's work.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import httpx
import orjson
from known_answers import DOCUMENTS

from parley.providers import minilm
from parley.providers.base import ChatMessage, ModelOptions, ModelRequest
from parley.providers.constrained import constrained_request
from parley.providers.embeddings import EmbedRequest
from parley.providers.openai_chat import request_body
from parley.retrieval import chunking
from parley.retrieval.extract import extract
from parley.retrieval.ingest import EMBED_BATCH
from parley.types import Role, ToolSpec

SEED = 59
#: The chat model as llama-server serves it (``local/`` before it through Parley).
CHAT_MODEL = "smollm2-135m-instruct"
EMBEDDING_MODEL = "local/all-minilm-l6-v2"
PAGE_CHARS = 3000
POLL_SECONDS = 0.02
WEATHER = {
    "name": "get_weather",
    "description": "The weather now in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}
CITIES = ("Paris", "Oslo", "Lima", "Rome", "Cairo", "Quito", "Hanoi", "Perth")
#: One request's measured values: seconds, or counts.
Sample = dict[str, float]


@dataclass(slots=True)
class Side:
    """One way to the chat model: a client, a base URL, its headers, the model's name."""

    name: str
    http: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    model: str

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(f"{self.url}{path}", json=body, headers=self.headers)


class Failed(Exception):
    """A request that got no answer to measure (an HTTP error, an error in the stream)."""


# ----------------------------------------------------------------------------- prompts


_numbers = itertools.count(1000)


def tagged(text: str) -> str:
    """``text`` after a number no other request has."""
    return f"Request {next(_numbers)}. {text}"


def paragraphs() -> list[str]:
    """The handbook's paragraphs (``bench/known_answers.py``), without the headings."""
    return [
        part
        for document in DOCUMENTS.values()
        for part in document.split("\n\n")
        if not part.startswith("#")
    ]


def story_prompts() -> list[str]:
    """Prompts that ask for a long answer (about 100 tokens each, the template's with)."""
    ask = "Retell the text above as a long story, in your own words."
    return [f"{p}\n\n{ask}" for p in paragraphs()]


def pages_of(rng: random.Random, pages: int) -> str:
    """``pages`` pages of the handbook's sentences in a random order."""
    sentences = [s for p in paragraphs() for s in re.split(r"(?<=[.;]) ", p)]
    out: list[str] = []
    for _ in range(pages):
        page: list[str] = []
        while sum(len(s) + 1 for s in page) < PAGE_CHARS:
            page.append(rng.choice(sentences))
        out.append(" ".join(page))
    return "\n\n".join(out)


def weather_question(n: int) -> str:
    return tagged(f"What is the weather in {CITIES[n % len(CITIES)]}?")


# ---------------------------------------------------------------------- streaming chat


async def stream_chat(side: Side, prompt: str, args: argparse.Namespace) -> Sample:
    """One streamed answer: seconds to its first text, its tokens, seconds of its text."""
    body = {
        "model": side.model,
        "messages": [{"role": "user", "content": tagged(prompt)}],
        "max_tokens": args.max_tokens,
        "temperature": 0,
        "seed": SEED,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    began = perf_counter()
    first = last = 0.0
    pieces = 0
    tokens: int | None = None
    async for chunk in _chunks(side, body):
        if any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
            last = perf_counter()
            first = first or last
            pieces += 1
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    if not pieces:
        raise Failed(f"{side.name}: an answer without text")
    count = tokens if tokens is not None else pieces
    return {"ttft": first - began, "tokens": count, "decode": last - first, "pieces": pieces}


async def _chunks(side: Side, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of a streamed Chat Completions answer, to ``[DONE]``."""
    url = f"{side.url}/v1/chat/completions"
    try:
        async with side.http.stream("POST", url, json=body, headers=side.headers) as answer:
            if answer.status_code != 200:
                raise Failed(f"{side.name}: {answer.status_code} {(await answer.aread())[:500]!r}")
            async for line in answer.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = orjson.loads(line[6:])
                if chunk.get("error"):
                    raise Failed(f"{side.name}: {chunk['error']}")
                yield chunk
    except httpx.HTTPError as exc:
        raise Failed(f"{side.name}: {type(exc).__name__}: {exc}") from None


def tokens_per_s(sample: Sample) -> float | None:
    """The answer's pace after its first token (None: too short to tell)."""
    if sample["tokens"] < 2 or sample["decode"] <= 0:
        return None
    return (sample["tokens"] - 1) / sample["decode"]


async def chat_clients(
    side: Side, clients: int, stagger: float, args: argparse.Namespace
) -> list[Sample]:
    """``--requests`` streams from each of ``clients`` clients at once, each client
    starting ``stagger`` seconds after the one before. Started in the same instant, two
    clients stay in step (answers of the same length end together), both prompts are read
    at once, and which requests wait for another's prompt turns on milliseconds: the
    times to first token fall in two heaps, and their median jumps between them. Staggered
    by half an answer, each prompt is read while the other slot writes, as on a server
    whose requests come when they come."""
    prompts = story_prompts()

    async def client(number: int) -> list[Sample]:
        await asyncio.sleep(number * stagger)
        first = number * args.requests
        return [
            await stream_chat(side, prompts[(first + i) % len(prompts)], args)
            for i in range(args.requests)
        ]

    done = await asyncio.gather(*(client(n) for n in range(clients)))
    return [sample for samples in done for sample in samples]


# -------------------------------------------------------------------------- tool calls


def direct_tool_body(question: str, args: argparse.Namespace) -> dict[str, Any]:
    """What Parley sends the model for a ``required`` call of the one tool: its constrained
    request (``constrained_request``: the json_schema ``response_format`` and the
    instruction) as the Chat Completions adapter writes it."""
    request = ModelRequest(
        model=CHAT_MODEL,
        messages=[ChatMessage(role=Role.USER, content=question)],
        tools=[ToolSpec.model_validate({"type": "function", "function": WEATHER})],
        parameters={"temperature": 0, "seed": SEED, "max_tokens": args.tool_max_tokens},
        options=ModelOptions(tool_choice="required"),
    )
    sent, plan = constrained_request(request)
    assert plan is not None and not plan.answer
    return request_body(sent)


async def direct_tool_call(side: Side, n: int, args: argparse.Namespace) -> Sample:
    """The constrained request straight to llama-server, read to its end: whether its JSON
    is a call of the tool."""
    began = perf_counter()
    text: list[str] = []
    finish, tokens = None, 0
    async for chunk in _chunks(side, direct_tool_body(weather_question(n), args)):
        for choice in chunk.get("choices") or ():
            text.append((choice.get("delta") or {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
        tokens = (chunk.get("usage") or {}).get("completion_tokens", tokens)
    called = finish != "length" and _calls_weather("".join(text))
    return {"seconds": perf_counter() - began, "called": float(called), "tokens": tokens}


def _calls_weather(text: str) -> bool:
    """Whether a constrained answer is a call (or calls) of the tool."""
    try:
        answer = orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    calls = answer.get("calls", [answer]) if isinstance(answer, dict) else []
    return bool(calls) and all(c.get("tool") == WEATHER["name"] for c in calls)


async def chat_tool_call(side: Side, n: int, args: argparse.Namespace) -> Sample:
    """Through Parley's Chat Completions: whether the answer is the tool's call."""
    body = {
        "model": side.model,
        "messages": [{"role": "user", "content": weather_question(n)}],
        "tools": [{"type": "function", "function": WEATHER}],
        "tool_choice": "required",
        "max_tokens": args.tool_max_tokens,
        "temperature": 0,
        "seed": SEED,
    }
    began = perf_counter()
    answer = await _answer(side, "/v1/chat/completions", body)
    took = perf_counter() - began
    choice = answer["choices"][0]
    called = choice["finish_reason"] == "tool_calls" and bool(choice["message"].get("tool_calls"))
    tokens = answer["usage"]["completion_tokens"]
    return {"seconds": took, "called": float(called), "tokens": tokens}


async def responses_tool_call(side: Side, n: int, args: argparse.Namespace) -> Sample:
    """Through Parley's Responses: whether the response holds the tool's call (one cut
    short by ``max_output_tokens`` is ``incomplete``, the model's doing; a ``failed`` one
    is a failed request). The Responses API has no ``seed``."""
    body = {
        "model": side.model,
        "input": weather_question(n),
        "tools": [{"type": "function", **WEATHER}],
        "tool_choice": "required",
        "max_output_tokens": args.tool_max_tokens,
        "temperature": 0,
    }
    began = perf_counter()
    answer = await _answer(side, "/v1/responses", body)
    took = perf_counter() - began
    if answer.get("status") not in ("completed", "incomplete"):
        raise Failed(f"responses: {answer.get('status')}: {answer.get('error')}")
    called = any(item["type"] == "function_call" for item in answer["output"])
    tokens = (answer.get("usage") or {}).get("output_tokens", 0)
    return {"seconds": took, "called": float(called), "tokens": tokens}


async def _answer(side: Side, path: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        answer = await side.post(path, body)
    except httpx.HTTPError as exc:
        raise Failed(f"{path}: {type(exc).__name__}: {exc}") from None
    if answer.status_code != 200:
        raise Failed(f"{path}: {answer.status_code} {answer.text[:500]}")
    parsed: dict[str, Any] = answer.json()
    return parsed


# --------------------------------------------------------------------------- embedding


async def ingest(side: Side, database: Path, files: list[str], name: str) -> tuple[float, str]:
    """``files`` uploaded to Parley, then attached to a new store as one batch: the
    seconds from the batch's creation until every file is ``completed``, and the store's
    id. The wait reads the server's SQLite file, not its API: polling the API every few
    milliseconds took the server's time from the ingestion it measured (a third of the
    speed on a busy machine); the API says ``completed`` too at the end."""
    ids = []
    for number, text in enumerate(files):
        made = await side.http.post(
            f"{side.url}/v1/files",
            files={"file": (f"{name}-{number}.txt", text.encode(), "text/plain")},
            data={"purpose": "assistants"},
            headers=side.headers,
        )
        made.raise_for_status()
        ids.append(made.json()["id"])
    store = await _answer(side, "/v1/vector_stores", {"name": name})
    began = perf_counter()
    path = f"/v1/vector_stores/{store['id']}/file_batches"
    batch = await _answer(side, path, {"file_ids": ids})
    await _indexed(database, store["id"], len(ids))
    took = perf_counter() - began
    status = (await side.http.get(f"{side.url}{path}/{batch['id']}", headers=side.headers)).json()
    if status["status"] != "completed" or status["file_counts"]["completed"] != len(ids):
        raise Failed(f"ingestion: {status}")
    return took, str(store["id"])


async def _indexed(database: Path, store_id: str, files: int, within: float = 600.0) -> None:
    """Until none of the store's ``files`` is ``in_progress`` (read every 20 ms)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
            (done,) = conn.execute(
                "SELECT count(*) FROM vector_store_files "
                "WHERE vector_store_id = ? AND status != 'in_progress'",
                (store_id,),
            ).fetchone()
        if done == files:
            return
        await asyncio.sleep(POLL_SECONDS)
    raise Failed(f"ingestion: not done in {within:g} s")


def chunked(files: list[str]) -> list[list[str]]:
    """The chunks ingestion makes of ``files`` (a text file's text, the default
    strategy), made in this process for the model alone."""
    return [
        [piece.text for piece in chunking.chunk(extract(text.encode(), "f.txt", "text/plain").text)]
        for text in files
    ]


def stored_chunks(database: Path, store_id: str) -> list[list[str]]:
    """The store's chunk texts, file by file (in the order of the files' ids), each
    file's in order; each must have a MiniLM vector."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        (model,) = conn.execute(
            "SELECT embedding_model FROM vector_stores WHERE id = ?", (store_id,)
        ).fetchone()
        rows = conn.execute(
            "SELECT file_id, text, embedding_dim FROM chunks WHERE vector_store_id = ? "
            "ORDER BY file_id, seq",
            (store_id,),
        ).fetchall()
    if model != EMBEDDING_MODEL or any(dim != minilm.DIMENSIONS for _, _, dim in rows):
        raise Failed(f"the store was not embedded with {EMBEDDING_MODEL} ({model})")
    by_file: dict[str, list[str]] = {}
    for file_id, text, _ in rows:
        by_file.setdefault(file_id, []).append(text)
    return list(by_file.values())


async def embed_alone(texts: list[list[str]]) -> float:
    """Seconds the in-process model takes for ``texts``: a call per file and per 256
    chunks, as ingestion calls it."""
    model = minilm.shared()
    began = perf_counter()
    for pieces in texts:
        for start in range(0, len(pieces), EMBED_BATCH):
            part = pieces[start : start + EMBED_BATCH]
            await model.embed(EmbedRequest(model=minilm.MODEL_ID, inputs=part))
    return perf_counter() - began
