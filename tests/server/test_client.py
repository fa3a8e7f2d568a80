"""A slow page gets the newest live view, never a growing queue."""

import asyncio

from pipilot.core.clock import VirtualClock
from pipilot.server.app import OUTBOX_LIMIT, Client
from pipilot.server.protocol import TokenBucket


class StuckSocket:
    """A websocket whose peer stopped reading: the first send never completes."""

    def __init__(self):
        self.sent = []
        self.closed = False
        self.gate = asyncio.Event()
        self.close_codes = []

    async def send_str(self, text):
        await self.gate.wait()
        self.sent.append(text)

    async def close(self, code=1000, message=b""):
        self.close_codes.append(code)
        self.closed = True
        self.gate.set()


async def test_live_view_keeps_only_the_newest_update_for_a_slow_page():
    ws = StuckSocket()
    c = Client("p1", ws, True, TokenBucket(10, 10, VirtualClock()))
    c.offer_state("s0")
    await asyncio.sleep(0.01)  # the sender is now stuck sending s0
    for i in range(1, 1000):
        c.offer_state(f"s{i}")
    ws.gate.set()
    await asyncio.sleep(0.01)
    assert ws.sent == ["s0", "s999"]
    c.task.cancel()


async def test_a_page_that_never_reads_its_replies_is_closed():
    ws = StuckSocket()
    c = Client("p1", ws, True, TokenBucket(10, 10, VirtualClock()))
    c.reply("first")
    await asyncio.sleep(0.01)
    for i in range(OUTBOX_LIMIT + 1):
        c.reply(f"r{i}")
    await asyncio.sleep(0.01)
    assert ws.close_codes == [1008]
    c.task.cancel()
