"""What is wrong with one whole stream of each face (``bench/responses.py`` checks one per
chunk gap before it measures): the native ``POST /v1/process`` stream and the Responses
``POST /v1/responses`` stream of the same answer; and, with the ``openai`` package installed,
what its event models say about the Responses stream."""

from __future__ import annotations

import typing
from collections.abc import Iterable

import orjson


def sse_frames(body: bytes) -> list[tuple[str, bytes]]:
    """A body's SSE events as (``event`` name or ``""``, ``data``)."""
    frames = []
    for raw in body.split(b"\n\n"):
        if not raw.strip():
            continue
        name, data = "", b""
        for line in raw.split(b"\n"):
            if line.startswith(b"event: "):
                name = line[7:].decode()
            elif line.startswith(b"data: "):
                data = line[6:]
        frames.append((name, data))
    return frames


def native_problems(body: bytes, text: str) -> list[str]:
    """What is wrong with one whole native stream of ``text`` (``[]``: nothing)."""
    frames = sse_frames(body)
    deltas = [orjson.loads(d)["text"] for n, d in frames if n == "content.delta"]
    problems = []
    if "".join(deltas) != text:
        problems.append(f"native: content.delta texts {''.join(deltas)!r} != {text!r}")
    if not frames or frames[-1][0] != "done" or b'"status":"completed"' not in frames[-1][1]:
        problems.append(f"native: last event {frames[-1:]!r}, not a completed done")
    return problems


def responses_problems(body: bytes, text: str, chunks: int) -> list[str]:
    """What is wrong with one whole Responses stream of ``text`` in ``chunks`` deltas: event
    names match their ``type``, ``sequence_number`` counts from 0, the order is created →
    in_progress → … → completed → ``[DONE]``, and the deltas, the ``.done`` events and the
    final response all carry the text."""
    frames = sse_frames(body)
    if not frames or frames[-1] != ("", b"[DONE]"):
        return [f"responses: does not end with data: [DONE] ({frames[-1:]!r})"]
    events = [orjson.loads(data) for _, data in frames[:-1]]
    problems = [
        f"responses: event {n!r} carries type {e.get('type')!r}"
        for (n, _), e in zip(frames, events, strict=False)
        if e.get("type") != n
    ]
    numbers = [e.get("sequence_number") for e in events]
    if numbers != list(range(len(events))):
        problems.append(f"responses: sequence numbers {numbers}")
    kinds = [e["type"] for e in events]
    if kinds[:2] != ["response.created", "response.in_progress"]:
        problems.append(f"responses: starts with {kinds[:2]}")
    if kinds[-1] != "response.completed":
        problems.append(f"responses: last event before [DONE] is {kinds[-1]!r}")
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    if len(deltas) != chunks or "".join(deltas) != text:
        problems.append(f"responses: {len(deltas)} deltas of {''.join(deltas)!r}")
    done = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    if done != [text]:
        problems.append(f"responses: response.output_text.done texts {done!r}")
    final = events[-1].get("response", {})
    output = [p.get("text") for item in final.get("output", []) for p in item.get("content", [])]
    if final.get("status") != "completed" or output != [text]:
        problems.append(f"responses: final response {final.get('status')!r}, {output!r}")
    return problems


def sdk_remarks(bodies: Iterable[bytes]) -> list[str] | None:
    """What the ``openai`` package's event models (validated strictly, which its client does
    not do) say about whole Responses streams: one line per rejected event type, ``None``
    when that package is not installed. A second reader's opinion, reported, not enforced."""
    try:
        from openai.types.responses import ResponseStreamEvent
        from pydantic import BaseModel, ValidationError
    except ImportError:
        return None
    union = typing.get_args(typing.get_args(ResponseStreamEvent)[0])
    models: dict[str, type[BaseModel]] = {
        typing.get_args(m.model_fields["type"].annotation)[0]: m for m in union
    }
    remarks: dict[str, str] = {}
    frames = [frame for body in bodies for frame in sse_frames(body)[:-1]]  # [DONE] aside
    for name, data in frames:
        model = models.get(name)
        if model is None:
            remarks.setdefault(name, f"{name}: no such event in openai's ResponseStreamEvent")
            continue
        try:
            model.model_validate_json(data)
        except ValidationError as exc:
            where = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]
            )
            remarks.setdefault(name, f"{name}: {model.__name__} rejects it ({where})")
    return list(remarks.values())
