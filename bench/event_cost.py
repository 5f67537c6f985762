"""What one streamed Responses event costs to build and serialize, three ways: (a) a plain
dict and orjson, as Parley does (``parley/server/responses/stream.py``), (b) the ``openai``
package's Pydantic models, (c) the ``openresponses-types`` package's Pydantic models; and
what validating one whole response object costs with each package.

    .venv/bin/python bench/event_cost.py [--number 20000] [--repeat 7]

In-process, no HTTP: ``timeit`` over one ``response.output_text.delta`` event (built, dumped
to JSON and framed as SSE, ``event: <type>`` / ``data: <json>``), and over the whole response
of a 22-chunk answer as Parley's own translator (``ResponseEvents``) builds it for
``response.completed``. Medians of ``--repeat`` runs of ``--number`` calls. Neither package
is a dependency of Parley: a variant whose package is missing is skipped with a note, and
``.venv/bin/pip install openai openresponses-types`` brings them in for the measurement.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import itertools
import json
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from procs import BENCH
from report import markdown_table, text_table

from parley.engine import Entry
from parley.server.responses.resource import head
from parley.server.responses.stream import ResponseEvents, sse_frame, translate
from parley.store.records import Run
from parley.testing.fake_upstream import text_chunks

_DELTA = "response.output_text.delta"
_ITEM = "msg_691f3657288aed3adb9e2455"
_RUN = "run_6ec92e4bdb3a4001023729f5"


@dataclass(slots=True)
class Way:
    """One way to do the measured thing: its label and the call to time (``None``, with
    the reason in ``skipped``, when its package is missing)."""

    label: str
    call: Callable[[], Any] | None
    skipped: str = ""


# ------------------------------------------------------------------------ the inputs


def _run() -> Run:
    now = time.time()
    return Run(
        id=_RUN,
        user_id="usr_bench",
        thread_id="thr_bench",
        assistant_id=None,
        model="fake/text:22:0",
        instructions=None,
        tools=[],
        parameters={},
        status="in_progress",
        input_tokens=0,
        output_tokens=0,
        error_code=None,
        error_message=None,
        last_seq=0,
        created_at=now,
        started_at=now,
        completed_at=None,
        expires_at=None,
        request={"store": True},
    )


def _entries(chunks: list[str]) -> list[Entry]:
    """The run's events of a streamed text answer, as the engine logs them."""
    kinds: list[tuple[str, dict[str, Any]]] = [("run.status", {"status": "in_progress"})]
    kinds += [("content.delta", {"message_id": _ITEM, "text": c}) for c in chunks]
    kinds += [("usage", {"input_tokens": 1, "output_tokens": len(chunks)})]
    kinds += [("run.status", {"status": "completed"}), ("done", {"status": "completed"})]
    return [
        (seq, kind, orjson.dumps({"type": kind, "run_id": _RUN, **data}).decode())
        for seq, (kind, data) in enumerate(kinds, start=1)
    ]


def final_response(chunks: list[str]) -> dict[str, Any]:
    """The response object of ``response.completed`` for an answer of ``chunks``."""
    events = list(translate(head(_run(), "in_progress"), iter(_entries(chunks))))
    assert events[-1]["type"] == "response.completed"
    response: dict[str, Any] = events[-1]["response"]
    return response


# ------------------------------------------------------------------ the delta event


def _frame(kind: str, data: bytes) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def delta_ways(text: str) -> list[Way]:
    """Build, serialize and frame one ``response.output_text.delta`` event."""
    seq = itertools.count(4)
    where = {"item_id": _ITEM, "output_index": 0, "content_index": 0}

    def plain() -> bytes:  # ResponseEvents._event + _delta's fields, then sse_frame
        return sse_frame(
            {"type": _DELTA, "sequence_number": next(seq), **where, "delta": text, "logprobs": []}
        )

    events = ResponseEvents(head(_run(), "in_progress"))
    events.start()
    entry = _entries([text])[1]
    events.feed(entry)  # the message item is open: every later delta is one event

    def parley_path() -> bytes:
        return b"".join(sse_frame(e) for e in events.feed(entry))

    ways = [
        Way("(a) dict + orjson.dumps + sse_frame (Parley)", plain),
        Way("(a) Parley's whole step: ResponseEvents.feed(entry) + sse_frame", parley_path),
    ]
    ways += _openai_delta(seq, where, text)
    ways += _openresponses_delta(seq, where, text)
    return ways


def _openai_delta(seq: Any, where: dict[str, Any], text: str) -> list[Way]:
    labels = (
        "(b) openai: ResponseTextDeltaEvent(...).model_dump_json()",
        "(b) openai: ResponseTextDeltaEvent.model_construct(...) (no validation)",
    )
    try:
        from openai.types.responses import ResponseTextDeltaEvent
    except ImportError:
        return [Way(label, None, _missing("openai")) for label in labels]

    def validated() -> bytes:
        event = ResponseTextDeltaEvent(
            type=_DELTA, sequence_number=next(seq), **where, delta=text, logprobs=[]
        )
        return _frame(event.type, event.model_dump_json().encode())

    def constructed() -> bytes:
        event = ResponseTextDeltaEvent.model_construct(
            type="response.output_text.delta",
            sequence_number=next(seq),
            **where,
            delta=text,
            logprobs=[],
        )
        return _frame(event.type, event.model_dump_json().encode())

    return [Way(labels[0], validated), Way(labels[1], constructed)]


def _openresponses_delta(seq: Any, where: dict[str, Any], text: str) -> list[Way]:
    labels = (
        "(c) openresponses-types: ResponseOutputTextDeltaStreamingEvent(...).model_dump_json()",
        "(c) openresponses-types: ...model_construct(...) (no validation)",
    )
    try:
        from openresponses_types import ResponseOutputTextDeltaStreamingEvent as Delta
    except ImportError:
        return [Way(label, None, _missing("openresponses-types")) for label in labels]

    kind = Delta.model_validate(  # its own enum of event types, for model_construct
        {"type": _DELTA, "sequence_number": 0, **where, "delta": text}
    ).type

    # exclude_none: its optional ``obfuscation`` would otherwise be sent as null.
    def validated() -> bytes:
        event = Delta(type=_DELTA, sequence_number=next(seq), **where, delta=text, logprobs=[])
        return _frame(_DELTA, event.model_dump_json(exclude_none=True).encode())

    def constructed() -> bytes:
        event = Delta.model_construct(
            type=kind, sequence_number=next(seq), **where, delta=text, logprobs=[]
        )
        return _frame(_DELTA, event.model_dump_json(exclude_none=True).encode())

    return [Way(labels[0], validated), Way(labels[1], constructed)]


def _missing(package: str) -> str:
    return f"skipped: {package} is not installed (.venv/bin/pip install {package})"


# ------------------------------------------------------------ the whole response


def response_ways(response: dict[str, Any]) -> tuple[list[Way], list[str]]:
    """Serialize, or validate (and serialize), one whole response object; and what the
    packages' models say about Parley's object as it is."""
    notes: list[str] = []
    ways = [Way("(a) orjson.dumps (Parley: no validation)", lambda: orjson.dumps(response))]
    try:
        from openai.types.responses import Response
    except ImportError:
        ways.append(Way("(b) openai: Response", None, _missing("openai")))
    else:
        ways += _validating("(b) openai: Response", Response, response, notes)
    try:
        from openresponses_types import ResponseResource
    except ImportError:
        label = "(c) openresponses-types: ResponseResource"
        ways.append(Way(label, None, _missing("openresponses-types")))
    else:
        label = "(c) openresponses-types: ResponseResource"
        ways += _validating(label, ResponseResource, response, notes)
    return ways, notes


def _validating(label: str, model: Any, response: dict[str, Any], notes: list[str]) -> list[Way]:
    valid = _valid_copy(model, response, notes, label[4:])
    if valid is None:
        return []
    return [
        Way(f"{label}.model_validate(obj)", lambda: model.model_validate(valid)),
        Way(
            f"{label}.model_validate(obj).model_dump_json()",
            lambda: model.model_validate(valid).model_dump_json(),
        ),
    ]


def _valid_copy(
    model: Any, response: dict[str, Any], notes: list[str], name: str
) -> dict[str, Any] | None:
    """``response`` if ``model`` accepts it; else a copy with the missing usage detail
    fields filled with 0 (noted), or ``None`` (noted) when that is not enough."""
    from pydantic import ValidationError

    try:
        model.model_validate(response)
        notes.append(f"{name} accepts Parley's response object as it is.")
        return response
    except ValidationError as exc:
        errors = exc.errors()
    where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:4])
    patched = copy.deepcopy(response)
    for error in errors:
        loc = error["loc"]
        if error["type"] != "missing" or loc[:1] != ("usage",):
            break
        parent: Any = patched
        for key in loc[:-1]:
            parent = parent[key]
        parent[loc[-1]] = 0
    else:
        try:
            model.model_validate(patched)
        except ValidationError:
            pass
        else:
            notes.append(
                f"{name} rejects Parley's response object ({where}); timed with those set to 0."
            )
            return patched
    notes.append(f"{name} rejects Parley's response object ({where}); not timed.")
    return None


# --------------------------------------------------------------------------- timing


def median_us(call: Callable[[], Any], number: int, repeat: int) -> float:
    """Median over ``repeat`` runs of the µs per call of ``number`` calls."""
    call()  # warm: imports, caches, schema building
    runs = timeit.Timer(call).repeat(repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def _same(a: Any, b: Any) -> str:
    """Whether two SSE frames carry the same event (sequence numbers aside)."""
    if not (isinstance(a, bytes) and isinstance(b, bytes)):
        return "—"
    one, two = (orjson.loads(x.split(b"\ndata: ", 1)[1]) for x in (a, b))
    differ = sorted(
        k for k in one.keys() | two.keys() if k != "sequence_number" and one.get(k) != two.get(k)
    )
    if a.split(b"\n", 1)[0] != b.split(b"\n", 1)[0]:
        differ.insert(0, "event: line")
    return "yes" if not differ else "no: " + ", ".join(differ)


def measure(ways: list[Way], number: int, repeat: int) -> list[dict[str, Any]]:
    baseline = ways[0].call() if ways[0].call else None
    measured: list[dict[str, Any]] = []
    for way in ways:
        if way.call is None:
            measured.append({"label": way.label, "skipped": way.skipped})
            print(f"  {way.label}: {way.skipped}", flush=True)
            continue
        us = median_us(way.call, number, repeat)
        same = _same(baseline, way.call()) if way is not ways[0] else "—"
        measured.append({"label": way.label, "us": us, "same_json_as_a": same})
        print(f"  {way.label}: {us:.2f} µs", flush=True)
    return measured


def rows(measured: list[dict[str, Any]], same: bool) -> list[tuple[str, ...]]:
    """Label, µs, ratio to the first row (and, with ``same``, whether the JSON matches)."""
    base = measured[0].get("us")
    out = []
    for m in measured:
        if "us" not in m:
            cells: tuple[str, ...] = (m["label"], m["skipped"], "—")
        else:
            ratio = f"{m['us'] / base:.1f}x" if base else "—"
            cells = (m["label"], f"{m['us']:.2f} µs", ratio)
        out.append((*cells, m.get("same_json_as_a", "—")) if same else cells)
    return out


def _versions() -> str:
    found = []
    for name in ("orjson", "pydantic", "openai", "openresponses-types"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/event_cost.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--number", type=int, default=20000, help="calls per timed run (events)")
    p.add_argument("--repeat", type=int, default=7, help="timed runs; the median is shown")
    p.add_argument("--chunks", type=int, default=22, help="chunks of the whole answer")
    args = p.parse_args(argv)
    chunks = text_chunks(args.chunks)
    response = final_response(chunks)
    size = len(orjson.dumps(response))
    print(f"one {_DELTA} event ({chunks[1]!r}):", flush=True)
    events = measure(delta_ways(chunks[1]), args.number, args.repeat)
    print(f"one whole response object ({args.chunks}-chunk answer, {size} B of JSON):", flush=True)
    ways, notes = response_ways(response)
    whole = measure(ways, max(1, args.number // 10), args.repeat)
    header_events = (f"one {_DELTA} event", "µs per event", "vs (a)", "same JSON as (a)")
    header_whole = (f"one whole response ({size} B of JSON)", "µs per response", "vs (a)")
    env = (
        f"{platform.machine()}, Python {platform.python_version()}, {_versions()}; "
        f"median of {args.repeat} runs of {args.number} events / {max(1, args.number // 10)} "
        f"responses ({time.strftime('%Y-%m-%d %H:%M %z')})."
    )
    tables = [(events, header_events, True), (whole, header_whole, False)]
    for measured, header, same in tables:
        print(f"\n{text_table(rows(measured, same), header)}")
    print("\n" + "\n".join(notes) + f"\n{env}\n\nMarkdown (for bench/README.md):\n")
    for measured, header, same in tables:
        print(f"{markdown_table(rows(measured, same), header)}\n")
    print("\n".join(notes) + f"\n{env}")
    output = BENCH / "results" / "event_cost.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "environment": env,
        "command": sys.argv,
        "events": events,
        "whole": whole,
        "notes": notes,
    }
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
