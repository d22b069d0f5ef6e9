"""The flows open at once, oldest activity first: what keeps the trackers' memory bounded.

A flow is retired (handed out by ``drain``) once it has been quiet for ``linger`` seconds
of capture time, when the table is full (the oldest goes first, counted in ``evicted``),
or at the end of the capture (``close``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar


class Flow(Protocol):
    @property
    def last_ts(self) -> float: ...


K = TypeVar("K", bound=Hashable)
F = TypeVar("F", bound=Flow)


class FlowTable(Generic[K, F]):
    def __init__(self, linger: float, max_open: int) -> None:
        self.linger = linger
        self.max_open = max_open
        self.evicted = 0
        self._open: OrderedDict[K, F] = OrderedDict()
        self._done: list[F] = []

    def get(self, key: K) -> F | None:
        return self._open.get(key)

    def touch(self, key: K) -> None:
        """The flow under *key* just saw a packet: it becomes the newest."""
        self._open.move_to_end(key)

    def add(self, key: K, flow: F) -> None:
        if len(self._open) >= self.max_open:
            self.evicted += 1
            self.retire(next(iter(self._open)))
        self._open[key] = flow

    def expire(self, now: float) -> None:
        """Retire the flows quiet for ``linger`` seconds before *now*."""
        while self._open:
            key, flow = next(iter(self._open.items()))
            if now - flow.last_ts < self.linger:
                return
            self.retire(key)

    def retire(self, key: K) -> None:
        self._done.append(self._open.pop(key))

    def drain(self) -> list[F]:
        """The flows retired since the last call, in the order they were retired."""
        done, self._done = self._done, []
        return done

    def close(self) -> list[F]:
        """Retire everything (end of capture) and return what was not drained yet."""
        for key in list(self._open):
            self.retire(key)
        return self.drain()
