"""Compare capdissect's ack_rtt and bytes_in_flight with tshark's, frame by frame.

``python -m tests.support.flight_compare FILE...`` prints the agreement and the first frames where
the tools differ; tests/conformance/test_graph.py asserts on ``agreement``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Final

from capdissect.dissect.stack import decode
from capdissect.report.diagrams.flight import samples
from capdissect.sources.files import open_capture
from capdissect.tracking.tcp import Update
from capdissect.tracking.tracker import Tracker

ENV: Final = {**os.environ, "WIRESHARK_CONFIG_DIR": "/nonexistent-capdissect-test"}
Values = dict[int, tuple[float | None, int | None]]


def tshark_values(path: Path) -> Values:
    """frame -> (tcp.analysis.ack_rtt, tcp.analysis.bytes_in_flight) of its TCP header."""
    done = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-E",
                           "separator=|", "-e", "frame.number", "-e", "tcp.stream",
                           "-e", "tcp.analysis.ack_rtt", "-e", "tcp.analysis.bytes_in_flight"],
                          capture_output=True, text=True, timeout=300, env=ENV, check=True)
    out: Values = {}
    for line in done.stdout.splitlines():
        frame, stream, rtt, flight = line.split("|")
        if stream and "," not in stream:  # one TCP header (not a quote inside ICMP)
            out[int(frame)] = (float(rtt.split(",")[0]) if rtt else None,
                               int(flight.split(",")[0]) if flight else None)
    return out


def our_values(path: Path) -> Values:
    packets = [decode(raw) for raw in open_capture(path)]
    tracker = Tracker(keep_events=False)
    conns = set()
    for frame, pkt in enumerate(packets, 1):
        seen = tracker.feed(frame, pkt)
        tracker.drain()
        if isinstance(seen, Update):
            conns.add(seen.connection.id)
    out: Values = {}
    for conn in sorted(conns):
        for s in samples(packets, conn)[1]:
            out[s.frame] = (s.ack_rtt, s.in_flight)
    return out


def agreement(path: Path) -> tuple[int, int, list[str]]:
    """(frames compared, frames agreeing, how the first differing ones differ)."""
    theirs, ours = tshark_values(path), our_values(path)
    same, diffs = 0, []
    frames = sorted(set(theirs) | set(ours))
    for frame in frames:
        a, b = theirs.get(frame, (None, None)), ours.get(frame, (None, None))
        rtt_ok = (a[0] is None) == (b[0] is None) and (a[0] is None or abs(a[0] - (b[0] or 0))
                                                         < 2e-6)
        if rtt_ok and a[1] == b[1]:
            same += 1
        elif len(diffs) < 10:
            diffs.append(f"frame {frame}: tshark {a} capdissect {b}")
    return len(frames), same, diffs


if __name__ == "__main__":
    for name in sys.argv[1:]:
        total, same, diffs = agreement(Path(name))
        print(f"{name}: {same}/{total}")
        for line in diffs:
            print("   ", line)
