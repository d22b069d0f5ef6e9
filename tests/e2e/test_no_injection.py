"""Payloads are data: nothing in a capture can drive the terminal (SPEC §6).

A capture whose payloads, and whose pcapng packet comments, hold terminal escape
sequences (``ESC [ 31m``, an OSC window title ``ESC ] 0;... BEL``), carriage returns,
backspaces, DEL, NUL, 8-bit CSI, a bidirectional override and overlong UTF-8 is printed by
``capdissect read`` with and without ``--plain``, with ``-X``, ``-x``, ``-XX``, ``-v`` and
``-vv``.  Neither stdout nor stderr may carry a byte below 0x20 other than newline and
tab, nor DEL, nor any byte above 0x7e: tcpdump's output is printable ASCII and so is
ours.  tcpdump prints RST data at ``-v`` with ``^[`` for ESC and ``M-x`` for bytes with
the high bit set (print-tcp.c, print_tcp_rst_data); ``--plain`` matches it byte for byte.

The packets are crafted with scapy (an RST carrying data is rare on the wire, and Linux
never sends one); a second capture is real loopback traffic (marker ``live``): a TCP
exchange and UDP datagrams carrying the same bytes, captured by tcpdump.
"""

from __future__ import annotations

import shutil
import socket
import struct
import threading
from pathlib import Path
from typing import Final

import pytest

from tests.support.compare import capdissect_command, run, split_blocks
from tests.support.livecap import pytest_capture

TCPDUMP: Final = shutil.which("tcpdump")
HOSTILE: Final = (
    b"\x1b[31mRED\x1b[0m",  # SGR colour
    b"\x1b]0;pwned title\x07",  # OSC: set the window title, ended by BEL
    b"\x1b[2J\x1b[H",  # clear the screen, cursor home
    b"ok\rOVERWRITTEN",  # carriage return over the line
    b"abc\x08\x08\x08XYZ",  # backspaces
    b"\x7fDEL\x00NUL\x0bVT\x0cFF",
    b"\x9b31m",  # 8-bit CSI
    b"\xc2\x9b31m",  # CSI as UTF-8 (U+009B)
    b"\xc0\xaf\xe0\x80\xaf\xc1\xbf",  # overlong UTF-8 ('/' and others)
    b"\xe2\x80\xaeevil\xe2\x80\xac",  # right-to-left override
)
PAYLOAD: Final = b"".join(HOSTILE)
COMMENT: Final = "comment " + PAYLOAD.decode("utf-8", "replace") + "\x1b[1;31m\x07"
MODES: Final = {
    "plain-X": ("--plain", "-nn", "-X"),
    "plain-v": ("--plain", "-nn", "-v"),
    "plain-vv": ("--plain", "-nn", "-vv"),
    "plain-v-X": ("--plain", "-nn", "-v", "-X"),
    "plain-vv-XX-e": ("--plain", "-nn", "-vv", "-XX", "-e"),
    "plain-x": ("--plain", "-nn", "-x"),
    "plain-names": ("--plain",),
    "annotated": ("-nn",),
    "annotated-X": ("-nn", "-X"),
    "annotated-vv-X": ("-nn", "-vv", "-X"),
    "annotated-names-v": ("-v",),
}
# Compared with tcpdump: --plain, and -nn, since tcpdump without -n may ask DNS for names.
PLAIN_MODES: Final = {name: options for name, options in MODES.items()
                      if "--plain" in options and "-nn" in options}


def unsafe_bytes(data: bytes) -> list[str]:
    """Every byte a terminal could act on: controls but newline and tab, DEL, non-ASCII."""
    return sorted({f"0x{b:02x}" for b in data if (b < 0x20 and b not in (0x0A, 0x09))
                   or b >= 0x7F})


def crafted_packets() -> list[bytes]:
    """Ethernet frames: TCP data, RST segments with data (short, and past tcpdump's 30-byte
    cut), UDP, ICMP echo and ICMPv6 echo, all carrying the hostile bytes."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.layers.l2 import Ether

    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    v4 = IP(src="127.0.0.1", dst="127.0.0.1")
    v6 = IPv6(src="::1", dst="::1")
    packets = [
        eth / v4 / TCP(sport=40000, dport=30002, flags="S", seq=100),
        eth / v4 / TCP(sport=30002, dport=40000, flags="SA", seq=500, ack=101),
        eth / v4 / TCP(sport=40000, dport=30002, flags="PA", seq=101, ack=501) / PAYLOAD,
    ]
    for part in HOSTILE:  # each sequence on its own RST, so each is shown whole
        packets.append(eth / v4 / TCP(sport=30002, dport=40000, flags="R", seq=501) / part)
    packets += [
        eth / v4 / TCP(sport=30002, dport=40000, flags="RA", seq=501, ack=101) / PAYLOAD,
        eth / v6 / TCP(sport=30002, dport=40000, flags="R", seq=7) / HOSTILE[1],
        eth / v4 / UDP(sport=40001, dport=30003) / PAYLOAD,
        eth / v6 / UDP(sport=40001, dport=30003) / PAYLOAD,
        eth / v4 / ICMP(type=8, id=1, seq=1) / PAYLOAD,
        eth / v6 / ICMPv6EchoRequest(id=1, seq=1, data=PAYLOAD),
        # A checksum left wrong on purpose: -v prints the verdict next to hostile data.
        eth / v4 / TCP(sport=30002, dport=40000, flags="R", seq=501, chksum=1) / HOSTILE[0],
    ]
    return [bytes(p) for p in packets]


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_700_000_000 + i, i, len(frame), len(frame)))
            out.write(frame)


def write_pcapng(path: Path, frames: list[bytes], comment: str) -> None:
    """Every packet carries *comment* as its opt_comment (hostile bytes included)."""

    def block(btype: int, body: bytes) -> bytes:
        body += bytes(-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack(
            "<I", len(body) + 12)

    def option(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + bytes(-len(value) % 4)

    raw_comment = comment.encode("utf-8", "surrogateescape")
    with path.open("wb") as out:
        out.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
                        + option(1, raw_comment) + option(0, b"")))
        out.write(block(1, struct.pack("<HHI", 1, 0, 262144) + option(2, b"lo\x1b[31m")
                        + option(0, b"")))
        for i, frame in enumerate(frames):
            ticks = (1_700_000_000 + i) * 1_000_000
            body = struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame),
                               len(frame)) + frame + bytes(-len(frame) % 4)
            out.write(block(6, body + option(1, raw_comment) + option(0, b"")))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("hostile")
    frames = crafted_packets()
    paths = {"pcap": directory / "hostile.pcap", "pcapng": directory / "hostile.pcapng"}
    write_pcap(paths["pcap"], frames)
    write_pcapng(paths["pcapng"], frames, COMMENT)
    return paths


def read_bytes(path: Path, options: tuple[str, ...]) -> tuple[bytes, bytes]:
    result = run([*capdissect_command(), "read", str(path), *options])
    assert result.problem() is None, result.problem()
    return result.stdout.encode("latin-1"), result.stderr.encode("utf-8", "replace")


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("options", MODES.values(), ids=list(MODES))
def test_no_control_bytes_reach_the_terminal(hostile: dict[str, Path], kind: str,
                                             options: tuple[str, ...]) -> None:
    stdout, stderr = read_bytes(hostile[kind], options)
    assert stdout.count(b"\n") >= len(crafted_packets())
    assert unsafe_bytes(stdout) == [], stdout.decode("latin-1")
    assert unsafe_bytes(stderr) == [], stderr.decode("latin-1")


@pytest.mark.tcpdump
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("options", PLAIN_MODES.values(), ids=list(PLAIN_MODES))
def test_escaped_like_tcpdump(hostile: dict[str, Path], options: tuple[str, ...]) -> None:
    """``--plain`` prints the hostile capture byte for byte as tcpdump does."""
    stdout, _ = read_bytes(hostile["pcap"], options)
    reference = run([str(TCPDUMP), "-r", str(hostile["pcap"]), *options[1:]])
    assert reference.problem() is None, reference.problem()
    assert unsafe_bytes(reference.stdout.encode("latin-1")) == []  # tcpdump's own promise
    want, have = split_blocks(reference.stdout), split_blocks(stdout.decode("latin-1"))
    for index, (expected, got) in enumerate(zip(want, have, strict=False)):
        assert got == expected, f"packet {index + 1}"
    assert len(have) == len(want)


@pytest.mark.tcpdump
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
def test_rst_data_escapes(hostile: dict[str, Path]) -> None:
    """The RST data itself, spelled out: ESC is ^[, BEL ^G, CR ^M, 0x9b M-^[."""
    stdout, _ = read_bytes(hostile["pcap"], ("--plain", "-nn", "-v"))
    text = stdout.decode("ascii")
    assert "[RST ^[[31mRED^[[0m]" in text
    assert "[RST ^[]0;pwned title^G]" in text
    assert "[RST ok^MOVERWRITTEN]" in text
    assert "[RST M-^[31m]" in text
    assert "[RST M-@M-/M-`M-^@M-/M-AM-?]" in text  # overlong UTF-8
    assert "[RST ^?DEL^@NUL^KVT^LFF]" in text
    assert "[RST+ ^[[31mRED^[[0m^[]0;pwned title^G^[[]" in text  # cut at 30 bytes


# ----- real sockets on loopback --------------------------------------------------------------
def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def hostile_exchange(port: int) -> None:
    """A TCP server and client trading the hostile bytes, then UDP datagrams of them."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(1)
        server.settimeout(10)

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(10)
                conn.recv(4096)
                conn.sendall(HOSTILE[1] + HOSTILE[3])
                # An abortive close: the kernel sends RST (without data; Linux never
                # puts data on a RST, hence the crafted capture above).
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(PAYLOAD)
            client.recv(4096)
            thread.join(10)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for part in HOSTILE:
            sender.sendto(part, ("127.0.0.1", port))


@pytest.mark.live
@pytest.mark.tcpdump
@pytest.mark.skipif(TCPDUMP is None, reason="tcpdump is not installed")
def test_live_hostile_bytes(tmp_path: Path) -> None:
    port = free_port(socket.SOCK_STREAM)
    path = tmp_path / f"hostile-{port}.pcap"
    with pytest_capture(path, f"port {port}") as cap:
        hostile_exchange(port)
        count = cap.stop()
    assert count >= 5 + len(HOSTILE), f"captured {count}: {cap.stderr_lines}"
    for options in (("--plain", "-nn", "-v", "-X"), ("--plain", "-nn", "-vv"), ("-nn", "-X"),
                    ("-nn", "-vv")):
        stdout, stderr = read_bytes(path, options)
        assert unsafe_bytes(stdout) == [] and unsafe_bytes(stderr) == [], options
        if "--plain" in options:
            reference = run([str(TCPDUMP), "-r", str(path), *options[1:]])
            assert reference.problem() is None, reference.problem()
            assert stdout.decode("latin-1") == reference.stdout, options
