"""Handouts stay bounded on captures no lesson would use (issue 21, D7): a big packet's dump
is shortened, netstat tables past a few sockets show only what changed, and past
MAX_DRAWN_FLOWS flows only the summary table lists the rest.  Small generated equivalents
of the reproducers (20 x 256 KiB packets, 5,000 SYNs)."""

from __future__ import annotations

from capdissect.dissect.tcp import ACK, PSH, SYN
from capdissect.report.handout.html import render_html
from capdissect.report.handout.lesson import (
    DUMP_MAX,
    MAX_DRAWN_FLOWS,
    NETSTAT_FULL_MAX,
    build_lesson,
)
from capdissect.report.handout.markdown import md, render_markdown
from tests.support.reportwire import Wire, lesson


def big_packet_wire(payload: int) -> Wire:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    w.tcp(("127.0.0.1", 40000), ("127.0.0.1", 30002), PSH | ACK, 1012, 5012, b"x" * payload)
    return w


def test_a_big_packets_dump_is_shortened() -> None:
    payload = 6_000
    views = build_lesson(big_packet_wire(payload).packets, "big.pcap").packets
    big = views[-1]
    captured = 20 + 20 + payload  # RAW link type: the dump starts at the IP header
    assert big.hex_start == 0 and len(big.data) == DUMP_MAX
    assert big.more_bytes == captured - DUMP_MAX
    line = (f"\t\u2026 {captured - DUMP_MAX} more bytes (a handout dumps the first {DUMP_MAX} "
            "of a packet)")
    assert big.more_bytes_line == line
    assert views[0].more_bytes == 0 and views[0].more_bytes_line == ""
    lessons = build_lesson(big_packet_wire(payload).packets, "big.pcap")
    page, text = render_html(lessons), render_markdown(lessons)
    assert page.count("more bytes (a handout dumps") == 1
    assert text.count(line + "\n```") == 1
    dump_lines = [x for x in text.split("\n") if x.startswith("\t0x")]
    assert f"\t0x{DUMP_MAX - 16:04x}:" in [x[:8] for x in dump_lines]
    assert f"\t0x{DUMP_MAX:04x}:" not in [x[:8] for x in dump_lines]
    # Past DUMP_MAX the page no longer grows with the packet: 54,000 more bytes change only
    # the digits of the lengths and counts it prints.
    bigger = render_html(build_lesson(big_packet_wire(10 * payload).packets, "big.pcap"))
    assert len(bigger) - len(page) <= 40


def syn_wire(count: int) -> Wire:
    w = Wire()
    for i in range(count):
        w.tcp((f"10.0.{i // 250}.{i % 250 + 1}", 1024 + i), ("127.0.0.1", 80), SYN, i)
    return w


def test_many_connections_are_summarised_not_squared() -> None:
    count = MAX_DRAWN_FLOWS + 30
    assert count > NETSTAT_FULL_MAX
    got = build_lesson(syn_wire(count).packets, "syns.pcap")
    tables = [view.sockets[-1].table for view in got.packets]
    assert len(tables[NETSTAT_FULL_MAX - 1]) == 2 + NETSTAT_FULL_MAX  # still whole
    assert tables[-1][2].split()[3:] == [f"10.0.0.{count}:{1023 + count}", "127.0.0.1:80",
                                         "SYN_SENT"]
    assert tables[-1][3:] == (f"(and {count - 1} other sockets, unchanged)",)
    assert max(len(t) for t in tables) == 2 + NETSTAT_FULL_MAX
    assert got.undrawn_note == (
        f"30 more flows (30 packets, flows {MAX_DRAWN_FLOWS + 1} to {count}) are not drawn: "
        f"a handout draws the first {MAX_DRAWN_FLOWS}; the summary table lists them all, "
        "and --conn N draws one")
    page = render_html(got)
    assert page.count('<section class="flow"') == MAX_DRAWN_FLOWS
    assert f'id="flow{MAX_DRAWN_FLOWS}"' in page
    assert f'<section class="flow" id="flow{MAX_DRAWN_FLOWS + 1}"' not in page
    assert f'<a href="#flow{count}">{count}</a>' in page  # still in the summary table
    assert got.undrawn_note in page.replace("&#x27;", "'")
    text = render_markdown(got)
    assert text.count("\n## TCP connection ") == MAX_DRAWN_FLOWS
    assert f"*{md(got.undrawn_note)}*" in text


def test_a_lesson_is_drawn_whole() -> None:
    w = Wire()
    lesson(w, ("127.0.0.1", 40000), ("127.0.0.1", 30002))
    got = build_lesson(w.packets, "lesson.pcap")
    assert got.undrawn_note == "" and got.drawn == got.flows
    assert all(v.more_bytes == 0 for v in got.packets)
    assert "more flows" not in render_html(got)
