"""A thread's history as its model calls see it, kept between turns.

A turn sends the model the thread's messages (``streaming.build_request``). Reading them
all from the database, and turning every row into a ``ChatMessage`` again, cost each turn
time in proportion to the thread's length. ``HistoryCache`` keeps each thread's history
as ``Item`` values (the stored message, what the model sees of it, its estimated tokens),
so that a turn reads only the rows written since the thread's last turn: after a tool
call and its results are saved (flow B), the next turn reads those few rows, and a turn
on an unchanged thread reads none.

Exact, as the database is the source of truth: a thread's ``message_count`` (the last
sequence number it gave out) says which rows are new, and its ``context_version``, which
every change to an existing message bumps (``threads.delete_message``,
``threads.update_message``), says that the kept history is out of date and must be read
again. Only rows committed by earlier transactions are kept (a claim reads before it
writes), and only messages whose turn has ended: a claim reads with no turn running on
the thread.

With Redis configured (``PARLEY_REDIS_URL``), replicas share the rows they read: a
replica that has not yet kept a thread's history reads it from Redis (``SharedHistory``)
rather than from the database, and appends what it reads from the database there.

The process keeps at most ``context_cache_mb`` megabytes of histories (estimated from
their text), dropping the least recently used threads first.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from parley.engine import compaction
from parley.engine.context import estimate
from parley.engine.thread_item import Item
from parley.providers.base import ChatMessage, FileInput
from parley.store import threads as thread_store
from parley.store.records import Message
from parley.types import Role, ToolCall, file_entries, image_urls

log = logging.getLogger(__name__)

#: Bytes a kept message is taken to cost besides its text (the objects that hold it).
_OVERHEAD = 600


def item_of(m: Message) -> Item | None:
    """The ``Item`` of a stored message; None for an answer that produced nothing (a turn
    that failed before its first token) and for a hosted tool's item that answers no call
    (``messages.item``), which no model call sends. A compaction marker's is its summary."""
    covers = compaction.marker_covers(m.item)
    if covers is not None:
        assert m.item is not None
        chat = compaction.summary_chat(m.item)
        return Item(message=m, chat=chat, cost=estimate(chat), counted=None, compacts=covers)
    if m.item is not None and m.role != Role.TOOL:
        return None  # a hosted tool's own item (a tool list, an approval): not for the model
    calls = [ToolCall.model_validate(c) for c in m.tool_calls or ()]
    state = m.provider_state
    if m.role == Role.ASSISTANT and not m.content and not calls and not state:
        return None
    chat = ChatMessage(
        role=Role(m.role),
        content=m.content,
        reasoning=m.reasoning,
        tool_calls=calls,
        tool_call_id=m.tool_call_id,
        images=image_urls(m.images),
        files=[file_input(f) for f in file_entries(m.images)],
        provider_state=state,
    )
    counted = None
    usage = m.usage
    if usage and usage.get("input_tokens"):
        counted = (
            usage["input_tokens"] + usage.get("output_tokens", 0) - usage.get("reasoning_tokens", 0)
        )
    return Item(message=m, chat=chat, cost=estimate(chat), counted=counted)


def file_input(entry: dict[str, Any]) -> FileInput:
    """What the model call is given of a stored file (``types.file_entries``), still to
    be read (``engine.file_inputs``): the user's file by its id, or the bytes given inline
    (a data URL, checked when the message was created)."""
    filename = entry.get("filename") or "file"
    inline = entry.get("file_data")
    if not isinstance(inline, str):
        return FileInput(filename=filename, file_id=entry.get("file_id"))
    head, _, data = inline.partition(",")
    media_type = head.removeprefix("data:").removesuffix(";base64") or None
    return FileInput(filename=filename, data=base64.b64decode(data), media_type=media_type)


def items_of(messages: Iterable[Message]) -> list[Item]:
    """The items of ``messages``, less the answers no model call sends (``item_of``)."""
    return [i for i in map(item_of, messages) if i is not None]


def view(items: list[Item], mark: int | None = None) -> list[Item]:
    """What a model call sees of a thread's ``items`` (in order): from its newest
    compaction marker (at index ``mark``, else looked for), the marker's summary, then the
    messages after those it covers (``engine.compaction``); all of them when it has none.
    The marker, whose sequence number follows the messages of its turn, goes first: in a
    view only the first item can be out of order (``last_seq``)."""
    if mark is None:
        mark = newest_mark(items)
    if mark < 0:
        return items
    marker = items[mark]
    covers = marker.compacts
    assert covers is not None
    start = mark
    while start > 0 and items[start - 1].message.seq > covers:
        start -= 1
    return [marker, *items[start:mark], *items[mark + 1 :]]


def newest_mark(items: list[Item]) -> int:
    """The index of the newest compaction marker among ``items``; -1 when there is none."""
    for index in range(len(items) - 1, -1, -1):
        if items[index].compacts is not None:
            return index
    return -1


def last_seq(items: list[Item]) -> int:
    """The highest sequence number among a view's ``items`` (0: none)."""
    if not items:
        return 0
    return max(items[0].message.seq, items[-1].message.seq)


@dataclass(slots=True)
class _Kept:
    """A thread's history as kept: ``items`` holds every message with a sequence number
    up to ``last_seq`` at ``version``. ``items`` only grows; a reader takes its length."""

    version: int
    last_seq: int
    items: list[Item]
    size: int
    #: The index of the newest compaction marker in ``items`` (-1: none), as far as the
    #: length they had when this was made.
    mark: int = -1


def _size(items: Iterable[Item]) -> int:
    return sum(
        len(i.message.content) + len(i.message.reasoning or "") + _given(i.message) + _OVERHEAD
        for i in items
    )


def _given(m: Message) -> int:
    """The characters of the images and files a message keeps inline (data URLs)."""
    return sum(len(a.get("url") or a.get("file_data") or "") for a in m.images or ())


class HistoryCache:
    """Threads' histories, kept in this process (and shared through Redis, when set).

    ``read`` runs inside a transaction, on a database thread; the cache is shared by all
    of them and guarded by one lock, held only to look up and to store."""

    def __init__(self, *, max_bytes: int, shared: SharedHistory | None = None) -> None:
        self.max_bytes = max_bytes
        self.shared = shared
        self._kept: OrderedDict[str, _Kept] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Rows read from the database, and read from Redis, by all ``read`` calls (for
        #: tests and the benchmark).
        self.rows_read = 0
        self.rows_shared = 0

    def read(self, conn: Connection, *, thread_id: str, before: int | None = None) -> list[Item]:
        """The thread's messages as its model calls see them (``view``: from its newest
        compaction), in order, up to the newest one (``before``: only those with a lower
        sequence number); read inside the caller's transaction, with no turn running on
        the thread, and before the transaction writes any message of it."""
        version, last = thread_store.thread_state(conn, thread_id=thread_id)
        if before is not None:
            last = min(last, before - 1)
        with self._lock:
            kept = self._kept.get(thread_id)
            if kept is not None:
                self._kept.move_to_end(thread_id)
                count, mark = len(kept.items), kept.mark
        if kept is not None and kept.version == version:
            items = kept.items[:count]
            if kept.last_seq >= last:  # a transaction begun before the last one that read
                while items and items[-1].message.seq > last:
                    items.pop()
                return view(items, mark if mark < len(items) else None)
            new = self._rows(conn, thread_id, kept.last_seq + 1, last)
            self._store(thread_id, version, last, new, kept, count)
            self._share(thread_id, version, kept.last_seq, last, new)
            newer = newest_mark(new)
            return view(items + new, count + newer if newer >= 0 else mark)
        items = self._from_shared(thread_id, version, last)
        start = items[-1].message.seq + 1 if items else 1
        new = self._rows(conn, thread_id, start, last)
        self._store(thread_id, version, last, items + new, None, 0)
        self._share(thread_id, version, start - 1 if items else 0, last, new, fresh=not items)
        return view(items + new)

    def kept_messages(self, thread_id: str) -> int | None:
        """How many messages of the thread are kept (None: none)."""
        with self._lock:
            kept = self._kept.get(thread_id)
            return None if kept is None else len(kept.items)

    def _rows(self, conn: Connection, thread_id: str, first: int, last: int) -> list[Item]:
        if first > last:
            return []
        rows = thread_store.messages_between(conn, thread_id=thread_id, first=first, last=last)
        self.rows_read += len(rows)
        return items_of(rows)

    def _store(
        self,
        thread_id: str,
        version: int,
        last: int,
        new: list[Item],
        kept: _Kept | None,
        count: int,
    ) -> None:
        added = _size(new)
        with self._lock:
            current = self._kept.get(thread_id)
            newer = newest_mark(new)
            if kept is not None and current is kept and len(kept.items) == count:
                kept.items.extend(new)  # readers hold their own length: they see no change
                mark = count + newer if newer >= 0 else kept.mark
                replacement = _Kept(version, last, kept.items, kept.size + added, mark)
            elif kept is not None:  # another reader changed it meanwhile: start again
                items = kept.items[:count] + new
                replacement = _Kept(version, last, items, _size(items), newest_mark(items))
            else:
                replacement = _Kept(version, last, new, added, newer)
            if current is not None:
                self._bytes -= current.size
                del self._kept[thread_id]
            if replacement.size > self.max_bytes:  # too large to keep at all
                return
            self._kept[thread_id] = replacement
            self._kept.move_to_end(thread_id)
            self._bytes += replacement.size
            while self._bytes > self.max_bytes and len(self._kept) > 1:
                _, oldest = self._kept.popitem(last=False)
                self._bytes -= oldest.size

    def _from_shared(self, thread_id: str, version: int, last: int) -> list[Item]:
        if self.shared is None:
            return []
        try:
            rows = self.shared.read(thread_id, version, last)
        except Exception:
            log.warning("could not read a thread's history from Redis", exc_info=True)
            return []
        self.rows_shared += len(rows)
        return items_of(rows)

    def _share(
        self,
        thread_id: str,
        version: int,
        after: int,
        last: int,
        new: list[Item],
        *,
        fresh: bool = False,
    ) -> None:
        if self.shared is None or not new:
            return
        self.shared.append(thread_id, version, after, last, [i.message for i in new], fresh=fresh)


#: Appends rows to a thread's shared history only when it ends where they begin, so two
#: replicas appending at once cannot leave a gap or a row twice. KEYS: the list, its end;
#: ARGV: the sequence number the list must end at ("0": may be new), the new end, the
#: time to live, then the rows.
_APPEND = """
local ends = redis.call('GET', KEYS[2])
if ARGV[1] == '0' then
  redis.call('DEL', KEYS[1])
elseif ends ~= ARGV[1] then
  return 0
end
for i = 4, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class SharedHistory:
    """Threads' histories in Redis, for every replica: a list of stored rows per thread
    and ``context_version``, and the sequence number the list ends at. Written in the
    background, off the database thread; a history that is out of date or incomplete is
    never used (``HistoryCache.read`` checks it against the thread)."""

    def __init__(self, url: str, *, ttl_seconds: int = 24 * 3600, prefix: str = "parley") -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.ttl = ttl_seconds
        self.prefix = prefix
        self._append = self.client.register_script(_APPEND)
        self._queue: list[tuple[Any, ...]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="parley-history", daemon=True)
        self._writer.start()

    def _keys(self, thread_id: str, version: int) -> tuple[str, str]:
        base = f"{self.prefix}:history:{thread_id}:{version}"
        return base, base + ":end"

    def read(self, thread_id: str, version: int, last: int) -> list[Message]:
        """The rows kept for the thread at ``version``, up to ``last`` (a list always starts
        at the thread's first message: it is begun only from a whole read, ``fresh``)."""
        rows_key, end_key = self._keys(thread_id, version)
        pipe = self.client.pipeline(transaction=True)
        pipe.get(end_key)
        pipe.lrange(rows_key, 0, -1)
        end, raw = pipe.execute()
        if end is None or not raw:
            return []
        rows = [Message(**orjson.loads(r)) for r in raw]
        return [m for m in rows if m.seq <= last]

    def append(
        self,
        thread_id: str,
        version: int,
        after: int,
        last: int,
        rows: list[Message],
        *,
        fresh: bool = False,
    ) -> None:
        """Queue ``rows`` (sequence numbers ``after`` + 1 up to ``last``) for the list."""
        encoded = [orjson.dumps(m.values()) for m in rows]
        with self._wake:
            self._queue.append((thread_id, version, 0 if fresh else after, last, encoded))
            self._wake.notify()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what is queued is written (for tests)."""
        with self._wake:
            self._wake.wait_for(lambda: not self._queue, timeout)

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._writer.join(timeout=5)
        self.client.close()

    def _write_loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._queue or self._closed)
                if self._closed and not self._queue:
                    return
                batch = list(self._queue)
            for thread_id, version, after, last, encoded in batch:
                rows_key, end_key = self._keys(thread_id, version)
                try:
                    self._append(keys=[rows_key, end_key], args=[after, last, self.ttl, *encoded])
                except Exception:
                    log.warning("could not share a thread's history in Redis", exc_info=True)
            with self._wake:
                del self._queue[: len(batch)]
                self._wake.notify_all()
