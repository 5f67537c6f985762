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
import importlib
import importlib.metadata
import itertools
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from procs import BENCH
from pydantic import ValidationError
from report import markdown_table, text_table, write_json

from parley.engine import Entry
from parley.server.faces.responses.resource import head
from parley.server.faces.responses.stream import ResponseEvents, sse_frame, translate
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
    ways += _model_delta(
        seq,
        where,
        text,
        _model("openai", "openai.types.responses", "ResponseTextDeltaEvent"),
        "(b) openai: ResponseTextDeltaEvent(...).model_dump_json()",
        "(b) openai: ResponseTextDeltaEvent.model_construct(...) (no validation)",
    )
    # exclude_none: its optional ``obfuscation`` would otherwise be sent as null.
    ways += _model_delta(
        seq,
        where,
        text,
        _model(
            "openresponses-types", "openresponses_types", "ResponseOutputTextDeltaStreamingEvent"
        ),
        "(c) openresponses-types: ResponseOutputTextDeltaStreamingEvent(...).model_dump_json()",
        "(c) openresponses-types: ...model_construct(...) (no validation)",
        exclude_none=True,
    )
    return ways


def _model(package: str, module: str, name: str) -> type[Any] | str:
    """A package's model class, or the reason it is missing (a ``str``)."""
    try:
        model: type[Any] = getattr(importlib.import_module(module), name)
    except ImportError:
        return f"skipped: {package} is not installed (.venv/bin/pip install {package})"
    return model


def _model_delta(
    seq: Iterator[int],
    where: dict[str, Any],
    text: str,
    model: type[Any] | str,
    validated_label: str,
    constructed_label: str,
    exclude_none: bool = False,
) -> list[Way]:
    """The delta event built with ``model`` and dumped: validated, and with
    ``model_construct`` (skipped, both, when ``model`` is the reason it is missing)."""
    if isinstance(model, str):
        return [Way(validated_label, None, model), Way(constructed_label, None, model)]
    kind = model.model_validate(  # the model's own type value (an enum in some), for construct
        {"type": _DELTA, "sequence_number": 0, **where, "delta": text, "logprobs": []}
    ).type

    def validated() -> bytes:
        event = model(type=_DELTA, sequence_number=next(seq), **where, delta=text, logprobs=[])
        return _frame(_DELTA, event.model_dump_json(exclude_none=exclude_none).encode())

    def constructed() -> bytes:
        event = model.model_construct(
            type=kind, sequence_number=next(seq), **where, delta=text, logprobs=[]
        )
        return _frame(_DELTA, event.model_dump_json(exclude_none=exclude_none).encode())

    return [Way(validated_label, validated), Way(constructed_label, constructed)]


# ------------------------------------------------------------ the whole response


def response_ways(response: dict[str, Any]) -> tuple[list[Way], list[str]]:
    """Serialize, or validate (and serialize), one whole response object; and what the
    packages' models say about Parley's object as it is."""
    notes: list[str] = []
    ways = [Way("(a) orjson.dumps (Parley: no validation)", lambda: orjson.dumps(response))]
    for label, model in (
        ("(b) openai: Response", _model("openai", "openai.types.responses", "Response")),
        (
            "(c) openresponses-types: ResponseResource",
            _model("openresponses-types", "openresponses_types", "ResponseResource"),
        ),
    ):
        ways += _validating(label, model, response, notes)
    return ways, notes


def _validating(
    label: str, model: type[Any] | str, response: dict[str, Any], notes: list[str]
) -> list[Way]:
    """Validate, and validate and dump, ``response`` with ``model``, if it accepts it."""
    if isinstance(model, str):
        return [Way(label, None, model)]
    try:
        model.model_validate(response)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:4])
        notes.append(f"{label[4:]} rejects Parley's response object ({where}); not timed.")
        return []
    notes.append(f"{label[4:]} accepts Parley's response object as it is.")
    return [
        Way(f"{label}.model_validate(obj)", lambda: model.model_validate(response)),
        Way(
            f"{label}.model_validate(obj).model_dump_json()",
            lambda: model.model_validate(response).model_dump_json(),
        ),
    ]


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
    result = {
        "environment": env,
        "command": sys.argv,
        "events": events,
        "whole": whole,
        "notes": notes,
    }
    write_json(output, result)
    print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
