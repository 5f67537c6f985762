"""The live run channel: followers read from any sequence number, are woken by each
publish, and get an empty batch (a keep-alive cue) only after an interval without news."""

from __future__ import annotations

import asyncio
import itertools
import time

from parley.engine.hub import Entry, RunChannel


def _entry(seq: int) -> Entry:
    return (seq, "content.delta", f'{{"n":{seq}}}')


async def _collect(channel: RunChannel, after: int, idle: float) -> list[list[Entry]]:
    return [batch async for batch in channel.follow(after, idle_timeout=idle)]


async def test_a_follower_reads_from_its_sequence_number_to_the_close() -> None:
    channel = RunChannel("run_1", first_seq=5)
    channel.publish(_entry(5))
    channel.publish(_entry(6))
    reader = asyncio.create_task(_collect(channel, after=5, idle=10))
    await asyncio.sleep(0.01)
    channel.publish(_entry(7))
    await asyncio.sleep(0.01)
    channel.publish_many([_entry(8), _entry(9)])
    channel.close()
    batches = await reader
    assert [e[0] for batch in batches for e in batch] == [6, 7, 8, 9]
    assert all(batches)  # no keep-alive cue within the interval


async def test_an_empty_batch_comes_after_an_interval_without_news_only() -> None:
    channel = RunChannel("run_1", first_seq=1)
    seen: list[tuple[float, int]] = []
    started = time.monotonic()

    async def read() -> None:
        async for batch in channel.follow(0, idle_timeout=0.2):
            seen.append((time.monotonic() - started, len(batch)))

    reader = asyncio.create_task(read())
    for seq in range(1, 11):  # news every 50 ms for half a second: no cue
        channel.publish(_entry(seq))
        last_news = time.monotonic() - started
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # then quiet: a cue after 0.2 s, and again after 0.2 s more
    channel.close()
    await reader
    cues = [at for at, size in seen if size == 0]
    assert [size for _, size in seen if size] == [1] * 10
    assert len(cues) in (2, 3), seen
    assert cues[0] >= last_news + 0.18, seen  # the loop's clock may round a little
    assert all(later - earlier >= 0.15 for earlier, later in itertools.pairwise(cues))


async def test_a_follower_that_stops_early_leaves_no_timer_behind() -> None:
    channel = RunChannel("run_1", first_seq=1)
    channel.publish(_entry(1))
    follow = channel.follow(0, idle_timeout=0.05)
    assert await follow.__anext__() == [_entry(1)]
    await follow.aclose()
    loop = asyncio.get_running_loop()
    assert isinstance(loop, asyncio.BaseEventLoop)  # its timers can be looked at
    timers = [h for h in loop._scheduled if not h.cancelled()]
    assert not any("_Quiet" in repr(h) for h in timers)
    # Not stopped, it would be there.
    kept = channel.follow(0, idle_timeout=0.05)
    await kept.__anext__()
    assert any("_Quiet" in repr(h) for h in loop._scheduled if not h.cancelled())
    await kept.aclose()
