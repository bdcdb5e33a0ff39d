"""Time as a test of an expiring value sees it: real for a server, fake for the in-process store."""

import asyncio
import time


class TestClock:
    """Real time until ``fake`` is set; then ``sleep`` advances ``now`` at once.

    The in-process store reads ``now`` (``MemoryStore(clock=...)``), so a test that waits out a
    TTL costs no time on it, while the same test body waits for real against a real server.
    """

    __test__ = False  # not a test class, despite the name

    def __init__(self) -> None:
        self.fake = False
        self._fake_now = 0.0

    def now(self) -> float:
        return self._fake_now if self.fake else time.monotonic()

    async def sleep(self, seconds: float) -> None:
        if self.fake:
            self._fake_now += seconds
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds)
