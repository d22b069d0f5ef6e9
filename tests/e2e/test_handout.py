"""Handouts (SPEC §3.6) and annotated captures (SPEC §3.8), checked the way a reader sees them.

- The HTML handout of the lesson captures is opened in headless Chromium: no console
  message at all (an error, a blocked resource or a log line would show up as
  ``CONSOLE`` in Chromium's log), and the DOM holds the ladder, the state diagram and
  every packet.  A screenshot is taken; ``CAPDISSECT_KEEP_SCREENSHOTS=dir`` keeps it
  (docs/handout-tcp-basic.png was made that way).
- The PDF is turned into PNG pages by pdftoppm and counted.
- Hostile payloads (markup, ``</style>``, terminal escapes, backtick runs), from real
  sockets on loopback and from a crafted pcapng with hostile comments and interface
  names, must not inject anything: the HTML parses to our own tags and attributes only,
  the Markdown keeps them inside code fences or escaped, and no control byte survives.
- ``tshark -T fields -e frame.comment`` prints an annotation for every packet.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

import pytest

from capdissect.commands.handout import (
    CHROMIUM_FLAGS,
    find_chromium,
    write_annotated,
    write_handout,
)
from capdissect.errors import CapdissectError
from tests.support.livecap import pytest_capture

ROOT: Final = Path(__file__).resolve().parents[2]
CAPTURES: Final = ROOT / "captures"
CHROMIUM: Final = find_chromium()
PDFTOPPM: Final = shutil.which("pdftoppm")
TSHARK: Final = shutil.which("tshark")
TCPDUMP: Final = shutil.which("tcpdump")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(Debian: apt-get install chromium)")

MARKUP: Final = (b"<script>alert(1)</script>", b"<img src=x onerror=alert(1)>", b"</style>",
                 b"</pre><b>bold</b>", b"```` ``` `", b"[link](javascript:alert(1))",
                 b"&lt;script&gt;", b"\x1b[31mRED\x1b[0m", b"\x1b]0;title\x07", b"\x9b2J")
HOSTILE_PAYLOAD: Final = b" ".join(MARKUP)
HOSTILE_TEXT: Final = HOSTILE_PAYLOAD.decode("latin-1")

# Everything our HTML may contain: any other tag or any on* attribute came from a capture.
ALLOWED_TAGS: Final = frozenset({
    "html", "head", "meta", "title", "style", "body", "header", "footer", "section", "h1", "h2",
    "h3", "p", "b", "small", "code", "pre", "span", "table", "caption", "tr", "th", "td", "a",
    "div", "ul", "ol", "li", "dl", "dt", "dd", "svg", "defs", "marker", "path", "g", "line",
    "text", "tspan", "rect", "circle", "polyline"})


# ----- helpers -------------------------------------------------------------------------------
def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120, check=False)


def console_lines(stderr: str) -> list[str]:
    """The page's console messages in Chromium's log (``INFO:CONSOLE(12)] "..."``)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("href", "src", "xlink:href"):
                self.hrefs.add(value or "")


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    tags.close()
    return tags


def assert_no_injection_html(page: str) -> None:
    tags = parsed(page)
    assert tags.tags <= ALLOWED_TAGS, tags.tags - ALLOWED_TAGS
    assert not {a for a in tags.attributes if a.startswith("on")}
    # Links only inside the page (arrows to packets), never out of it.
    assert all(h.startswith("#") or h.startswith("url(#") for h in tags.hrefs), tags.hrefs
    assert page.count("</style>") == 1 and page.count("<style>") == 1
    assert control_chars(page) == []


def control_chars(text: str) -> list[str]:
    return sorted({f"U+{ord(c):04X}" for c in text
                   if (ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F})


def markdown_outside_fences(text: str) -> list[str]:
    """The lines outside fenced code blocks, as CommonMark §4.5 closes them: a fence
    closes only on a backtick run at least as long as the one that opened it."""
    outside, fence = [], 0
    for line in text.split("\n"):
        run = re.match(r"^(`{3,})", line)
        if fence:
            if run and len(run.group(1)) >= fence and line.strip("`").strip() == "":
                fence = 0
        elif run:
            fence = len(run.group(1))
        else:
            outside.append(line)
    assert fence == 0, "a code fence was left open"
    return outside


def assert_no_injection_markdown(text: str) -> None:
    assert control_chars(text) == []
    for line in markdown_outside_fences(text):
        lowered = line.lower()
        for needle in ("<script", "<img", "</style", "</pre", "<b>", "](javascript"):
            assert needle not in lowered, line


# ----- lesson captures in Chromium -------------------------------------------------------------
@pytest.mark.chromium
@needs_chromium
@pytest.mark.parametrize("name", ["tcp-basic", "udp-connected"])
def test_html_handout_in_chromium(name: str, tmp_path: Path) -> None:
    page = write_handout(CAPTURES / f"{name}.pcap", tmp_path / f"{name}.html")
    html_text = page.read_text(encoding="utf-8")
    assert_no_injection_html(html_text)
    url = page.as_uri()
    dom = chromium("--dump-dom", url, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    packets = {"tcp-basic": 11, "udp-connected": 4}[name]
    for frame in range(1, packets + 1):
        assert f'id="p{frame}"' in dom.stdout, f"packet {frame} missing"
    assert f'id="p{packets + 1}"' not in dom.stdout
    assert 'class="figure ladder"' in dom.stdout and "<svg" in dom.stdout
    if name == "tcp-basic":
        assert 'class="figure state-diagram"' in dom.stdout
        for state in ("LISTEN", "SYN_RECEIVED", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK"):
            assert f'data-state="{state}"' in dom.stdout
        assert 'class="figure graph"' in dom.stdout and "What state is the server in" in dom.stdout
    else:
        assert "ICMP port unreachable" in dom.stdout and "answers #3" in dom.stdout
    shot = tmp_path / f"handout-{name}.png"
    done = chromium("--hide-scrollbars", "--window-size=1100,2400", f"--screenshot={shot}", url,
                    profile=tmp_path / "profile-shot")
    assert console_lines(done.stderr) == []
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    keep = os.environ.get("CAPDISSECT_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(shot, Path(keep) / shot.name)


@pytest.mark.chromium
@needs_chromium
@pytest.mark.skipif(PDFTOPPM is None, reason="pdftoppm is not installed (Debian: poppler-utils)")
@pytest.mark.parametrize(("paper", "size"), [("a4", "(A4)"), ("letter", "(letter)")])
def test_pdf_handout_pages(paper: str, size: str, tmp_path: Path) -> None:
    pdf = write_handout(CAPTURES / "tcp-basic.pcap", tmp_path / "tcp-basic.pdf",
                        title="TCP lesson", paper=paper)
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert PDFTOPPM is not None
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True,
                          timeout=60).stdout
    assert re.search(r"^Page size:.*" + re.escape(size), info, re.M), info
    subprocess.run([PDFTOPPM, "-r", "50", "-png", str(pdf), str(tmp_path / "page")],
                   check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    # Summary, ladder, state diagram, ledger, graph, 11 packets, questions, answers: several
    # packets a page, so 8 pages at most (it was 16, one packet a page).
    assert 4 <= len(pages) <= 8, len(pages)
    assert all(p.stat().st_size > 3_000 for p in pages)  # not blank
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert all(f"Packet {n}" in text for n in range(1, 12))
    keep = os.environ.get("CAPDISSECT_KEEP_SCREENSHOTS")
    if keep:
        shutil.copy(pages[0], Path(keep) / "handout-pdf-page1.png")


@pytest.mark.chromium
@needs_chromium
@pytest.mark.parametrize("name", [p.stem for p in sorted(CAPTURES.glob("tcp-*.pcap"))])
def test_state_diagram_labels_never_overlap(name: str, tmp_path: Path) -> None:
    """Chromium lays the figure out; no two of its texts (states, arrow labels, legend)
    may share a pixel, with each connection's paths drawn over it."""
    from capdissect.report.handout.lesson import build_lesson
    from capdissect.report.handout.svg import state_diagram
    from capdissect.tracking.tcp import TcpConnection
    from tests.support.handoutwire import decoded_packets
    from tests.support.svgoverlap import text_overlaps

    lesson = build_lesson(decoded_packets(CAPTURES / f"{name}.pcap"), name)
    figures = []
    for item in lesson.flows:
        if isinstance(item.flow, TcpConnection):
            c, s = item.flow.client, item.flow.server
            figures.append(state_diagram([("client", c.path, "#1d4ed8"),
                                          ("server", s.path, "#c2410c")]).svg)
    texts, hits = text_overlaps(figures, tmp_path)
    assert texts >= 30 * len(figures) and hits == []


def test_figure_draws_passive_open_and_the_2msl_timer() -> None:
    from capdissect.report.handout.svg import state_diagram

    figure = state_diagram([]).svg
    assert ">passive open<" in figure and ">timeout = 2MSL<" in figure
    timer = re.search(r'<polyline class="edge" points="[^"]*" fill="none" stroke="([^"]+)"'
                      r'[^>]*stroke-dasharray="([^"]+)"[^>]*url\(#sd-timer\)', figure)
    assert timer is not None and timer.groups() != ("#9ca3af", "6 4")  # not the RST's style


def test_icmp_quote_keeps_its_tab() -> None:
    """tcpdump indents the datagram an ICMP error quotes with a tab; the handout keeps it
    (it used to print `.IP (tos ...`)."""
    from capdissect.report.handout.html import render_html
    from capdissect.report.handout.lesson import build_lesson
    from capdissect.report.handout.markdown import render_markdown
    from tests.support.handoutwire import decoded_packets

    lesson = build_lesson(decoded_packets(CAPTURES / "udp-unreachable.pcap"),
                          "udp-unreachable.pcap")
    tcpdump = subprocess.run([TCPDUMP or "tcpdump", "-nn", "-v", "-r",
                              str(CAPTURES / "udp-unreachable.pcap")],
                             capture_output=True, text=True, check=True, timeout=60).stdout
    quoted = next(line for line in tcpdump.splitlines() if line.startswith("\tIP "))
    for text in (render_html(lesson), render_markdown(lesson)):
        assert "\n" + html.escape(quoted, quote=True) + "\n" in text or "\n" + quoted + "\n" in text
        assert "\n.IP (tos" not in text


def test_markdown_handout() -> None:
    from capdissect.report.handout.lesson import build_lesson
    from capdissect.report.handout.markdown import render_markdown
    from tests.support.handoutwire import decoded_packets

    lesson = build_lesson(decoded_packets(CAPTURES / "tcp-basic.pcap"), "tcp-basic.pcap")
    text = render_markdown(lesson)
    assert text.count("```mermaid") == 3  # ladder, state diagram, sequence chart
    assert "sequenceDiagram" in text and "stateDiagram-v2" in text
    assert "    LAST_ACK --> CLOSED: rcv ACK of FIN" in text
    assert all(f"### Packet {n} " in text for n in range(1, 12))
    assert "What state is the server in after packet" in text
    assert_no_injection_markdown(text)


def test_explanations_reason_about_seq_and_ack() -> None:
    from capdissect.report.handout.lesson import build_lesson
    from tests.support.handoutwire import decoded_packets

    lesson = build_lesson(decoded_packets(CAPTURES / "tcp-basic.pcap"), "tcp-basic.pcap")
    words = {view.frame: " ".join(view.explanation) for view in lesson.packets}
    assert "ack 1" in words[2] and "SYN in packet 1 took number 0" in words[2]
    assert "bytes 1 to 11" in words[4]
    assert "ack 12" in words[5] and "packet 4 carried bytes 1 to 11" in words[5]
    assert "the FIN as number 12" in words[8]
    assert "ack 13" in words[9] and "its FIN took 12" in words[9]
    assert "loopback" in words[3]  # the checksum note, on every packet it applies to
    answers = {q.text: q.answer for q in lesson.questions}
    assert answers["What state is the server in after packet 8?"].startswith("CLOSE_WAIT")


# ----- hostile payloads ------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def hostile_exchange(port: int) -> None:
    """The TCP lesson with hostile bytes both ways, then a UDP datagram of them."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(10)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(HOSTILE_PAYLOAD[::-1])

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(HOSTILE_PAYLOAD)
            client.recv(4096)
        thread.join(10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        sender.sendto(HOSTILE_PAYLOAD, ("127.0.0.1", port))


def check_all_outputs(capture: Path, tmp_path: Path) -> None:
    page = write_handout(capture, tmp_path / "hostile.html").read_text(encoding="utf-8")
    assert_no_injection_html(page)
    # The payload is there, as text: each byte of the ASCII column is its own span.
    # Its title names the field as Wireshark's filters do (tcp.payload, data.data).
    assert re.search(r'<span class="k-pay" title="payload \((tcp\.payload|data\.data)\)">'
                     r'&lt;</span>', page)
    text = write_handout(capture, tmp_path / "hostile.md").read_text(encoding="utf-8")
    assert_no_injection_markdown(text)
    for args in (["read", str(capture), "-nn", "-v", "-X"], ["timeline", str(capture)],
                 ["sockets", str(capture), "--every"]):
        done = subprocess.run([str(ROOT / ".venv/bin/capdissect"), *args], capture_output=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        out = done.stdout.decode("utf-8", "replace") + done.stderr.decode("utf-8", "replace")
        assert control_chars(out) == [], args
    if CHROMIUM is not None:
        dom = chromium("--dump-dom", (tmp_path / "hostile.html").as_uri(),
                       profile=tmp_path / "profile")
        assert console_lines(dom.stderr) == []
        assert "<script" not in dom.stdout and "<img" not in dom.stdout


@pytest.mark.live
@pytest.mark.tcpdump
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
def test_live_hostile_payload_injects_nothing(tmp_path: Path) -> None:
    port = free_port()
    path = tmp_path / f"hostile-{port}.pcap"
    with pytest_capture(path, f"port {port}") as cap:
        hostile_exchange(port)
        count = cap.stop()
    assert count >= 8, f"captured {count}: {cap.stderr_lines}"
    check_all_outputs(path, tmp_path)


def test_crafted_hostile_pcapng_injects_nothing(tmp_path: Path) -> None:
    from tests.support.handoutwire import hostile_pcapng

    path = hostile_pcapng(tmp_path / "crafted.pcapng", HOSTILE_PAYLOAD,
                          comment="comment " + HOSTILE_TEXT, iface="lo</style><script>x")
    check_all_outputs(path, tmp_path)
    page = (tmp_path / "hostile.html").read_text(encoding="utf-8")
    assert "lo&lt;/style&gt;&lt;script&gt;x" in page  # the interface name, escaped
    assert "Comment in the capture file" in page
    annotated = tmp_path / "annotated.pcapng"
    write_annotated(path, annotated)
    if TSHARK is not None:
        comments = tshark_comments(annotated)
        assert comments and all(c for c in comments)
        assert all(c.startswith("comment ") for c in comments)  # the original kept, first


# ----- annotate ----------------------------------------------------------------------------------
def tshark_comments(path: Path) -> list[str]:
    assert TSHARK is not None
    done = subprocess.run([TSHARK, "-r", str(path), "-T", "fields", "-e", "frame.comment"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.tshark
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", ["tcp-basic", "udp-connected", "tcp-reset", "tcp-refused"])
def test_annotated_pcapng_in_tshark(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.pcapng"
    count = write_annotated(CAPTURES / f"{name}.pcap", out)
    comments = tshark_comments(out)
    assert len(comments) == count > 0
    assert all(comments), comments  # every packet has its annotation
    if name == "tcp-basic":
        assert comments[0].startswith("handshake 1/3 SYN")
        assert "client 127.0.0.1.59370: CLOSED -> SYN_SENT" in comments[0]
        assert "LAST_ACK -> CLOSED" in comments[10]
    # Timestamps and bytes are the original's: tcpdump prints the same packets.
    if TCPDUMP is not None:
        before = subprocess.run([TCPDUMP, "-r", str(CAPTURES / f"{name}.pcap"), "-nn", "-tt"],
                                capture_output=True, text=True, check=True).stdout
        after = subprocess.run([TCPDUMP, "-r", str(out), "-nn", "-tt"], capture_output=True,
                               text=True, check=True).stdout
        assert before == after


def many_lessons(path: Path, copies: int) -> Path:
    """The TCP lesson *copies* times, each from its own client port (20000, 20001...):
    a capture too big for a whole handout, of connections numbered 1..copies."""
    data = (CAPTURES / "tcp-basic.pcap").read_bytes()
    records, offset = [], 24
    while offset < len(data):
        _, _, incl, orig = struct.unpack_from("<IIII", data, offset)
        records.append((bytearray(data[offset + 16:offset + 16 + incl]), orig))
        offset += 16 + incl
    out = [data[:24]]
    for copy in range(copies):
        for n, (frame, orig) in enumerate(records):
            frame = bytearray(frame)
            for at in (34, 36):  # the TCP ports, after Ethernet (14) and IPv4 (20)
                if struct.unpack_from("!H", frame, at)[0] == 59370:
                    struct.pack_into("!H", frame, at, 20000 + copy)
            out.append(struct.pack("<IIII", 1_600_000_000 + copy, n * 1000, len(frame), orig)
                       + bytes(frame))
    path.write_bytes(b"".join(out))
    return path


def test_one_connection_of_a_capture_of_any_size(tmp_path: Path) -> None:
    big = many_lessons(tmp_path / "many.pcap", 500)  # 5,500 packets: too many for all
    with pytest.raises(CapdissectError, match="more than 5000 packets"):
        write_handout(big, tmp_path / "all.html")
    page = write_handout(big, tmp_path / "one.html", conn=437).read_text(encoding="utf-8")
    # connection 437's eleven packets, numbered as in the file and as `flows` numbers it
    first = (437 - 1) * 11 + 1
    frames = [int(n) for n in re.findall(r'id="p(\d+)"', page)]
    assert frames == list(range(first, first + 11))
    assert "TCP connection 437" in page and "TCP connection 1:" not in page
    assert "127.0.0.1:20436" in page and "5500" in page
    with pytest.raises(CapdissectError, match=r"no connection or conversation 501 .*has 500"):
        write_handout(big, tmp_path / "none.html", conn=501)
