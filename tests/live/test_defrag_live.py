"""IP fragment reassembly on datagrams the kernel really fragmented (issue #18).

In a namespace this test makes, loopback's MTU is set to 1280 and a 3000-byte UDP
datagram is sent over IPv4 (path MTU discovery off, so the kernel fragments it rather than
refusing) and over IPv6 (which fragments at the source).  tcpdump captures the fragments;
the receiving sockets get the datagrams the kernel put back together.  The Defragmenter
must give, at the same frames as tshark's reassembly, the same UDP payloads as tshark,
and they must be the bytes sent.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

import pytest

from capdissect.demo.netns import Namespace, namespace_problem, tool
from capdissect.dissect.defrag import Defragmenter
from capdissect.dissect.stack import decode
from capdissect.dissect.udp import UdpHeader
from capdissect.sources.files import open_capture

SIZE: Final = 3000
PORTS: Final = (41001, 41002)
_PROGRAM: Final = f"""
import socket
data = bytes(range(256)) * ({SIZE} // 256 + 1)
for family, host, port in ((socket.AF_INET, "127.0.0.1", {PORTS[0]}),
                           (socket.AF_INET6, "::1", {PORTS[1]})):
    rx = socket.socket(family, socket.SOCK_DGRAM); rx.bind((host, port))
    tx = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET:
        tx.setsockopt(socket.IPPROTO_IP, 10, 0)  # IP_MTU_DISCOVER: IP_PMTUDISC_DONT
    tx.sendto(data[:{SIZE}], (host, port))
    rx.settimeout(5)
    assert rx.recv(65536) == data[:{SIZE}]
"""
pytestmark = [pytest.mark.tcpdump, pytest.mark.tshark, pytest.mark.skipif(
    namespace_problem() is not None or shutil.which("tshark") is None
    or tool("tcpdump") is None, reason="needs root, iproute2, nftables, tcpdump, tshark")]


def capture(out: Path) -> None:
    with Namespace(None) as ns:
        done = subprocess.run([tool("ip") or "ip", "-n", ns.name, "link", "set", "lo", "mtu",
                               "1280"], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        dump = subprocess.Popen(ns.command([tool("tcpdump") or "tcpdump", "-i", "lo", "-U",
                                            "-w", str(out), "ip or ip6"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # tcpdump is listening once it has started
            sent = subprocess.run(ns.command([sys.executable, "-c", _PROGRAM]),
                                  capture_output=True, text=True, timeout=30, check=False)
            assert sent.returncode == 0, sent.stderr
            time.sleep(1.0)
        finally:
            dump.terminate()
            dump.wait(timeout=10)


def test_kernel_fragments_reassembled_as_tshark(tmp_path: Path) -> None:
    out = tmp_path / "frag.pcap"
    capture(out)
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(out), "-T", "fields", "-e", "frame.number",
         "-e", "udp.dstport", "-e", "data.data", "-e", "ip.fragment", "-e", "ipv6.fragment"],
        capture_output=True, text=True, timeout=60, check=True).stdout
    theirs = {}
    for line in fields.splitlines():
        frame, port, data, pieces4, pieces6 = line.split("\t")
        if port and int(port) in PORTS:
            assert pieces4 or pieces6, f"frame {frame}: the datagram was not fragmented"
            theirs[int(frame)] = bytes.fromhex(data)
    defrag = Defragmenter()
    ours = {}
    with open_capture(out) as packets:
        for frame, raw in enumerate(packets, 1):
            whole = defrag.feed(decode(raw))
            if whole is not None and isinstance(whole.transport, UdpHeader):
                assert whole.transport.dst_port in PORTS
                ours[frame] = whole.payload
    assert len(theirs) == 2 and ours == theirs
    assert set(ours.values()) == {(bytes(range(256)) * (SIZE // 256 + 1))[:SIZE]}
