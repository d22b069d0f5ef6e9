"""util-print.c ts_print: a packet's timestamp under -t, -tt, -ttt, -tttt and -ttttt.

The one piece of the printer's state that is not about a connection: the clock text of
the current second (made once a second, not once a packet) and -ttt's previous packet.
"""

from __future__ import annotations

import time
from typing import Final

# util-print.c prints this, and no fraction, when localtime()/gmtime() fail (pcapng
# timestamps can reach years no calendar holds).
TIME_ERROR: Final = "[Error converting time]"


class Clock:
    """Timestamps in tcpdump's format *t* (0 default, 1 -t, 2 -tt, 3 -ttt, 4 -tttt,
    5 -ttttt), one packet after another."""

    def __init__(self, t: int) -> None:
        self.t = t
        self._ts_ref: tuple[int, int] | None = None
        self._clock_sec = -1
        self._clock = ""

    def text(self, sec: int, nsec: int) -> str:
        """The timestamp as tcpdump prints it before a packet (with its trailing space)."""
        usec = nsec // 1000  # tcpdump prints microseconds, truncating nanoseconds
        t = self.t
        if t in (0, 2, 4) and sec & 0x80000000:
            # util-print.c refuses a time whose seconds, cut to 32 bits, have the sign bit
            # set (a negative time, or one past 2038); -1 included, so that value never
            # meets the "no clock yet" value of _clock_sec below.
            return f"{TIME_ERROR} "
        if t == 0 or t == 4:
            if sec != self._clock_sec:
                fmt = "%Y-%m-%d %H:%M:%S" if t == 4 else "%H:%M:%S"
                try:
                    clock = time.strftime(fmt, time.localtime(sec))
                except (OverflowError, OSError, ValueError):  # a year past time_t or int
                    return f"{TIME_ERROR} "
                self._clock_sec = sec
                self._clock = clock
            return f"{self._clock}.{usec:06d} "
        if t == 1:
            return ""
        if t == 2:
            return f"{sec & 0xFFFFFFFF}.{usec:06d} "  # tcpdump prints it as a 32-bit %u
        # -ttt: since the previous packet; -ttttt: since the first (util-print.c ts_print).
        ref = self._ts_ref or (sec, usec)
        now = (sec, usec)
        negative = now < ref
        a, b = (ref, now) if negative else (now, ref)
        delta = (a[0] - b[0]) * 1_000_000 + (a[1] - b[1])
        if t == 3 or self._ts_ref is None:
            self._ts_ref = now
        secs, usecs = divmod(delta, 1_000_000)
        # tcpdump formats the delta with gmtime and %H:%M:%S, so whole days drop out.
        sign = "-" if negative else " "
        try:
            clock = time.strftime("%H:%M:%S", time.gmtime(secs))
        except (OverflowError, OSError, ValueError):
            return f"{sign}{TIME_ERROR} "
        return f"{sign}{clock}.{usecs:06d} "
