"""The one gateway-side protocol client (agent/boards/client.py): over any byte stream, and on the
agent's path a file transfer that shrinks its chunks on a noisy line."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from linkkit import SlowSink, session_for, setup_doc

from agent.boards.client import BoardClient, NoAnswer, Refused
from agent.boards.link import LinkClosed
from firmware.streetfw import wire


class MemoryBoard:
    """A byte stream with a tiny board behind it: it loses the first copy of every request, so each
    answer needs the retry, and answers the retry by the same id."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.deframer = wire.Deframer()
        self.ids: list[int] = []

    async def read(self) -> bytes:
        data = await self.incoming.get()
        if data is None:
            raise LinkClosed("closed")
        return data

    def write(self, data: bytes) -> None:
        for ftype, seq, body in self.deframer.feed(data):
            if ftype != wire.CMD:
                continue
            self.ids.append(body["id"])
            if self.ids.count(body["id"]) == 1 or body["op"] == "sleep":
                continue  # lost on the way
            ok = body["op"] == "echo"
            answer = {"id": body["id"], "ok": ok, ("r" if ok else "e"): body["a"] if ok else "no such op"}
            self.incoming.put_nowait(wire.encode_frame(wire.RESULT, seq, answer))
            self.incoming.put_nowait(wire.encode_frame(wire.LOG, seq, {"l": "info", "m": body["op"]}))


async def test_the_client_speaks_over_any_byte_stream() -> None:
    board = MemoryBoard()
    retries: list[int] = []
    client = BoardClient("board m", on_retry=lambda: retries.append(1), timeout_s=0.1, tries=3)
    client.attach(board)
    reader = asyncio.create_task(client.receive())
    try:
        assert await client.command("echo", x=1) == {"x": 1}
        assert board.ids[0] == board.ids[1], "a retry reuses the request id"
        with pytest.raises(Refused, match=r"^no such op$"):
            await client.command("format")
        with pytest.raises(NoAnswer, match=r"board m did not answer \(3 tries\)"):
            await client.command("sleep")
        assert list(client.logs) == ["info: echo", "info: format"]
        assert len(retries) == 4  # one per answered request, two for the one never answered
    finally:
        board.incoming.put_nowait(None)
        with pytest.raises(LinkClosed):
            await reader


async def test_on_a_noisy_line_the_agent_sends_a_file_in_smaller_chunks(make_board) -> None:
    # At 1e-4 about a third of 512-byte frames are hit; the lost chunks are sent again, smaller.
    board = make_board(setup=setup_doc(interval_s=1.0, report_s=1.0), ber=1e-4, seed=11)
    data = bytes(range(256)) * 32  # 8 KiB
    session = session_for(board, SlowSink())
    task = asyncio.create_task(session.run())
    try:
        await asyncio.wait_for(session.connected.wait(), 30)
        sent: list[int] = []
        started = time.monotonic()
        await session.send_file("/fw/9.9.9/big.bin", data, progress=sent.append)
        took = time.monotonic() - started
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert (board.flash / "fw/9.9.9/big.bin").read_bytes() == data
    assert sum(sent) == len(data)
    assert min(sent) < 512, f"no chunk was sent smaller: {sorted(set(sent))}"
    assert board.link.rx_faults.flipped > 0, "the line really was noisy"
    assert took < 60, f"8 KiB took {took:.0f} s"
