"""The handout's checksum explanation is decided from the records, and agrees with the
printer's -v verdict: a TCP checksum tcpdump calls incorrect gets the explanation (the
loopback wording for loopback addresses), and nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from capdissect.dissect.stack import decode
from capdissect.report.handout.lesson import HANDOUT_PRINT, _checksum
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import open_capture

ROOT = Path(__file__).resolve().parents[2]
FILES = ["captures/tcp-basic.pcap", "captures/tcp-reset.pcap",
         "tests/corpus/lwerdna_simple_http.pcap", "tests/corpus/zeek_irc-353.pcap",
         "tests/corpus/zeek_chksums_ip4-tcp-bad-chksum.pcap",
         "tests/corpus/zeek_chksums_ip6-tcp-bad-chksum.pcap",
         "tests/corpus/zeek_chksums_ip6-hoa-tcp-good-chksum.pcap",
         "tests/corpus/tcpdump_mptcp-v1.pcap"]


@pytest.mark.parametrize("name", FILES)
def test_explanation_wherever_tcpdump_says_incorrect(name: str) -> None:
    printer = TcpdumpPrinter(HANDOUT_PRINT)
    explained = 0
    with open_capture(ROOT / name) as capture:
        for raw in capture:
            text = printer.printed(raw).text
            lines = _checksum(decode(raw), [])
            assert bool(lines) == ("(incorrect ->" in text), text
            if lines:
                explained += 1
                loopback = " 127." in text or " ::1." in text
                assert ("only because this is loopback" in lines[0]) == loopback, text
    if "good-chksum" not in name:
        assert explained > 0
