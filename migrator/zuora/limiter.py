"""The requests in flight per session: our own FIFO queue in front of aiohttp's connection pool,
sized by an AdaptiveLimit (ENGINEERING §3: queue in our limiters, never in the pool).
"""

from __future__ import annotations

import asyncio
import collections
import weakref

import aiohttp

from migrator.core.pacing import AdaptiveLimit


class Limiter:
    """Our own FIFO queue in front of the connection pool, sized by an AdaptiveLimit.

    Release is synchronous so a cancelled call can never leak a slot.
    """

    def __init__(self, limit: AdaptiveLimit) -> None:
        self.adaptive = limit
        self.in_flight = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if not self._waiters and self.in_flight < self.adaptive.limit:
            self.in_flight += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            await future  # the slot is counted for us by _wake before the future resolves
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled at once: hand the slot on
            else:
                try:
                    self._waiters.remove(future)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.adaptive.limit:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)


session_limiters: weakref.WeakKeyDictionary[aiohttp.ClientSession, Limiter] = (
    weakref.WeakKeyDictionary()
)
