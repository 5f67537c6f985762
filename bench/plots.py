"""The README's plots, drawn from the JSON the benches write:

    .venv/bin/python bench/plots.py [--compare bench/results/compare.json]
                                    [--history bench/results/history.json] [--out docs/images]

- ``cpu-per-stream.png``: the server's CPU per stream against concurrent clients, at the
  chunk gap of ``bench/compare.py --sweep`` (20 ms), for Parley's chat face, Parley's stored
  turn, the bare relay and LiteLLM (each side the run measured).
- ``history-ttft.png``: time to the first token against the thread's prior messages, from
  ``bench/history.py``: the model's window unknown (the whole thread sent) and a window of
  about 500 messages.

A plot whose JSON is missing (or, for the first, has no ``sweep``) is skipped with a note.
Needs matplotlib (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from procs import BENCH, ROOT

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: The sides drawn, in the legend's order, with their colours and markers.
SIDES = {
    "chat": ("#1f77b4", "o"),
    "stored": ("#2ca02c", "s"),
    "relay": ("#7f7f7f", "^"),
    "litellm": ("#d62728", "D"),
}
SETTINGS = {"unknown": ("#ff7f0e", "o"), "window": ("#1f77b4", "s")}
#: Inches at 150 dpi: 1,200 x 690 pixels, readable at a README's width.
SIZE, DPI = (8.0, 4.6), 150


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/plots.py", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--compare",
        type=Path,
        default=BENCH / "results" / "compare.json",
        help="bench/compare.py's JSON, of a run with --sweep",
    )
    p.add_argument(
        "--history",
        type=Path,
        default=BENCH / "results" / "history.json",
        help="bench/history.py's JSON",
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go")
    return p.parse_args(argv)


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        sys.exit("bench/plots.py needs matplotlib: .venv/bin/pip install -e '.[bench]'")
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "font.size": 11,
            "axes.titlesize": 13,
            "axes.labelsize": 11,
            "legend.fontsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )
    return plt


def _source(results: dict[str, Any]) -> str:
    """The command (less its ``--output``), the date, the database and the pinning."""
    env = results.get("environment") or {}
    words = shlex.split(env.get("command", "?"))
    for at in reversed([i for i, w in enumerate(words) if w == "--output"]):
        del words[at : at + 2]
    command = " ".join(w for w in words if not w.startswith("--output="))
    pinning = env.get("pinning", "")
    pinned = "server pinned to one core" if pinning.startswith("server on CPU") else pinning
    return f"Source: {command} ({env.get('date', '?')[:10]}; {env.get('database', '?')}; {pinned})"


def _y_scale(ax: Axes, values: list[float]) -> str:
    """A log y-axis, labelled 1, 2, 5, 10, ..., when the values span more than ten times;
    else linear from zero. Answers what the axis label should add."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    positive = [v for v in values if v > 0]
    if positive and max(positive) > 10 * min(positive):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(min(positive) / 1.3, max(positive) * 1.4)  # room for the labels
        return ", log scale"
    ax.set_ylim(bottom=0, top=max(values, default=1) * 1.15)
    return ""


def _label_points(ax: Axes, lines: list[tuple[list[float], list[float], str]]) -> None:
    """Each point's value beside it, in its line's colour: above the highest point of an
    x, below the others, so that close lines' labels do not overlap."""
    highest: dict[float, float] = {}
    for xs, ys, _ in lines:
        for x, y in zip(xs, ys, strict=True):
            highest[x] = max(highest.get(x, y), y)
    for xs, ys, colour in lines:
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(
                f"{y:.1f}" if y >= 10 else f"{y:.2f}",
                (x, y),
                textcoords="offset points",
                xytext=(0, 7) if y >= highest[x] else (0, -15),
                ha="center",
                fontsize=8.5,
                color=colour,
            )


def _finish(fig: Figure, path: Path, source: str) -> None:
    lines = textwrap.wrap(source, 160, subsequent_indent="  ")
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7.5, color="#555555", ha="left")
    fig.tight_layout(rect=(0, 0.035 * len(lines), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    print(f"wrote {path}")


def cpu_per_stream(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Server CPU per stream against concurrent clients, one line per side."""
    sweep = results["sweep"]
    clients, cpu = sweep["clients"], sweep["cpu_ms_per_stream"]
    sides = [s for s in SIDES if s in cpu]
    fig, ax = plt.subplots(figsize=SIZE)
    for side in sides:
        colour, marker = SIDES[side]
        title = sweep["titles"].get(side, side)
        ax.plot(clients, cpu[side], marker=marker, color=colour, label=title, linewidth=2)
    _label_points(ax, [(clients, cpu[s], SIDES[s][0]) for s in sides])
    ax.set_xscale("log")
    ax.set_xticks(clients, [f"{n:,}" for n in clients])
    ax.minorticks_off()
    log = _y_scale(ax, [v for s in sides for v in cpu[s]])
    ax.set_xlabel("concurrent clients (log scale)")
    ax.set_ylabel(f"server CPU per stream (ms{log})")
    ax.set_title(
        f"Server CPU per stream ({sweep['chunks']} chunks, {sweep['gap_ms']:g} ms apart), "
        "one core; lower is better"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", frameon=False)
    _finish(fig, path, _source(results))
    plt.close(fig)


def history_ttft(plt: Any, results: dict[str, Any], path: Path) -> None:
    """Time to first token against prior messages, one line per window setting."""
    rows = [r for r in results["summary"]["rows"] if "ttft_p50_ms" in r]
    held = results.get("window_messages", 500)
    titles = {
        "unknown": "window unknown: the whole thread sent",
        "window": f"window of about {held:,} messages",
    }
    fig, ax = plt.subplots(figsize=SIZE)
    lines: list[tuple[list[float], list[float], str]] = []
    for setting, (colour, marker) in SETTINGS.items():
        mine = sorted((r for r in rows if r["setting"] == setting), key=lambda r: r["prior"])
        if not mine:
            continue
        xs = [max(r["prior"], 1) for r in mine]
        ys = [r["ttft_p50_ms"] for r in mine]
        ax.plot(xs, ys, marker=marker, color=colour, label=titles[setting], linewidth=2)
        lines.append((xs, ys, colour))
    _label_points(ax, lines)
    values = [y for _, ys, _ in lines for y in ys]
    sizes = {x for xs, _, _ in lines for x in xs}
    ax.set_xscale("log")
    ax.set_xticks(sorted(sizes), [f"{n:,}" for n in sorted(sizes)])
    ax.minorticks_off()
    log = _y_scale(ax, values)
    ax.set_xlabel("prior messages in the thread (log scale)")
    ax.set_ylabel(f"time to first token, p50 (ms{log})")
    turns = max((r["turns"] for r in rows), default=0)
    ax.set_title(f"Time to first token against thread length (median of {turns} turns)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", frameon=False)
    _finish(fig, path, _source(results))
    plt.close(fig)


def _load(path: Path, what: str) -> dict[str, Any] | None:
    if not path.exists():
        print(f"skipped {what}: no {path}", file=sys.stderr)
        return None
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plt = _pyplot()
    drawn = 0
    compared = _load(args.compare, "cpu-per-stream.png")
    if compared is not None and "sweep" not in compared:
        print(f"skipped cpu-per-stream.png: {args.compare} has no sweep (--sweep)", file=sys.stderr)
    elif compared is not None:
        cpu_per_stream(plt, compared, args.out / "cpu-per-stream.png")
        drawn += 1
    history = _load(args.history, "history-ttft.png")
    if history is not None:
        history_ttft(plt, history, args.out / "history-ttft.png")
        drawn += 1
    return 0 if drawn else 1


if __name__ == "__main__":
    sys.exit(main())
