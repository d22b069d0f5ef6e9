"""Every record the dissectors and the tracker build has all its fields.

The hot paths build NamedTuples with ``tuple.__new__`` (capdissect/packets.py
``_new_tuple``), which, unlike the class, takes a tuple of any length: a field left out
there would only show when something reads it.  This walks every record of real
captures (IPv4 and IPv6, TCP with and without the timestamp option, UDP, ICMP, damaged
packets) and of the tracker's steps, and checks each one's length against its fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from capdissect.dissect.stack import decode
from capdissect.sources import open_capture
from capdissect.tracking.stream import Step, track
from capdissect.tracking.tcp import Update
from capdissect.tracking.tracker import Tracker

ROOT = Path(__file__).parents[2]
CAPTURES = sorted([*(ROOT / "captures").glob("*.pcap*"), *(ROOT / "tests" / "corpus").glob(
    "*.pcap*")])


def _records(value: object, depth: int = 0) -> Iterator[tuple[object, ...]]:
    """*value* and the records inside it, when it is a NamedTuple (or a tuple of them)."""
    if depth > 6 or not isinstance(value, tuple):
        return
    if hasattr(type(value), "_fields"):
        yield value
    for item in value:
        yield from _records(item, depth + 1)


def _short(value: object) -> list[str]:
    """The records in *value* that lack fields."""
    problems = []
    for record in _records(value):
        fields = len(type(record)._fields)  # type: ignore[attr-defined]
        if len(record) != fields:
            problems.append(f"{type(record).__name__}: {len(record)} of {fields} fields")
    return problems


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_record_has_all_its_fields(path: Path) -> None:
    with open_capture(path) as capture:
        packets = [decode(raw) for raw in capture]
    short = [problem for pkt in packets for problem in _short(pkt)]
    for step in track(packets, Tracker(keep_events=False)):
        if isinstance(step, Step):
            short += _short(step)
            if isinstance(step.seen, Update):
                short += _short(step.seen.event) + [
                    p for event in step.seen.revised for p in _short(event)]
    assert not short, short[:5]
    assert packets


def test_the_walk_finds_the_hot_records() -> None:
    """The check above can fail: the lesson's records are reached, options included."""
    with open_capture(ROOT / "captures" / "tcp-basic.pcap") as capture:
        pkt = decode(next(iter(capture)))
    names = {type(r).__name__ for r in _records(pkt)}
    assert {"Packet", "RawPacket", "LinkHeader", "IPv4Header", "TcpHeader", "Options",
            "TcpOption"} <= names
    broken = tuple.__new__(type(pkt), tuple(pkt)[:-1])
    assert _short(broken) == ["Packet: 9 of 10 fields"]
