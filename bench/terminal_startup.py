"""How fast the terminal client starts: ``parley --help``, and ``parley chat`` to its prompt.

    .venv/bin/python bench/terminal_startup.py [--rounds 5] [--strict]

* ``parley --help``: spawn to exit, output to a pipe (target ≤ 300 ms).
* ``parley chat`` first prompt: spawn to the prompt character on a pseudo-terminal, with no
  configuration at all, so the embedded server starts too (target ≤ 1 s). The server and the
  MCP servers come up behind the prompt; "ready" is the time until the start-up lines (model,
  assistant, MCP servers with their tool counts) are on screen, with one test MCP server
  configured. Each round uses fresh data and config directories after one warm-up round (a
  warm machine: byte code compiled, files in the page cache).

Medians of ``--rounds``; ``--strict`` makes a missed target exit 1.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from parley.terminal.repl import PROMPT

HELP_TARGET = 0.300
PROMPT_TARGET = 1.0
MCP_SERVER = Path(__file__).resolve().parents[1] / "tests" / "terminal" / "mcp_server.py"


def time_help() -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "parley.cli.main", "--help"], capture_output=True, check=True
    )
    return time.perf_counter() - started


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def time_chat(workdir: Path) -> tuple[float, float]:
    """Seconds to the first prompt, and to the start-up lines."""
    config = workdir / "config" / "parley"
    config.mkdir(parents=True)
    entry = {"command": sys.executable, "args": [str(MCP_SERVER), "--tools", "echo,add"]}
    (config / "mcp.json").write_text(json.dumps({"mcpServers": {"bench": entry}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(
        XDG_DATA_HOME=str(workdir / "data"),
        XDG_CONFIG_HOME=str(workdir / "config"),
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",
    )
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = bytearray()
    prompt_at: list[float] = []
    ready = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "parley.cli.main", "chat"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=_take_terminal,
    )
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            seen.extend(data)
            if not prompt_at and PROMPT.encode() in seen:
                prompt_at.append(time.perf_counter())
            at = seen.find(b"bench: 2 tools")
            # the prompt drawn again below the start-up lines: it reads keys again
            if at >= 0 and PROMPT.encode() in seen[at:]:
                ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"parley chat did not start:\n{seen.decode(errors='replace')}")
        ready_at = time.perf_counter()
        os.write(master, b"\x04")  # Ctrl+D: exit
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=2)
        os.close(master)
    return prompt_at[0] - started, ready_at - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--strict", action="store_true")
    opts = parser.parse_args()

    time_help()
    helps = [time_help() for _ in range(opts.rounds)]
    prompts, readies = [], []
    with tempfile.TemporaryDirectory() as tmp:
        time_chat(Path(tmp, "warm-up"))
        for n in range(opts.rounds):
            prompt, ready = time_chat(Path(tmp, f"round-{n}"))
            prompts.append(prompt)
            readies.append(ready)

    help_s, prompt_s, ready_s = (statistics.median(v) for v in (helps, prompts, readies))
    rows = [
        ("parley --help", help_s, HELP_TARGET),
        ("parley chat: first prompt", prompt_s, PROMPT_TARGET),
        ("parley chat: server, MCP and assistant ready", ready_s, None),
    ]
    print("| measure | median | target | result |")
    print("|---|---:|---:|---:|")
    missed = False
    for name, value, target in rows:
        if target is None:
            print(f"| {name} | {value * 1000:.0f} ms | — | — |")
            continue
        ok = value <= target
        missed |= not ok
        verdict = "pass" if ok else "miss"
        print(f"| {name} | {value * 1000:.0f} ms | ≤ {target * 1000:.0f} ms | {verdict} |")
    return 1 if missed and opts.strict else 0


if __name__ == "__main__":
    sys.exit(main())
