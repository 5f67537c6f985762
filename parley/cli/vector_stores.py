"""``parley vector-stores reembed``: a store's chunks embedded again with another model,
on the database directly (the server's, from ``--database-url``/``--config`` or the
environment), as ``parley users`` works. The store stays searchable meanwhile and changes
all at once at the end, or not at all (``parley.retrieval.reembed``). A running server
needs no restart: its next search of the store embeds the query with the new model.

Exit codes: 0 done; 1 no such store; 2 bad input (a model that cannot embed, a database
that cannot store vectors, no model named); 3 failed (the model failed, or the store's files
were still being indexed): nothing was changed. Errors are one line on stderr; progress goes
to stderr, the result to stdout.

Only ``argparse`` is imported at the top: the parser is built on every ``parley`` command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from parley.config import Settings
    from parley.retrieval.reembed import Reembedded

#: Exit codes.
NOT_FOUND = 1
BAD_INPUT = 2
FAILED = 3


def add_parser(subparsers: Any, add_db_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``vector-stores`` to the ``parley`` subcommands."""
    stores = subparsers.add_parser(
        "vector-stores",
        help="manage vector stores (re-embed one with another model)",
        description="Vector stores hold the chunks file search finds (docs/retrieval.md).",
    )
    commands = stores.add_subparsers(dest="vector_stores_command", required=True)
    reembed = commands.add_parser(
        "reembed",
        help="embed a store's chunks again with another model",
        description="Embed every chunk of the store with MODEL and make it the store's "
        "embedding model. The store is searched as before until the end, when it changes in "
        "one transaction; if anything fails, nothing is changed.",
    )
    reembed.add_argument("vector_store_id", metavar="VS_ID")
    reembed.add_argument(
        "--model",
        help="the embedding model, provider/model (default: the embedding model of new "
        "stores, PARLEY_EMBEDDING_MODEL, local/all-minilm-l6-v2 when unset)",
    )
    reembed.add_argument(
        "--wait",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long to wait for the store's files being indexed (default 600)",
    )
    reembed.add_argument("--json", action="store_true", help="print the result as JSON")
    add_db_options(reembed)


def run(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from parley.errors import InvalidRequest, NotFound, ParleyError

    model: str | None = args.model or settings.embedding_model
    if not model:
        print(
            "parley vector-stores reembed: name the model with --model (the embedding model "
            "of new stores is turned off: PARLEY_EMBEDDING_MODEL is empty)",
            file=sys.stderr,
        )
        return BAD_INPUT
    try:
        done = asyncio.run(_reembed(settings, args.vector_store_id, model, args.wait))
    except NotFound as exc:
        print(f"parley vector-stores reembed: {exc.message}", file=sys.stderr)
        return NOT_FOUND
    except InvalidRequest as exc:
        print(f"parley vector-stores reembed: {exc.message}", file=sys.stderr)
        return BAD_INPUT
    except ParleyError as exc:
        print(
            f"parley vector-stores reembed: {exc.message} (the store was not changed)",
            file=sys.stderr,
        )
        return FAILED
    _show(done, as_json=args.json)
    return 0


async def _reembed(settings: Settings, store_id: str, model: str, wait: float) -> Reembedded:
    from parley.providers.registry import ProviderRegistry
    from parley.retrieval.reembed import reembed
    from parley.store.db import Database
    from parley.store.local import private_database

    private_database(settings.database_url)
    db = Database(settings.database_url)
    providers = ProviderRegistry(settings)
    try:
        await db.migrate()
        return await reembed(
            db,
            providers,
            vector_store_id=store_id,
            model=model,
            progress=_Progress(),
            wait_seconds=wait,
        )
    finally:
        await providers.aclose()
        await db.dispose()


class _Progress:
    """A line on stderr at each tenth of the chunks embedded."""

    def __init__(self) -> None:
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        tenth = 10 * done // max(total, 1)
        if tenth != self.shown:
            self.shown = tenth
            print(f"embedded {done:,} of {total:,} chunks", file=sys.stderr, flush=True)


def _show(done: Reembedded, *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "vector_store_id": done.vector_store_id,
                    "previous_model": done.previous_model,
                    "model": done.model,
                    "chunks": done.chunks,
                    "dimensions": done.dimensions,
                    "input_tokens": done.input_tokens,
                }
            )
        )
        return
    before = done.previous_model or "no embedding model (words only)"
    print(
        f"{done.vector_store_id}: {done.chunks:,} chunks embedded with {done.model} "
        f"({done.dimensions} dimensions, {done.input_tokens:,} tokens); before: {before}"
    )
