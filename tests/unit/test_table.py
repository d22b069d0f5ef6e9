"""tracking/table.py: ``expire`` skips its look at the oldest flows while the clock is
before the first moment one could retire (``_due``); it must retire exactly what looking
every time retires, at the same calls, in the same order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from capdissect.tracking.table import FlowTable

LINGER = 10.0
IDLE = 25.0


def _table() -> FlowTable[int, int]:
    # Even flows are kept (an established connection's): idle instead of retired.
    return FlowTable(LINGER, max_open=6, keep=lambda flow: flow % 2 == 0, idle=IDLE,
                     max_young=3)


def test_a_kept_flow_heard_again_lingers_from_its_new_packet() -> None:
    """A kept flow goes idle, is heard again (open once more) and, quiet for linger
    again, goes idle again, though the table's only other bound was the idle one."""
    table = _table()
    table.expire(0.0)
    table.add(2, 2)
    for now in range(1, 12):  # steps under linger count on the table's clock
        table.expire(float(now))
    assert table.idle_count == 1
    table.expire(12.0)
    table.touch(2)
    assert table.idle_count == 0
    for now in range(13, 24):
        table.expire(float(now))
    assert table.idle_count == 1 and len(table) == 1
    assert not table.retiring


# (seconds since the last call, key, what to do with it)
Op = tuple[float, int, str]
# Steps of linger or more do not move the table's clock (a gap in the capture).
OPS = st.lists(st.tuples(st.sampled_from([0.0, 0.5, 3.0, 9.9, 9.9, 9.9, 10.0, 150.0]),
                         st.integers(0, 9), st.sampled_from(["add", "young", "touch",
                                                             "grown", "none", "none"])),
               max_size=120)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_expire_retires_what_looking_every_time_retires(ops: list[Op]) -> None:
    fast, full = _table(), _table()
    now = 0.0
    for step, key, what in ops:
        now += step
        for table in (fast, full):
            if table is full:
                table._due = float("-inf")  # look at the oldest flows every time
            table.expire(now)
            if what in ("add", "young") and table.get(key) is None:
                table.add(key, key, young=what == "young")
            elif what == "touch" and table.get(key) is not None:
                table.touch(key)
            elif what == "grown":
                table.grown(key)
        assert fast.retired_idle == full.retired_idle
        assert fast.drain() == full.drain()
        assert (len(fast), fast.idle_count, fast.young_count, fast.evicted) == (
            len(full), full.idle_count, full.young_count, full.evicted)
    assert fast.close() == full.close()
