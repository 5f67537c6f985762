"""Turning measured rounds into the comparison table: plain text for the terminal and a
markdown table for the README; and the results file."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The targets the issue sets for Parley (everything else is context).
TARGETS = {
    "added_ttfc_p50_ms": 2.0,
    "added_ttfc_p95_ms": 5.0,
    "cpu_ms_per_stream": 3.0,
    "streams_per_s_one_core": 150.0,
    "idle_rss_mib": 100.0,
    "healthz_s": 2.0,
}
#: The Chat Completions gateway's targets (``bench/run.py --face chat``): nothing is
#: stored, so less CPU and more streams than a stored run.
CHAT_TARGETS = {
    **TARGETS,
    "added_ttfc_p50_ms": 1.0,
    "cpu_ms_per_stream": 1.5,
    "streams_per_s_one_core": 600.0,
}


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), interpolated between the nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median_round(rounds: list[dict[str, Any]], phase: str, side: str, key: str) -> float:
    """The median over rounds of one measured value."""
    return float(statistics.median(r[phase][side][key] for r in rounds))


@dataclass(slots=True)
class Row:
    metric: str
    direct: str
    parley: str
    change: str
    target: str = "—"
    verdict: str = "—"


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def clients_text(clients: int) -> str:
    """``1 client``, ``20 clients``."""
    return f"{clients} client{'s' * (clients > 1)}"


def build_rows(summary: dict[str, Any], targets: dict[str, float] = TARGETS) -> list[Row]:
    """The table rows from the summary of a run (see ``run.summarise``), judged against
    ``targets``."""
    return (
        _latency_rows(summary, targets)
        + _load_rows(summary, targets)
        + _memory_and_start_rows(summary, targets)
    )


def _latency_rows(s: dict[str, Any], t: dict[str, float]) -> list[Row]:
    rows: list[Row] = []
    for q, key in (("p50", "added_ttfc_p50_ms"), ("p95", "added_ttfc_p95_ms")):
        direct, parley = s[f"ttfc_{q}_ms"]["direct"], s[f"ttfc_{q}_ms"]["parley"]
        added = parley - direct
        rows.append(
            Row(
                f"time to first content, {q} (1 client, {s['ttfc_gap_ms']:g} ms gap)",
                ms(direct),
                ms(parley),
                f"+{added:.2f} ms",
                f"≤ +{t[key]:g} ms",
                verdict(added <= t[key]),
            )
        )
    for key, name in (("head_p50_ms", "response headers"), ("stream_p50_ms", "whole stream")):
        direct, parley = s[key]["direct"], s[key]["parley"]
        rows.append(
            Row(
                f"{name}, p50 (same requests)",
                ms(direct),
                ms(parley),
                f"+{parley - direct:.2f} ms",
            )
        )
    return rows


def _load_rows(s: dict[str, Any], t: dict[str, float]) -> list[Row]:
    most = max(s["concurrency"])
    rows: list[Row] = []
    for clients in s["concurrency"]:
        rate = s[f"streams_per_s_c{clients}"]
        ratio = rate["parley"] / rate["direct"] if rate["direct"] else float("nan")
        stream = f"{s['chunks']} chunks, {s['load_gap_ms']:g} ms gap"
        row = Row(
            f"streams/s, {clients_text(clients)} ({stream})",
            f"{rate['direct']:.0f}",
            f"{rate['parley']:.0f}",
            f"{ratio:.2f}x",
        )
        if clients == most:
            limit = t["streams_per_s_one_core"]
            row.target, row.verdict = f"≥ {limit:g}", verdict(rate["parley"] >= limit)
        rows.append(row)
    for clients in s["concurrency"]:
        cpu = s[f"cpu_ms_per_stream_c{clients}"]
        rows.append(
            Row(
                f"server CPU per stream, {clients_text(clients)}",
                ms(cpu["direct"]),
                ms(cpu["parley"]),
                f"{cpu['parley'] / cpu['direct']:.1f}x" if cpu["direct"] else "—",
                f"≤ {t['cpu_ms_per_stream']:g} ms",
                verdict(cpu["parley"] <= t["cpu_ms_per_stream"]),
            )
        )
    busy = s[f"server_busy_c{most}"]
    rows.append(
        Row(
            f"server core busy, {clients_text(most)}",
            f"{busy['direct']:.0%}",
            f"{busy['parley']:.0%}",
            "—",
        )
    )
    return rows


def _memory_and_start_rows(s: dict[str, Any], t: dict[str, float]) -> list[Row]:
    idle, after, peak = s["rss_idle_mib"], s["rss_after_mib"], s["rss_peak_mib"]
    rows = [
        Row(
            "server RSS, idle",
            f"{idle['direct']:.1f} MiB",
            f"{idle['parley']:.1f} MiB",
            "—",
            f"≤ {t['idle_rss_mib']:g} MiB",
            verdict(idle["parley"] <= t["idle_rss_mib"]),
        ),
        Row(
            "server RSS, after load",
            f"{after['direct']:.1f} MiB",
            f"{after['parley']:.1f} MiB",
            "—",
        ),
        Row("server RSS, peak", f"{peak['direct']:.1f} MiB", f"{peak['parley']:.1f} MiB", "—"),
        Row(
            f"spawn → /healthz 200 (median of {s['startup_samples']})",
            "—",
            f"{s['healthz_s']:.2f} s",
            "—",
            f"≤ {t['healthz_s']:g} s",
            verdict(s["healthz_s"] <= t["healthz_s"]),
        ),
        Row("spawn → /healthz 200, blank database", "—", f"{s['healthz_cold_s']:.2f} s", "—"),
    ]
    return rows


_HEADER = ("metric", "direct", "through Parley", "added / ratio", "target", "result")


def _cells(rows: Sequence[Row | tuple[str, ...]], header: tuple[str, ...]) -> list[tuple[str, ...]]:
    cells: list[tuple[str, ...]] = [header]
    cells += [
        r if isinstance(r, tuple) else (r.metric, r.direct, r.parley, r.change, r.target, r.verdict)
        for r in rows
    ]
    return cells


def text_table(rows: Sequence[Row | tuple[str, ...]], header: tuple[str, ...] = _HEADER) -> str:
    """The rows as aligned plain text; ``header`` names the columns: six for ``Row``s, as
    many as the tuples have for plain rows."""
    cells = _cells(rows, header)
    widths = [max(len(line[i]) for line in cells) for i in range(len(header))]
    lines = []
    for number, line in enumerate(cells):
        left = line[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True))
        lines.append("  ".join((left, *rest)))
        if number == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row | tuple[str, ...]], header: tuple[str, ...] = _HEADER) -> str:
    cells = _cells(rows, header)
    lines = ["| " + " | ".join(cells[0]) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(line) + " |" for line in cells[1:]]
    return "\n".join(lines)


def report_text(
    rows: Sequence[Row], notes: str, env: dict[str, Any], header: tuple[str, ...] = _HEADER
) -> str:
    """The table and its notes for the terminal, then the same as markdown for the README."""
    return (
        f"{text_table(rows, header)}\n\n{notes}\n\n"
        f"Markdown (for bench/README.md):\n\n"
        f"Command: `{env['command']}` ({env['date']})\n\n{markdown_table(rows, header)}\n\n"
        f"{notes}\n"
    )


def report_stream_errors(
    phases: dict[str, dict[str, Any]], names: Sequence[str], chunks: int, unit: str
) -> bool:
    """Says on standard error which phase and side (of ``names``) had failed streams, and
    which had a stream of fewer than ``chunks`` content events (``unit``: what they are
    called); answers whether any had either. ``phases``: by phase, by side, a summary with
    ``problems`` and ``content_events_min``."""
    measured = [
        (f"{phase} {name}", by_name[name]) for phase, by_name in phases.items() for name in names
    ]
    failed = {where: m["problems"] for where, m in measured if m["problems"]}
    short = [where for where, m in measured if m["content_events_min"] < chunks]
    if failed:
        print(f"error: failed streams: {failed}", file=sys.stderr)
    if short:
        print(f"error: fewer than {chunks} {unit} in: {short}", file=sys.stderr)
    return bool(failed or short)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
