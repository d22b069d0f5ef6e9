"""A real lossy TCP transfer, captured: for the RTT, bytes-in-flight and follow tests.

``lossy_capture(out)`` makes a client's and a server's network namespace joined through
a third (tests/support/relay.py), and captures, on the client's interface, the client sending
300 kB (``size``, which the benchmark capture raises) to the server, which answers each
10 kB with a line.  Segments are dropped, delayed and reordered (``NETEM``) by tc netem on
both interfaces where the kernel has netem, else by the userspace relay in the middle
namespace (this machine's kernel has no netem module): client to server after the capture
point, server to client before it.  Either way the kernel's real TCP recovers with
retransmissions, duplicate ACKs and SACK.  MTU 1500 and one segment per frame, so the
transfer takes hundreds of segments.  The namespaces are deleted whatever happens.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from capdissect.demo.netns import tool
from tests.support.relay import RelayedPath

PORT: Final = 40000
NETEM: Final = "delay 10ms 3ms loss 5% reorder 5%"
SEED: Final = 20
ADDRS: Final = ("10.204.0.1", "10.204.0.2")
SIZE: Final = 300_000
CHUNK: Final = 10_000


def _server(size: int) -> str:
    return f"""
import socket
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("{ADDRS[1]}", {PORT})); server.listen(1); print("ready", flush=True)
server.settimeout(30); conn, _ = server.accept(); conn.settimeout(30)
got = 0
while got < {size}:
    data = conn.recv(65536)
    if not data:
        break
    before, got = got, got + len(data)
    if got // {CHUNK} > before // {CHUNK}:
        conn.sendall(b"got %d\\n" % got)
conn.close(); server.close()
"""


def _client(size: int) -> str:
    return f"""
import socket
client = socket.create_connection(("{ADDRS[1]}", {PORT}), timeout=30)
payload = bytes(range(256)) * ({size} // 256 + 1)
client.sendall(payload[:{size}])
client.shutdown(socket.SHUT_WR)
while client.recv(65536):
    pass
client.close()
"""


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def lossy_capture(out: Path, size: int = SIZE) -> tuple[str, int]:
    """Capture the transfer of *size* bytes to *out*; return how the loss was made, and how
    many packets were dropped."""
    stem = f"capd-{os.getpid()}-{secrets.token_hex(2)}"
    names = (f"{stem}-c", f"{stem}-r", f"{stem}-s")
    devs = ("eth0", "eth0")
    with RelayedPath(names, devs, ADDRS) as path:
        netem = path.has_netem()
        how = (f"tc netem {NETEM} on both ends" if netem else
               f"the userspace relay (tests/support/relay.py), {NETEM} (no netem in this kernel)")
        path.impair(NETEM, SEED)
        dump = subprocess.Popen(["ip", "netns", "exec", names[0], tool("tcpdump") or "tcpdump",
                                 "-i", devs[0], "-U", "-w", str(out), f"tcp port {PORT}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        server = None
        try:
            time.sleep(1.0)  # tcpdump is listening once it has said so; give it the time
            server = subprocess.Popen(["ip", "netns", "exec", names[2], sys.executable, "-c",
                                       _server(size)], stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None
            assert server.stdout.readline().strip() == "ready"
            done = _run(["ip", "netns", "exec", names[0], sys.executable, "-c", _client(size)])
            assert done.returncode == 0, done.stderr
            assert server.wait(timeout=30) == 0
            written, deadline = -1, time.monotonic() + 20
            while time.monotonic() < deadline and out.stat().st_size != written:
                written = out.stat().st_size  # tcpdump is still writing what it buffered
                time.sleep(1.0)
        finally:
            if server is not None and server.poll() is None:
                server.kill()
                server.wait(timeout=10)
            dump.terminate()
            dump.wait(timeout=10)
        counts = path.stop()
        dropped = counts.get("dropped", 0)
        if netem:
            for ns, dev in zip((names[0], names[2]), devs, strict=True):
                shown = _run(["ip", "netns", "exec", ns, tool("tc") or "tc", "-s", "qdisc",
                              "show", "dev", dev])
                dropped += sum(int(n) for n in re.findall(r"dropped (\d+)", shown.stdout))
    return how, dropped
