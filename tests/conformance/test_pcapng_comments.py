"""Both pcapng writers (``live -w``'s PacketWriter, ``annotate``'s block builders) write a
packet comment the same way: the option's length is the comment's own UTF-8 length, the
value is padded to 4 bytes, and a comment longer than an option can hold (16-bit length)
is cut on a character boundary.  Before the blocks were defined once, PacketWriter
had no cut: a comment over 65535 bytes ended the write with a struct.error traceback,
while annotate's builder cut it.  Each file is read back by our reader, tcpdump and tshark.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from capdissect.packets import RawPacket
from capdissect.sources.files import open_capture
from capdissect.sources.pcapng import (
    MAX_OPTION,
    Interface,
    enhanced_packet,
    interface_description,
    section_header,
)
from capdissect.sources.writer import PacketWriter

pytestmark = [pytest.mark.tcpdump, pytest.mark.tshark]

FRAME = bytes(12) + b"\x08\x00" + bytes(87)  # 101 bytes: the data needs padding too
# UTF-8 lengths 5, 6 (é is 2 bytes), 7, and one past an option's 65535 whose cut falls
# inside a 2-byte character.
COMMENTS = ["abcde", "é" * 3, "ab\u20acé", "é" * 40000]


def expected(comment: str) -> str:
    data = comment.encode()[:MAX_OPTION]
    return data.decode("utf-8", "ignore")


def by_packet_writer(path: Path, pkt: RawPacket) -> None:
    with PacketWriter(path, 1, 262144, iface="lo") as writer:
        writer.write(pkt)


def by_annotate_blocks(path: Path, pkt: RawPacket) -> None:
    iface = Interface(1, 262144, 10**9, 0, "lo")
    path.write_bytes(section_header("test") + interface_description(iface)
                     + enhanced_packet(pkt, 0, 9, [pkt.comment or ""]))


@pytest.mark.parametrize("comment", COMMENTS, ids=lambda c: f"{len(c.encode())}B")
@pytest.mark.parametrize("write", [by_packet_writer, by_annotate_blocks],
                         ids=["PacketWriter", "annotate"])
def test_a_comment_of_any_length_reads_back_intact(
        write: Callable[[Path, RawPacket], None], comment: str, tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    write(path, RawPacket(1700000000, 123456789, 1, len(FRAME), FRAME, 0, comment))
    assert len(expected(comment).encode()) % 4 != 0  # the option value needs padding
    with open_capture(path) as capture:
        back = list(capture)
    assert [(p.data, p.comment) for p in back] == [(FRAME, expected(comment))]
    if shutil.which("tcpdump"):
        done = subprocess.run(["tcpdump", "-r", str(path), "-nn", "-tt"], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("1700000000.123456 ")
    if shutil.which("tshark"):
        done = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-e", "frame.comment"],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip("\n") == expected(comment)
