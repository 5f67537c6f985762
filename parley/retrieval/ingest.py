"""The ingestion worker: files attached to vector stores become chunks search finds.

Every server replica runs one (``Ingestion``, started and stopped with the engine's
upkeep). Each round it reads how many files wait (one query on the partial index of
``in_progress`` files), claims a few whose lease is free or past (``store.ingestion``), and
indexes each in a task of its own, ``concurrency`` at most:

    bytes (``files.storage``) -> text (``Extractor``: bounded in time and memory, PDF and
    DOCX in worker processes) -> chunks (the file's ``chunking_strategy``) -> vectors (the
    store's ``embedding_model``, in batches, when it has one) -> one transaction that
    replaces the file's chunks in the store and marks it ``completed``

The claims are leases renewed while the work goes on: a worker that dies leaves its files
to another replica (or to itself, restarted) once the lease runs out, and a file claimed
``MAX_ATTEMPTS`` times ends ``failed``. A file cancelled, attached again or deleted
meanwhile loses its claim: its task stops, and nothing it did is written. A file that
cannot be read ends ``failed`` with OpenAI's ``last_error`` codes: ``unsupported_file``,
``invalid_file`` (the extraction's reason in words) or ``server_error`` (the embedding
model failed, or the bytes could not be read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from parley.config import Settings
from parley.errors import InvalidRequest, ParleyError
from parley.files.storage import Storages
from parley.metrics import Metrics
from parley.providers.registry import ProviderRegistry
from parley.retrieval._base import MB, ExtractionFailed, Limits, UnsupportedFile
from parley.retrieval.chunking import Chunk, chunk, parse_chunking_strategy
from parley.retrieval.extract import Extractor
from parley.store import ingestion as store
from parley.store.db import Database, now, until_woken
from parley.types import Usage
from parley.wake import Wake

log = logging.getLogger("parley.retrieval")

#: Files one replica indexes at once.
CONCURRENCY = 2
#: Seconds between two looks for files to claim (an attach in this process wakes it at once).
POLL_SECONDS = 0.5
#: While no file waits anywhere, the looks grow apart, up to this (a file attached on
#: another replica is indexed there, woken; a replica that dies leaves its claims to run
#: out, which takes a lease anyway). The upkeep's looks, every lease or so, read the queue
#: too (``Ingestion.looked``): an idle replica's own looks then do not come at all.
IDLE_POLL_SECONDS = 5.0
#: Chunks, and their tokens, sent in one embedding call at most.
EMBED_BATCH = 256
EMBED_BATCH_TOKENS = 100_000
#: Bytes a vector of an embedding takes per number (float32).
_FLOAT = 4


#: The usage face of the tokens a file's embedding takes (``docs/usage.md``).
INGEST_FACE = "vector_stores.ingest"


class CountsUsage(Protocol):
    """Where tokens are counted per API key (the engine's ``UsageCounter``)."""

    def count(self, *, user_id: str, key_hash: str, model: str, face: str, used: Usage) -> None:
        """One call made now, with its tokens."""


class _Failure(Exception):
    """Why a file cannot be indexed, as its ``last_error`` says it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Ingestion:
    """The ingestion worker of one replica. ``owner`` names it in the leases (the engine's
    lease owner); ``lease_seconds`` is how long a claim holds unrenewed."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        providers: ProviderRegistry,
        metrics: Metrics,
        *,
        owner: str,
        lease_seconds: float,
        concurrency: int = CONCURRENCY,
        poll_seconds: float = POLL_SECONDS,
        limits: Limits | None = None,
        usage: CountsUsage | None = None,
    ) -> None:
        self.db = db
        self.providers = providers
        #: Counts each file's embedding tokens for the key that attached it.
        self.usage = usage
        self.metrics = metrics
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.storages = Storages(settings, db)
        self.extractor = Extractor(limits, workers=concurrency)
        #: The files being indexed here, by (store, file): their claim and task.
        self.working: dict[tuple[str, str], tuple[store.Claim, asyncio.Task[None]]] = {}
        self._wake = Wake()
        self._loop: asyncio.Task[None] | None = None
        #: When the loop next looks at the queue unless woken (``time.monotonic``); an
        #: idle one's is pushed back by the upkeep's looks (``looked``).
        self._look_by = 0.0

    @property
    def beat(self) -> float:
        """Seconds between lease renewals."""
        return min(1.0, self.lease_seconds / 3)

    def wake(self) -> None:
        """Look for files now (a file was just attached here)."""
        self._wake.set()

    def looked(self, queue: store.Queue) -> None:
        """The queue as the upkeep's look read it (``Upkeep.sweep``: one read for every
        idle look of the replica). A file to claim wakes the loop; with none waiting and
        none indexed here, the loop's own next look is a full idle interval away."""
        self.metrics.ingestion_queue(queue.waiting)
        if queue.claimable:
            self._wake.set()
        elif not queue.waiting and not self.working:
            self._look_by = max(self._look_by, time.monotonic() + IDLE_POLL_SECONDS)

    async def start(self) -> None:
        self._loop = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop looking; stop the files being indexed here and give their claims back
        (another replica takes them at once, the attempt not counted)."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
            self._loop = None
        working = list(self.working.values())
        for _, task in working:
            task.cancel()
        for _, task in working:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if working:
            try:
                await self.db.write(store.release_claims, claims=[c for c, _ in working])
            except Exception:  # a boundary: the leases run out by themselves
                log.exception("giving back the claims of files being indexed failed")
        await self.extractor.close()

    async def _run(self) -> None:
        next_renewal = time.monotonic() + self.beat
        poll = self.poll_seconds
        while True:
            try:
                if time.monotonic() >= next_renewal:
                    next_renewal = time.monotonic() + self.beat
                    await self._renew()
                waiting = await self._claim()
            except Exception:  # a boundary: the next round tries again
                log.exception("file ingestion upkeep failed; retrying")
                waiting = 1
            # Nothing waits: look again less and less often (a wake looks at once).
            idle = not waiting and not self.working
            poll = min(poll * 2, IDLE_POLL_SECONDS) if idle else self.poll_seconds
            wait = poll if idle else max(0.0, min(poll, next_renewal - time.monotonic()))
            self._look_by = time.monotonic() + wait
            await until_woken(self._wake, lambda: self._look_by)
            self._wake.clear()

    async def _renew(self) -> None:
        """Renew the claims of the files indexed here; stop those no longer held."""
        if not self.working:
            return
        claims = [claim for claim, _ in self.working.values()]
        held = await self.db.write_later(
            store.renew_claims, claims=claims, until=now() + self.lease_seconds
        )
        for claim in claims:
            entry = self.working.get(claim.key)
            if claim.key not in held and entry is not None and entry[0] is claim:
                entry[1].cancel()

    async def _claim(self) -> int:
        """Claim the files there is room for; returns how many wait in all."""
        queue = await self.db.read_later(store.queue)
        self.metrics.ingestion_queue(queue.waiting)
        free = self.concurrency - len(self.working)
        if free <= 0 or not queue.claimable:
            return queue.waiting
        claims, gave_up = await self.db.write_later(
            store.claim_files, owner=self.owner, until=now() + self.lease_seconds, limit=free
        )
        for _ in range(gave_up):
            self.metrics.file_indexed("failed", None)
        for claim in claims:
            if claim.key in self.working:  # attached again while indexed here: the old
                self.working[claim.key][1].cancel()  # claim is lost anyway
            task = asyncio.create_task(self._ingest(claim))
            self.working[claim.key] = (claim, task)
        return queue.waiting

    async def _ingest(self, claim: store.Claim) -> None:
        started = time.perf_counter()
        outcome = "lost"
        try:
            outcome = await self._index(claim)
        except _Failure as failure:
            outcome = await self._fail(claim, failure.code, failure.message)
        except asyncio.CancelledError:  # the claim was lost, or the server stops
            self.metrics.file_indexed("lost", time.perf_counter() - started)
            raise
        except Exception:  # a boundary: one file's bug is that file's failure
            log.exception("indexing file %s of %s failed", claim.file_id, claim.vector_store_id)
            message = "The file could not be indexed because of an error in the server."
            outcome = await self._fail(claim, "server_error", message)
        finally:
            entry = self.working.get(claim.key)
            if entry is not None and entry[0] is claim:
                del self.working[claim.key]
                self._wake.set()  # a place is free
        self.metrics.file_indexed(outcome, time.perf_counter() - started)

    async def _fail(self, claim: store.Claim, code: str, message: str) -> str:
        try:
            failed = await self.db.write(store.fail_file, claim=claim, code=code, message=message)
        except Exception:  # a boundary: the lease runs out, and the file is tried again
            log.exception("marking file %s failed did not work", claim.file_id)
            return "lost"
        return "failed" if failed else "lost"

    async def _index(self, claim: store.Claim) -> str:
        data = await self._bytes(claim)
        try:
            extracted = await self.extractor.extract(data, claim.filename, claim.mime_type)
        except UnsupportedFile as exc:
            message = f"The file cannot be indexed: {exc.message}."
            raise _Failure("unsupported_file", message) from None
        except ExtractionFailed as exc:
            message = f"The file's text could not be read ({exc.reason}): {exc.message}."
            raise _Failure("invalid_file", message) from None
        del data
        pieces, usage = await asyncio.to_thread(_cut, extracted.text, claim.chunking_strategy)
        embeddings = await self._embed(claim, pieces)
        if embeddings:
            usage += sum(_FLOAT * len(v) for v in embeddings)
        # PostgreSQL breaks a deadlock with another writer of the store's rows (a lease
        # renewal, a detach, a batch) by aborting one side: this write, run again.
        return await self.db.write_retried(
            store.complete_file,
            claim=claim,
            pieces=pieces,
            embeddings=embeddings,
            usage_bytes=usage,
        )

    async def _bytes(self, claim: store.Claim) -> bytes:
        most = self.extractor.limits.max_bytes
        if claim.size > most:
            raise _Failure(
                "invalid_file",
                f"The file's text could not be read (too_large): the file is "
                f"{claim.size / MB:,.1f} MiB, more than the limit of {most / MB:,.1f} MiB.",
            )
        parts: list[bytes] = []
        try:
            async for part in self.storages.of(claim.storage).read(claim.storage_key):
                parts.append(part)
        except OSError:
            raise _Failure("server_error", "The file's bytes could not be read.") from None
        return b"".join(parts)

    async def _embed(self, claim: store.Claim, pieces: list[Chunk]) -> list[list[float]] | None:
        model = claim.embedding_model
        if not model or not pieces:
            return None
        vectors: list[list[float]] = []
        tokens = 0
        try:
            for batch in _batches(pieces):
                result = await self.providers.embed(model, [p.text for p in batch])
                vectors += result.vectors
                tokens += result.input_tokens
        except InvalidRequest as exc:
            raise _Failure(
                "server_error",
                f"The embedding model {model} refused the file's chunks: {exc.message}",
            ) from None
        except ParleyError as exc:
            raise _Failure(
                "server_error", f"The embedding model {model} failed: {exc.message}"
            ) from None
        if self.usage is not None and claim.key_hash is not None:
            self.usage.count(
                user_id=claim.user_id,
                key_hash=claim.key_hash,
                model=self.providers.qualified(model),
                face=INGEST_FACE,
                used=Usage(input_tokens=tokens),
            )
        return vectors


def _cut(text: str, strategy: dict[str, Any]) -> tuple[list[Chunk], int]:
    """The text's chunks by the file's strategy, and the bytes their text takes."""
    parsed = parse_chunking_strategy(strategy)
    pieces = chunk(text, max_tokens=parsed.max_tokens, overlap=parsed.overlap)
    return pieces, sum(len(p.text.encode()) for p in pieces)


def _batches(pieces: list[Chunk]) -> Iterator[list[Chunk]]:
    """The chunks in groups of at most ``EMBED_BATCH`` chunks and ``EMBED_BATCH_TOKENS``
    tokens: one embedding call each (OpenAI takes 300,000 tokens a request at most)."""
    batch: list[Chunk] = []
    tokens = 0
    for piece in pieces:
        if batch and (len(batch) >= EMBED_BATCH or tokens + piece.tokens > EMBED_BATCH_TOKENS):
            yield batch
            batch, tokens = [], 0
        batch.append(piece)
        tokens += piece.tokens
    if batch:
        yield batch
