"""Compare capdissect's TCP analysis flags with tshark's, packet by packet.

``tshark_flags`` runs ``tshark -r FILE -T fields -e frame.number -e tcp.analysis.<flag>...``
with tshark's default preferences; ``capdissect_flags`` feeds the same file through
``open_capture -> decode -> Tracker``.  Both give frame number -> set of flag names.
``Agreement`` counts, per flag, the frames both tools flag and the frames either flags.

No pytest in here: ``python -m tests.support.analysis_compare FILE...`` prints the agreement and
every frame where the tools differ, which is how a rule is debugged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, NamedTuple

from capdissect.dissect.ipv4 import IPv4Header
from capdissect.dissect.ipv6 import walk_extensions
from capdissect.dissect.stack import Packet, decode
from capdissect.dissect.tcp import TcpHeader
from capdissect.errors import DissectError
from capdissect.sources.files import open_capture
from capdissect.tracking.analysis import NAMES
from capdissect.tracking.tcp import Update
from capdissect.tracking.tracker import Tracker

# tshark 4.0 field names (tshark -G fields | grep tcp.analysis): tcp.analysis.<name>,
# with Wireshark's "previous segment not captured" as lost_segment.
FIELDS: Final = tuple(f"tcp.analysis.{name}" for name in NAMES)
TSHARK_TIMEOUT_S: Final = 120.0
_ALSO_RETRANSMISSION: Final = frozenset({"fast_retransmission", "spurious_retransmission"})

Flags = dict[int, set[str]]


def tshark_problem() -> str | None:
    if shutil.which("tshark") is None:
        return "tshark is not installed (apt-get install tshark)"
    return None


def tshark_flags(path: Path) -> Flags:
    """Frame -> the analysis flags tshark sets, with its default preferences.

    ``-o`` is not used: the defaults (tcp.analyze_sequence_numbers, relative sequence
    numbers, window scaling "not known", fast retransmission before out-of-order) are
    what capdissect follows.  A personal preferences file would change them, so tshark
    runs with an empty configuration directory.
    """
    cmd = ["tshark", "-r", str(path), "-n", "-T", "fields", "-E", "separator=\t",
           "-e", "frame.number", *[arg for f in FIELDS for arg in ("-e", f)]]
    env = {**os.environ, "WIRESHARK_CONFIG_DIR": "/nonexistent-capdissect-test"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TSHARK_TIMEOUT_S,
                          env=env, check=False)
    if done.returncode != 0 and not done.stdout:
        raise RuntimeError(f"tshark failed on {path}: {done.stderr.strip()}")
    flags: Flags = {}
    for line in done.stdout.splitlines():
        cells = line.split("\t")
        if not cells[0]:
            continue
        # A field tshark shows prints a value ("1" for these labels); one it does not is empty.
        names = {name for name, cell in zip(NAMES, cells[1:], strict=False) if cell}
        if names & _ALSO_RETRANSMISSION:
            # packet-tcp.c shows a fast or spurious retransmission with the retransmission
            # expert item too; the analysis flags one kind per segment, and so does
            # capdissect.
            names.discard("retransmission")
        if names:
            flags[int(cells[0])] = names
    return flags


def capdissect_flags(path: Path) -> Flags:
    """Frame -> the analysis findings capdissect's tracker reports."""
    tracker = Tracker(keep_events=False)
    flags: Flags = {}
    with open_capture(path) as capture:
        for frame, raw in enumerate(capture, start=1):
            seen = tracker.feed(frame, decode(raw))
            tracker.drain()
            if isinstance(seen, Update) and seen.event.analysis:
                flags[frame] = {finding.name for finding in seen.event.analysis}
    tracker.close()
    return flags


class DecodeCheck(NamedTuple):
    tcp: bool  # capdissect decodes at least one TCP segment in the file
    differs: str | None  # why tshark analyzes other segments than the tracker gets


def decode_check(path: Path) -> DecodeCheck:
    """Whether the file has TCP, and whether tshark would analyze other segments.

    Two decode-level differences lie outside the analysis rules: tshark reassembles IP
    fragments and analyzes the whole segment at the last fragment, while the tracker
    sees the first fragment as the segment; and tshark cuts a segment whose IP length
    runs past the end of the frame to what the frame holds, while the tracker takes
    the IP header's length.  Either shifts every later number of that connection.
    """
    tcp = False
    with open_capture(path) as capture:
        for frame, raw in enumerate(capture, start=1):
            pkt = decode(raw)
            if not isinstance(pkt.transport, TcpHeader):
                continue
            tcp = True
            if _first_fragment(pkt):
                return DecodeCheck(tcp, f"frame {frame} is the first IP fragment of a "
                                        f"TCP segment")
            if pkt.payload_offset + pkt.payload_len > raw.wire_len:
                return DecodeCheck(tcp, f"frame {frame}: its IP length runs past the end "
                                        f"of the frame")
    return DecodeCheck(tcp, None)


def _first_fragment(pkt: Packet) -> bool:
    ip = pkt.ip
    if isinstance(ip, IPv4Header):
        return ip.more_fragments
    if ip is None:
        return False
    data = pkt.raw.data
    try:
        upper = walk_extensions(data, ip, min(len(data), ip.offset + 40 + ip.payload_len))
    except DissectError:
        return False
    return upper.fragment is not None and upper.fragment.more


@dataclass
class Agreement:
    """Per flag: frames flagged by both tools and frames flagged by either."""

    both: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))
    either: dict[str, int] = field(default_factory=lambda: dict.fromkeys(NAMES, 0))

    def add(self, ours: Mapping[int, set[str]], theirs: Mapping[int, set[str]]) -> None:
        for frame in ours.keys() | theirs.keys():
            a, b = ours.get(frame, set()), theirs.get(frame, set())
            for name in a | b:
                self.either[name] += 1
                self.both[name] += name in a and name in b

    def share(self, name: str | None = None) -> float:
        """|both| / |either| for one flag, or over all flags (1.0 when nobody flags)."""
        both = self.both[name] if name else sum(self.both.values())
        either = self.either[name] if name else sum(self.either.values())
        return both / either if either else 1.0

    def lines(self) -> list[str]:
        rows = [f"{name:<24} {self.both[name]:>6} / {self.either[name]:<6} "
                f"{self.share(name):7.2%}" for name in NAMES if self.either[name]]
        rows += [f"{'never flagged':<24} " + " ".join(n for n in NAMES if not self.either[n]),
                 f"{'overall':<24} {sum(self.both.values()):>6} / "
                 f"{sum(self.either.values()):<6} {self.share():7.2%}"]
        return rows


def differences(ours: Flags, theirs: Flags) -> list[str]:
    """One line per frame where the tools differ: what only capdissect / only tshark set."""
    lines = []
    for frame in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(frame, set()), theirs.get(frame, set())
        if a != b:
            lines.append(f"frame {frame}: capdissect only {sorted(a - b)}, "
                         f"tshark only {sorted(b - a)}")
    return lines


def main(paths: Iterable[str]) -> int:
    total = Agreement()
    for name in paths:
        path = Path(name)
        ours, theirs = capdissect_flags(path), tshark_flags(path)
        total.add(ours, theirs)
        diff = differences(ours, theirs)
        if diff:
            why = decode_check(path).differs
            print(f"== {path}: {len(diff)} frames differ" + (f" ({why})" if why else ""))
            print("\n".join(diff[:40]))
    print("\n".join(total.lines()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
