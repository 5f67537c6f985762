"""A follower's tap (``engine.tap``): while the follower waits, the turn's events go
straight to its sink (the first of a round of the event loop at once, the others of the
round in one write at its end), in order and once each; a turn's end, a sink that is not ready or
that fails, and the channel's close go back to the follower, which reads on from there."""

from __future__ import annotations

import asyncio

from parley.engine.hub import Entry, Followed, RunChannel


class Socket:
    """A sink that frames a batch (``_frames``) and takes the bytes at once while ``open``,
    and fails when told to."""

    ready = True

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.open = True
        self.broken = False

    def write(self, batch: list[Entry]) -> bool:
        if self.broken:
            raise OSError("gone")
        if self.open:
            self.written.append(_frames(batch))
        return self.open


def _entry(seq: int, kind: str = "content.delta") -> Entry:
    return (seq, kind, f'{{"n":{seq}}}')


def _frames(batch: list[Entry]) -> bytes:
    return b"".join(b"%d;" % seq for seq, _, _ in batch)


async def _start(
    channel: RunChannel,
) -> tuple[Followed, Socket, list[list[Entry]], asyncio.Task[None]]:
    followed = Followed(channel, 0, idle_timeout=30)
    socket = Socket()
    followed.write_to(socket)
    read: list[list[Entry]] = []

    async def reader() -> None:
        async for batch in followed:
            read.append(batch)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)  # the follower waits now
    return followed, socket, read, task


async def test_the_tap_writes_while_the_follower_waits_and_the_end_goes_to_it() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    channel.publish(_entry(1))
    assert socket.written == [b"1;"]  # at once
    await asyncio.sleep(0)
    channel.publish(_entry(2))
    assert socket.written == [b"1;", b"2;"]
    channel.publish_many([_entry(3, "run.status"), _entry(4, "done")])
    channel.close()
    await task
    assert read == [[_entry(3, "run.status"), _entry(4, "done")]]  # nothing twice


async def test_the_entries_after_the_first_of_a_round_go_out_in_one_write() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    for seq in range(1, 6):  # a model's parts that came in one read
        channel.publish(_entry(seq))
    assert socket.written == [b"1;"]  # the first at once, the rest at the round's end
    await asyncio.sleep(0)
    assert socket.written == [b"1;", b"2;3;4;5;"]
    channel.publish(_entry(6))  # a new round
    assert socket.written == [b"1;", b"2;3;4;5;", b"6;"]
    channel.close()
    await task
    assert read == []


async def test_entries_held_when_the_turn_ends_in_the_same_round_go_to_the_follower() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    channel.publish(_entry(1))
    channel.publish(_entry(2))
    channel.publish(_entry(3))
    channel.publish_many([_entry(4, "run.status"), _entry(5, "done")])
    channel.close()
    await task
    assert socket.written == [b"1;"]
    assert read == [[_entry(2), _entry(3), _entry(4, "run.status"), _entry(5, "done")]]


async def test_a_done_published_alone_wakes_the_follower() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    channel.publish(_entry(1))
    await asyncio.sleep(0)
    channel.publish(_entry(2, "done"))
    await asyncio.sleep(0.01)
    channel.close()
    await task
    assert socket.written == [b"1;"]
    assert read == [[_entry(2, "done")]]


async def test_a_sink_not_ready_leaves_the_entries_to_the_follower_then_taps_again() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    channel.publish(_entry(1))
    await asyncio.sleep(0)
    socket.open = False
    channel.publish(_entry(2))  # the sink does not take it: the follower's, as all after
    channel.publish(_entry(3))
    await asyncio.sleep(0.01)
    socket.open = True
    channel.publish(_entry(4))  # the follower waits again, tapped
    await asyncio.sleep(0)
    socket.broken = True
    channel.publish(_entry(5))  # a failing sink: the follower's too
    await asyncio.sleep(0.01)
    channel.close()
    await task
    assert socket.written == [b"1;", b"4;"]
    assert read == [[_entry(2), _entry(3)], [_entry(5)]]


async def test_entries_held_for_a_sink_no_longer_ready_go_to_the_follower() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, socket, read, task = await _start(channel)
    channel.publish(_entry(1))
    channel.publish(_entry(2))
    socket.open = False  # full by the round's end
    channel.publish(_entry(3))
    await asyncio.sleep(0.01)
    channel.close()
    await task
    assert socket.written == [b"1;"]
    assert read == [[_entry(2), _entry(3)]]


async def test_one_tap_writes_at_a_time_and_other_followers_read_everything() -> None:
    channel = RunChannel("run_1", first_seq=1)
    _, first, first_read, first_task = await _start(channel)
    _, second, second_read, second_task = await _start(channel)
    plain = asyncio.create_task(_all(channel))
    await asyncio.sleep(0)
    for seq in range(1, 4):
        channel.publish(_entry(seq))
        await asyncio.sleep(0)
    channel.close()
    await asyncio.gather(first_task, second_task)
    by_tap = [first.written, second.written]
    by_reading = [[e[0] for b in first_read for e in b], [e[0] for b in second_read for e in b]]
    for written, read in zip(by_tap, by_reading, strict=True):
        # Each follower gets every entry once: some through its tap, the rest read.
        assert sorted([int(w[:-1]) for w in written] + read) == [1, 2, 3]
    assert [e[0] for b in await plain for e in b] == [1, 2, 3]


async def _all(channel: RunChannel) -> list[list[Entry]]:
    return [batch async for batch in channel.follow(0, idle_timeout=30)]


async def _deliver(tapped: bool) -> tuple[bytes, int]:
    """A turn's entries, published in rounds of one to three, with a sink that stops
    taking bytes for two rounds, then the turn's end: the bytes that reach the client
    (written by the tap, or read by the follower and framed, in the order they go out),
    and how many writes the tap made."""
    channel = RunChannel("run_1", first_seq=1)
    out: list[bytes] = []
    socket = Socket()
    socket.written = out
    followed = Followed(channel, 0, idle_timeout=30)
    if tapped:
        followed.write_to(socket)
    read = 0

    async def reader() -> None:
        nonlocal read
        async for batch in followed:
            out.append(_frames(batch))
            read += 1

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    seq = 0
    for round_, size in enumerate([1, 3, 2, 1, 3, 1, 2]):
        socket.open = round_ not in (3, 4)
        for _ in range(size):
            seq += 1
            channel.publish(_entry(seq))
        await asyncio.sleep(0.001)
    channel.publish_many([_entry(seq + 1, "run.status"), _entry(seq + 2, "done")])
    channel.close()
    await task
    return b"".join(out), len(out) - read


async def test_the_tap_delivers_what_the_plain_path_does() -> None:
    tapped, writes = await _deliver(tapped=True)
    plain, none = await _deliver(tapped=False)
    assert tapped == plain == b"".join(b"%d;" % n for n in range(1, 16))
    assert writes >= 5 and none == 0  # the tap did write, in every round it could
