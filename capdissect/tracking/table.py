"""The flows open at once, oldest activity first: what keeps the trackers' memory bounded.

A flow is retired (handed out by ``drain``) once it has been quiet for ``linger`` seconds,
when the table is full (the oldest goes first, counted in ``evicted``), or at the end of
the capture (``close``).  A flow the owner says to *keep* (an established TCP connection:
it has no timeout of its own, and its next segment continues it) waits ``idle`` seconds
instead, so an idle gap does not cut it in two.

Flows the owner marks *young* when it adds them (a bare SYN nobody has answered) have a
cap of their own, ``max_young``: past it the oldest young flow is retired early (counted in
``evicted`` too).  A SYN flood is then bounded by what a kernel would hold (its SYN
backlog), not by ``max_open`` whole connections.

Quiet time is counted on the table's own clock, which follows the capture's timestamps
except where the whole capture is silent for ``linger`` or more, or its clock jumps
(forward by hours, or back): such a step counts as nothing, so a gap in the capture
(a paused capture, a clock set at the capture point) retires nothing by itself.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
F = TypeVar("F")

IDLE: Final = 7200.0  # Linux's tcp_keepalive_time: a quiet established connection lives on
# ``expire`` looks at the oldest flows only from a clock this much before the first of
# them could retire: the bound is then safe from the rounding of its sum.
_DUE_EARLY: Final = 1e-6
_NEVER: Final = float("inf")


class FlowTable(Generic[K, F]):
    def __init__(self, linger: float, max_open: int, keep: Callable[[F], bool] | None = None,
                 idle: float = IDLE, max_young: int | None = None) -> None:
        self.linger = linger
        self.idle = max(idle, linger)
        self.max_open = max_open
        self.max_young = max_open if max_young is None else max_young
        self.keep = keep
        self.evicted = 0
        self._open: OrderedDict[K, F] = OrderedDict()  # by last activity
        self._idle: OrderedDict[K, F] = OrderedDict()  # kept flows quiet past linger
        self._seen: dict[K, float] = {}  # last activity, on the table's clock
        self._young: OrderedDict[K, None] = OrderedDict()  # young flows, oldest first
        self._clock = 0.0
        # No flow retires before the clock reaches this: every packet calls ``expire``,
        # and most retire nothing.
        self._due = _NEVER
        self._now: float | None = None
        self._done: list[F] = []
        # Of the flows retired and not drained yet, how many the idle pass of ``expire``
        # retired: they are the last ones (capdissect/tracking/shards.py orders by it).
        self.retired_idle = 0

    def __len__(self) -> int:
        return len(self._open) + len(self._idle)

    @property
    def retiring(self) -> bool:
        """Whether flows were retired since the last ``drain``."""
        return bool(self._done)

    @property
    def young_count(self) -> int:
        """How many young flows are open."""
        return len(self._young)

    @property
    def idle_count(self) -> int:
        """How many kept flows are quiet past linger (``close`` retires them first)."""
        return len(self._idle)

    def get(self, key: K) -> F | None:
        flow = self._open.get(key)
        return flow if flow is not None else self._idle.get(key)

    def touch(self, key: K) -> None:
        """The flow under *key* just saw a packet: it becomes the newest."""
        flow = self._idle.pop(key, None)
        if flow is not None:
            self._open[key] = flow
        self._open.move_to_end(key)
        self._seen[key] = self._clock
        self._may_retire_at(self._clock + self.linger)

    def add(self, key: K, flow: F, young: bool = False) -> None:
        if len(self._open) + len(self._idle) >= self.max_open:
            self.evicted += 1
            self.retire(next(iter(self._idle or self._open)))
        if young:
            if len(self._young) >= self.max_young:
                self.evicted += 1
                self.retire(next(iter(self._young)))
            self._young[key] = None
        self._open[key] = flow
        self._seen[key] = self._clock
        self._may_retire_at(self._clock + self.linger)

    def _may_retire_at(self, due: float) -> None:
        if due - _DUE_EARLY < self._due:
            self._due = due - _DUE_EARLY

    def grown(self, key: K) -> None:
        """The flow under *key* is no longer young (its peer answered)."""
        if self._young:
            self._young.pop(key, None)

    def advance(self, now: float) -> None:
        """Move the clock to *now* (a packet's time) before its flow is looked up, so the
        flow's activity is recorded at that time, not at the previous packet's."""
        if self._now is not None:
            step = now - self._now
            if 0.0 < step < self.linger:
                self._clock += step
        self._now = now

    def expire(self, now: float) -> None:
        """Advance the clock to *now*; retire the flows quiet for long enough."""
        self.advance(now)
        clock = self._clock
        if clock < self._due:
            return
        while self._open:
            key, flow = next(iter(self._open.items()))
            if clock - self._seen[key] < self.linger:
                break
            if self.keep is not None and self.keep(flow):
                self._idle[key] = self._open.pop(key)
            else:
                self.retire(key)
        while self._idle:
            key = next(iter(self._idle))
            if clock - self._seen[key] < self.idle:
                break
            self.retire(key)
            self.retired_idle += 1
        self._due = _NEVER
        if self._open:
            self._may_retire_at(self._seen[next(iter(self._open))] + self.linger)
        if self._idle:
            self._may_retire_at(self._seen[next(iter(self._idle))] + self.idle)

    def retire(self, key: K) -> None:
        flow = self._open.pop(key, None)
        if flow is None:
            flow = self._idle.pop(key)
        del self._seen[key]
        if self._young:
            self._young.pop(key, None)
        self._done.append(flow)

    def drain(self) -> list[F]:
        """The flows retired since the last call, in the order they were retired."""
        done, self._done = self._done, []
        self.retired_idle = 0
        return done

    def close(self) -> list[F]:
        """Retire everything (end of capture) and return what was not drained yet."""
        for key in [*self._idle, *self._open]:
            self.retire(key)
        return self.drain()
