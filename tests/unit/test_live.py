"""Live capture without capturing: the filter ``--port`` builds, the kernel program, the
pcap/pcapng writer, ``LiveRun`` over a file's packets (same text and same flows table as
``read`` and ``flows``), the Python API's text and HTML.  The command line (a stand-in
dumpcap, the one-line errors) is in tests/e2e/test_live_cli.py.

No privilege needed: nothing here opens a packet socket.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import capdissect
from capdissect.commands import reports as analyze
from capdissect.commands.live import Flusher, LiveRun
from capdissect.commands.read import ReadOptions, read_lines
from capdissect.errors import CaptureError, OutputError
from capdissect.packets import RawPacket
from capdissect.sources.files import open_capture
from capdissect.sources.filter import compile_expression
from capdissect.sources.live.ring import PACKET_OUTGOING, SKF_AD_PKTTYPE, kernel_program
from capdissect.sources.live.selection import build_expression, icmp_quoting
from capdissect.sources.writer import PacketWriter

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
LESSON = CAPTURES / "tcp-basic.pcap"


# ----- --port, --host, --proto -> one expression -----------------------------------------
def test_nothing_selected_captures_everything() -> None:
    assert build_expression() is None


def test_port_host_proto_and_expression_are_anded() -> None:
    expression = build_expression([30002, 30003], "127.0.0.1", "udp", "len > 10")
    assert expression is not None
    assert expression.startswith("(udp port 30002 or udp port 30003 or ((icmp and ")
    assert expression.endswith(" and host 127.0.0.1 and (len > 10)")
    assert "icmp[17] == 17" in expression and "icmp6[14] == 17" in expression


def test_proto_alone_keeps_the_icmp_errors_about_it() -> None:
    assert build_expression(proto="tcp") == f"(tcp or {icmp_quoting(None, 'tcp')})"


def _program(expression: str) -> object:
    try:
        return compile_expression(expression, 1)  # Ethernet, as lo
    except CaptureError as exc:
        if "libpcap" in str(exc):
            pytest.skip(str(exc))
        raise


def _frames() -> dict[str, bytes]:
    """Packets as they cross lo (Ethernet with zero addresses), crafted with scapy."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="00:00:00:00:00:00", dst="00:00:00:00:00:00")
    v4 = IP(src="127.0.0.1", dst="127.0.0.1")
    v6 = IPv6(src="::1", dst="::1")
    quoted = IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=40000, dport=30002) / b"hi"
    return {
        "udp": bytes(eth / v4 / UDP(sport=40000, dport=30002) / b"hi"),
        "tcp6": bytes(eth / v6 / TCP(sport=30002, dport=40000)),
        "icmp-unreach": bytes(eth / v4 / ICMP(type=3, code=3) / quoted),
        "icmp-unreach-options": bytes(  # quoted header with 4 bytes of options (ihl 6)
            eth / v4 / ICMP(type=3, code=3)
            / IP(src="127.0.0.1", dst="127.0.0.1", options=b"\x01\x01\x01\x00")
            / UDP(sport=40000, dport=30002)),
        "icmp-timxceed-tcp": bytes(eth / v4 / ICMP(type=11, code=0)
                                   / IP(src="127.0.0.1", dst="127.0.0.1")
                                   / TCP(sport=30002, dport=40000)),
        "icmp6-unreach": bytes(eth / v6 / ICMPv6DestUnreach(code=4)
                               / IPv6(src="::1", dst="::1") / UDP(sport=40000, dport=30002)),
        "icmp-other-port": bytes(eth / v4 / ICMP(type=3, code=3)
                                 / IP(src="127.0.0.1", dst="127.0.0.1")
                                 / UDP(sport=40000, dport=30009)),
        "icmp-later-fragment": bytes(eth / v4 / ICMP(type=3, code=3)
                                     / IP(src="127.0.0.1", dst="127.0.0.1", frag=100, proto=17)
                                     / b"\x9c\x40\x75\x32xxxx"),
        "icmp-echo": bytes(eth / v4 / ICMP(type=8) / b"\x9c\x40\x75\x32"),
        "icmp6-echo": bytes(eth / v6 / ICMPv6EchoRequest() / b"\x9c\x40\x75\x32"),
    }


@pytest.mark.parametrize(("proto", "wanted"), [
    ("all", {"udp", "tcp6", "icmp-unreach", "icmp-unreach-options", "icmp-timxceed-tcp",
             "icmp6-unreach"}),
    ("udp", {"udp", "icmp-unreach", "icmp-unreach-options", "icmp6-unreach"}),
    ("tcp", {"tcp6", "icmp-timxceed-tcp"}),
])
def test_port_filter_matches_the_icmp_errors_that_quote_the_port(proto: str,
                                                                  wanted: set[str]) -> None:
    expression = build_expression([30002], proto=proto)  # type: ignore[arg-type]
    assert expression is not None
    program = _program(expression)
    matched = {name for name, frame in _frames().items()
               if program.matches(frame, len(frame))}  # type: ignore[attr-defined]
    assert matched == wanted


def test_kernel_program_drops_outgoing_copies_on_loopback_only() -> None:
    plain = kernel_program(None, 1, drop_outgoing=False)
    assert plain == [(0x06, 0, 0, 262144)]  # no filter: accept, whole packet
    looped = kernel_program(None, 1, drop_outgoing=True)
    assert looped[0] == (0x30, 0, 0, SKF_AD_PKTTYPE)  # load the packet type
    assert looped[1] == (0x15, 0, 1, PACKET_OUTGOING)  # outgoing: next (reject)...
    assert looped[2] == (0x06, 0, 0, 0)
    assert looped[3:] == plain  # ...else the filter


def test_writer_refuses_another_link_type(tmp_path: Path) -> None:
    with PacketWriter(tmp_path / "x.pcap", 1, 262144) as writer, \
            pytest.raises(OutputError, match="link type 101"):
        writer.write(RawPacket(0, 0, 101, 20, b"\x45" + b"\x00" * 19))


def test_writer_reports_an_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="No such file or directory"):
        PacketWriter(tmp_path / "missing" / "x.pcap", 1, 262144)


# ----- LiveRun on a file's packets: read's text, flows' table -----------------------------
class FileSource:
    """A LiveSource that replays a capture file (no privilege needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.iface = "lo"
        with open_capture(path) as capture:
            self.linktype, self.snaplen = capture.linktype, capture.snaplen
            self.packets = list(capture)
        self.stopped = False

    def __iter__(self):  # type: ignore[no-untyped-def]
        for pkt in self.packets:
            if self.stopped:
                return
            yield pkt

    def stop(self) -> None:
        self.stopped = True

    def close(self) -> None:
        pass

    def stats(self):  # type: ignore[no-untyped-def]
        from capdissect.sources.live import CaptureStats

        return CaptureStats(len(self.packets), len(self.packets), 0)


@pytest.mark.parametrize("options", [ReadOptions(n=2), ReadOptions(n=2, plain=True, v=1)])
def test_live_prints_what_read_prints_and_the_flows_table(options: ReadOptions) -> None:
    run = LiveRun(FileSource(LESSON), options)  # type: ignore[arg-type]
    assert list(run.lines()) == list(read_lines(LESSON, options))
    assert [line + "\n" for line in run.summary_lines()] == list(analyze.flows(LESSON))


def test_live_count_and_write_hold_exactly_the_packets_shown(tmp_path: Path) -> None:
    source = FileSource(LESSON)
    with PacketWriter(tmp_path / "out.pcap", source.linktype, source.snaplen) as writer:
        run = LiveRun(source, ReadOptions(n=2, count=4), writer)  # type: ignore[arg-type]
        shown = list(run.lines())
    assert len(shown) == 4 and run.shown == 4
    with open_capture(tmp_path / "out.pcap") as capture:
        assert [p.data for p in capture] == [p.data for p in source.packets[:4]]
    assert run.stats_lines()[0] == "4 packets captured"


class Stream(io.StringIO):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_flusher_flushes_every_packet_on_a_terminal_and_in_batches_into_a_pipe() -> None:
    terminal, pipe = Stream(), Stream()
    on_terminal, into_pipe = Flusher(terminal, interactive=True), Flusher(pipe, False)
    for _ in range(100):
        on_terminal.packet()
        into_pipe.packet()
    assert terminal.flushes == 100
    assert pipe.flushes <= 1  # at most once per FLUSH_INTERVAL_S in a tight loop
    into_pipe.idle()
    assert pipe.flushes >= 1


# ----- the Python API: text, HTML, track and read ------------------------------------------
def test_api_reports_print_as_text_and_escape_html() -> None:
    report = capdissect.Report(["<script>alert('x')</script> & more"])
    assert str(report) == repr(report) == "<script>alert('x')</script> & more"
    assert report._repr_html_() == (
        "<pre>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more</pre>")


def test_api_read_and_track_the_lesson() -> None:
    tracked = capdissect.track(capdissect.read(LESSON))
    assert len(tracked.packets) == 11
    (conn,) = tracked.connections
    assert (conn.open, conn.close) == ("three-way", "normal")  # type: ignore[union-attr]
    assert "open three-way, close normal by the client" in str(tracked.timeline())
    assert "TIME_WAIT" in str(tracked.sockets())
    assert str(tracked) == str(tracked.flows())
    assert "handshake 1/3 SYN" in repr(tracked.packets)
    html = tracked._repr_html_()
    assert html.startswith("<table>") and "<td>three-way</td>" in html
    assert "sequenceDiagram" in str(tracked.timeline(mermaid=True))


def test_api_exports() -> None:
    assert {"read", "track", "capture", "Capture", "CaptureError"} <= set(capdissect.__all__)
    cap = capdissect.capture(port=[1, 2], proto="udp")
    assert "capture on lo" in repr(cap) and "stopped: 0 packets" in repr(cap)
    assert str(cap.packets) == "no packets"

