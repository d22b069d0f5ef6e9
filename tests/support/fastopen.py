"""A real TCP Fast Open exchange (RFC 7413), captured: for the tfo_* analysis flags.

``fast_open_capture(out)`` makes a network namespace (capdissect.demo.netns) with Fast
Open on for clients and servers (``net.ipv4.tcp_fastopen=3``) and captures three
connections on its loopback, each a client ``sendto(..., MSG_FASTOPEN)`` to a server
with the ``TCP_FASTOPEN`` socket option:

1. no cookie yet: the SYN asks for one, the SYN-ACK brings it, the data follows;
2. the SYN carries the cookie and the data, and the SYN-ACK acks the data;
3. the server's key is changed first, so the cookie is stale: the SYN-ACK acks only the
   SYN, and the client sends the data again.

The namespace is deleted whatever happens.  `tests/corpus-extra/capdissect_tfo.pcap` was
made with it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from capdissect.demo.netns import Namespace, tool

PORT: Final = 40443
NEW_KEY: Final = "00112233-44556677-8899aabb-ccddeeff"
_PROGRAM: Final = f"""
import socket, threading
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 16)
server.bind(("127.0.0.1", {PORT})); server.listen(4)
def serve():
    for _ in range(3):
        conn, _ = server.accept()
        conn.sendall(conn.recv(100).upper())
        conn.close()
thread = threading.Thread(target=serve); thread.start()
for n in range(3):
    if n == 2:
        with open("/proc/sys/net/ipv4/tcp_fastopen_key", "w") as key:
            key.write("{NEW_KEY}")
    client = socket.socket()
    client.sendto(b"hello %d" % n, socket.MSG_FASTOPEN, ("127.0.0.1", {PORT}))
    assert client.recv(100) == b"HELLO %d" % n
    client.close()
thread.join(); server.close()
"""


def fast_open_capture(out: Path) -> None:
    """Capture the three connections to *out*."""
    with Namespace(None) as ns:
        done = subprocess.run(ns.command([tool("sysctl") or "sysctl", "-qw",
                                          "net.ipv4.tcp_fastopen=3"]),
                              capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        dump = subprocess.Popen(ns.command([tool("tcpdump") or "tcpdump", "-i", "lo", "-U",
                                            "-w", str(out), f"tcp port {PORT}"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # tcpdump is listening once it has said so; give it the time
            done = subprocess.run(ns.command([sys.executable, "-c", _PROGRAM]),
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == 0, done.stderr
            time.sleep(1.0)  # what tcpdump buffered
        finally:
            dump.terminate()
            dump.wait(timeout=10)
