"""``TcpdumpPrinter.printed``: the text without the dump, and where the dump starts.

The handout draws the packet's bytes itself, with its fields marked; it used to split the
printer's -X text to find where the dump began.  The record must say exactly what the
text says: ``format`` is ``printed``'s text plus the dump of the bytes from ``dump_from``,
on the fast path and on the full one, for every dump option.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from capdissect.report.tcpdump.context import PrintOptions
from capdissect.report.tcpdump.hexdump import hex_ascii, hex_only
from capdissect.report.tcpdump.printer import TcpdumpPrinter
from capdissect.sources.files import open_capture

ROOT = Path(__file__).resolve().parents[2]
# The lesson (Ethernet: the fast path), a Linux cooked capture (SLL: the full printer and
# another link-header length), ICMP errors quoting datagrams, and IPv6 with extension
# headers.
FILES = [ROOT / "captures" / "tcp-basic.pcap", ROOT / "captures" / "udp-unreachable.pcap",
         *sorted((ROOT / "tests" / "corpus").glob("*sll*.pcap"))[:1],
         *sorted((ROOT / "tests" / "corpus").glob("*ipv6*.pcap"))[:2]]


@pytest.mark.parametrize("options", [PrintOptions(n=2), PrintOptions(n=2, X=1),
                                     PrintOptions(n=2, X=2), PrintOptions(n=2, x=1),
                                     PrintOptions(n=2, v=1, X=1), PrintOptions(n=2, v=2, x=2)],
                         ids=["none", "X", "XX", "x", "v-X", "vv-xx"])
def test_format_is_the_record_plus_the_dump(options: PrintOptions) -> None:
    assert len(FILES) >= 4
    counted = full = 0
    for path in FILES:
        one, two = TcpdumpPrinter(options), TcpdumpPrinter(options)  # same state each
        with open_capture(path) as capture:
            for pkt in capture:
                text = one.format(pkt)
                printed = two.printed(pkt)
                dump = hex_ascii if options.X else hex_only
                expected = printed.text + ("" if printed.dump_from is None
                                           else dump(pkt.data[printed.dump_from:]))
                assert text == expected, (path.name, pkt)
                if options.X or options.x:
                    assert printed.dump_from is not None
                    assert 0 <= printed.dump_from < len(pkt.data)
                else:
                    assert printed.dump_from is None
                counted += 1
                full += two.fast is None or pkt.linktype != 1
    assert counted > 40 and full > 0  # both paths were taken


def test_the_count_of_x_upper_decides_when_both_dumps_are_asked() -> None:
    """tcpdump -X -xx dumps as -X does (print.c looks at -X first): from the link
    header's end, on the fast path and on the full one."""
    for path in FILES:
        both, alone = TcpdumpPrinter(PrintOptions(n=2, X=1, x=2)), TcpdumpPrinter(
            PrintOptions(n=2, X=1))
        with open_capture(path) as capture:
            for pkt in capture:
                assert both.format(pkt) == alone.format(pkt), (path.name, pkt)
