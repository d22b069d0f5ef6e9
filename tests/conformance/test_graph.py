"""`capdissect graph` (issue #18): RTT and bytes in flight by Wireshark's rules, checked
against tshark's ``tcp.analysis.ack_rtt`` and ``tcp.analysis.bytes_in_flight``, frame by
frame, on the corpus and lesson captures and on a real lossy transfer made in a network
namespace (tests/support/lossy.py); the graphs' texts never overlap in Chromium's layout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from capdissect.commands.handout import find_chromium
from capdissect.demo.netns import namespace_problem
from capdissect.dissect.stack import decode
from capdissect.errors import CapdissectError
from capdissect.report.diagrams.flight import all_samples
from capdissect.report.diagrams.graph import KINDS, plot, svg
from capdissect.report.follow import follow, raw_lines
from capdissect.sources.files import open_capture
from tests.conformance.test_follow import tshark_follow, tshark_streams
from tests.support.flight_compare import agreement, tshark_values

ROOT: Final = Path(__file__).resolve().parents[2]
FILES: Final = sorted(p for folder in ("tests/corpus", "tests/corpus-extra", "captures")
                      for p in (ROOT / folder).iterdir()
                      if p.suffix in (".pcap", ".pcapng", ".cap"))
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="no tshark")


@pytest.mark.tshark
@needs_tshark
def test_rtt_and_inflight_agree_with_tshark_on_the_corpus() -> None:
    total = same = 0
    report = []
    for path in FILES:
        try:
            frames, agreeing, diffs = agreement(path)
        except CapdissectError as exc:  # a file capdissect cannot read
            report.append(f"{path.name}: {exc}")
            continue
        total, same = total + frames, same + agreeing
        report += [f"{path.name}: {d}" for d in diffs]
    assert total > 1500
    assert same / total >= 0.99, (same, total, report[:20])


@pytest.mark.tshark
@needs_tshark
@pytest.mark.skipif(namespace_problem() is not None, reason=str(namespace_problem()))
def test_lossy_transfer(tmp_path: Path) -> None:
    from tests.support.lossy import lossy_capture

    capture = tmp_path / "lossy.pcap"
    how, dropped = lossy_capture(capture)
    assert dropped > 0, f"{how}: the transfer lost nothing"  # 5 % of ~250 packets
    frames, agreeing, diffs = agreement(capture)
    assert frames > 200 and agreeing / frames >= 0.99, diffs
    theirs = tshark_values(capture)
    assert sum(v[0] is not None for v in theirs.values()) > 20  # RTT samples to agree on
    assert sum(v[1] is not None for v in theirs.values()) > 100
    # The CLI prints the same values: every RTT sample of `graph --kind rtt --tsv`.
    text = subprocess.run([sys.executable, "-m", "capdissect", "graph", str(capture),
                           "--kind", "rtt", "--tsv"], capture_output=True, text=True,
                          check=True, timeout=120).stdout
    for line in text.splitlines()[1:]:
        _, frame, _, value = line.split("\t")
        assert abs(float(value) / 1000 - (theirs[int(frame)][0] or -1)) < 2e-6, line
    # And follow reassembles it as Wireshark does.
    streams = tshark_streams(capture)
    lines = tshark_follow(capture, [0])[0]
    with open_capture(capture) as packets:
        assert list(raw_lines(follow((decode(r) for r in packets), 1))) == lines
    assert streams


@pytest.mark.chromium
@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")
def test_graph_labels_never_overlap(tmp_path: Path) -> None:
    from tests.support.svgoverlap import text_overlaps

    figures = []
    for name in ("captures/tcp-basic.pcap", "tests/corpus-extra/zeek_tcp_retransmit-fast009.pcap",
                 "tests/corpus/zeek_tcp_timestamp.pcap"):
        with open_capture(ROOT / name) as capture:
            every = all_samples([decode(raw) for raw in capture])
        conn, points = next(iter(every.values()))
        figures += [svg(plot(conn, points, kind)) for kind in KINDS]
    texts, hits = text_overlaps(figures, tmp_path)
    assert texts > 100 and hits == []


def test_graph_cli_text_and_svg(tmp_path: Path) -> None:
    path = ROOT / "captures" / "tcp-basic.pcap"
    run = [sys.executable, "-m", "capdissect", "graph", str(path)]
    text = subprocess.run([*run, "--kind", "tsg"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert text.startswith("Time-sequence graph, connection 1, client -> server")
    out = tmp_path / "inflight.svg"
    subprocess.run([*run, "--kind", "inflight", "-o", str(out)], check=True, timeout=60,
                   capture_output=True)
    assert out.read_text().startswith("<svg ") and "bytes_in_flight" in out.read_text()


@pytest.mark.chromium
@pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed")
def test_the_overlap_check_sees_an_overlap(tmp_path: Path) -> None:
    from tests.support.svgoverlap import text_overlaps

    figure = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="50">'
              '<text x="10" y="20">rcv FIN</text><text x="30" y="24">ACK of FIN</text>'
              '<text x="10" y="45">alone</text></svg>')
    assert text_overlaps([figure], tmp_path) == (3, [["rcv FIN", "ACK of FIN"]])
