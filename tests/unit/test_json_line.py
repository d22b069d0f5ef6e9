"""``json_line`` writes with orjson for speed; its text must be the standard encoder's.

The standard library's compact, ASCII-only encoder is the reference (it is what
``read --json`` wrote before, and what the line falls back to): every packet of every
bundled, corpus, extra and damaged capture, and the shapes where the two encoders
would spell a value differently, must come out byte for byte the same.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from capdissect.dissect.stack import decode
from capdissect.errors import CaptureError
from capdissect.report.json.packet import json_line, packet_json
from capdissect.sources.files import open_capture

ROOT = Path(__file__).parents[2]
FILES = sorted(
    p for folder in ("captures", "tests/corpus", "tests/corpus-extra", "tests/damaged")
    for p in (ROOT / folder).iterdir()
    if p.suffix in (".pcap", ".pcapng", ".cap", ".gz")
)
_REFERENCE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def reference(obj: dict[str, Any]) -> str:
    return _REFERENCE.encode(obj).replace("\x7f", "\\u007f")


def _objects(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        with open_capture(path) as cap:
            for number, raw in enumerate(cap, 1):
                out.append(packet_json(number, decode(raw)))
    except CaptureError:
        pass  # a damaged file: the packets before the damage are what read prints
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_packet_is_the_standard_encoders_text(path: Path) -> None:
    objects = _objects(path)
    assert objects or path.parent.name == "damaged"
    for obj in objects:
        assert json_line(obj) == reference(obj), obj["frame"]


@pytest.mark.parametrize("ts", [0.0, 1e-06, 5e-05, 0.0001, 1.5, 1796402604.968305,
                                9999999999999998.0, 1e16, 1.8446744073709552e19])
def test_timestamps_either_side_of_the_exponent_spelling(ts: float) -> None:
    obj = {"frame": 1, "ts": ts, "payload": ""}
    assert json_line(obj) == reference(obj)


def test_random_timestamps() -> None:
    rng = random.Random(19)
    for _ in range(20_000):
        ts = (rng.randrange(2**33) * 1_000_000_000 + rng.randrange(10**9)) / 1_000_000_000
        obj = {"ts": ts}
        assert json_line(obj) == reference(obj)


@pytest.mark.parametrize("value", [
    "caf\u00e9", "del \x7f here", "\x00\x01\x1f\x1b[31m", "\u2028 \ud7ff \U0001f600",
    2**64, -(2**63) - 1, 2**63, [1, None, True, False], {"nested": "\x7f"},
])
def test_values_orjson_would_spell_differently(value: object) -> None:
    obj = {"frame": 1, "ts": 1.25, "comment": value}
    line = json_line(obj)
    assert line == reference(obj)
    assert line.isascii() and "\x7f" not in line


class _Port(int):
    """An int subclass: json writes its int value, orjson (told to pass it) does not."""


@dataclasses.dataclass
class _Record:
    value: int = 1


def test_types_beyond_plain_json_behave_as_the_standard_encoder() -> None:
    obj: dict[str, Any] = {"ts": 1.5, "port": _Port(80)}
    assert json_line(obj) == reference(obj) == '{"ts":1.5,"port":80}'
    with pytest.raises(TypeError):  # a bug's stray record is refused, not written
        json_line({"ts": 1.5, "record": _Record()})


@pytest.mark.parametrize(("sec", "nsec"), [(1796402604, 968305000), (1589017316, 89133000),
                                           (4294967295, 999999999), (0, 1)])
def test_the_timestamp_is_the_nearest_float_to_the_exact_time(sec: int, nsec: int) -> None:
    """Compiled, ``/`` on two ints divides two doubles, and a nanosecond count past 2**53
    is rounded before dividing (1796402604.968305 came out 1796402604.9683049)."""
    from fractions import Fraction

    from capdissect.packets import RawPacket

    obj = packet_json(1, decode(RawPacket(sec, nsec, 1, 0, b"")))
    exact = Fraction(sec * 1_000_000_000 + nsec, 1_000_000_000)
    assert obj["ts"] == float(exact)  # Fraction -> float is correctly rounded
