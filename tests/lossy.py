"""A real lossy TCP transfer, captured: for the RTT, bytes-in-flight and follow tests.

``lossy_capture(out)`` makes a network namespace (capdissect.demo.netns), sets its
loopback's MTU to Ethernet's 1500 (and GSO to one segment) so the transfer takes
hundreds of segments, drops a
share of them at random, and captures a client sending 300 kB to a server that answers
each 10 kB with a line.  The loss is ``tc qdisc netem`` (with a delay) where the kernel
has netem, else an nftables ``numgen random`` drop rule (this machine's kernel has no
netem module); either way the kernel's real TCP recovers with retransmissions, duplicate
ACKs and SACK.  The namespace is deleted whatever happens.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from capdissect.demo.netns import Namespace, tool

PORT: Final = 40000
LOSS_PERCENT: Final = 5
# nft compares numgen's result as bytes: "< 3" never matches on a little-endian machine,
# "== 0" does; one in 20 is 5 %.
DROP_ONE_IN: Final = 20
SIZE: Final = 300_000
CHUNK: Final = 10_000
_PROGRAM: Final = f"""
import socket, threading
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", {PORT})); server.listen(1)
def serve():
    conn, _ = server.accept()
    got = 0
    while got < {SIZE}:
        data = conn.recv(65536)
        if not data:
            break
        before, got = got, got + len(data)
        if got // {CHUNK} > before // {CHUNK}:
            conn.sendall(b"got %d\\n" % got)
    conn.close()
thread = threading.Thread(target=serve); thread.start()
client = socket.create_connection(("127.0.0.1", {PORT}))
payload = bytes(range(256)) * ({SIZE} // 256 + 1)
client.sendall(payload[:{SIZE}])
client.shutdown(socket.SHUT_WR)
while client.recv(65536):
    pass
client.close(); thread.join(); server.close()
"""
_DROP: Final = f"""table inet capdissect_loss {{
 chain out {{
  type filter hook output priority 0;
  tcp dport {PORT} numgen random mod {DROP_ONE_IN} 0 counter drop
  tcp sport {PORT} numgen random mod {DROP_ONE_IN} 0 counter drop
 }}
}}
"""


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                          check=False)


def lossy_capture(out: Path) -> tuple[str, int]:
    """Capture the transfer to *out*; return how the loss was made, and how many packets
    were dropped (a dropped packet never reaches the capture, its resending does)."""
    with Namespace(None) as ns:
        # Ethernet's MTU, and no GSO super-packets (one segment per packet on the wire).
        for setting in (["mtu", "1500"], ["gso_max_segs", "1"], ["gso_max_size", "1500"]):
            done = _run([tool("ip") or "ip", "-n", ns.name, "link", "set", "lo", *setting])
            assert done.returncode == 0, done.stderr
        tc = tool("tc") or "tc"
        netem = _run(ns.command([tc, "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                                 "2ms", "loss", f"{LOSS_PERCENT}%"]))
        how = f"tc netem delay 2ms loss {LOSS_PERCENT}%"
        if netem.returncode != 0:
            done = _run(ns.command([tool("nft") or "nft", "-f", "-"]), _DROP)
            assert done.returncode == 0, done.stderr
            how = f"nftables numgen random drop 1 in {DROP_ONE_IN} (no netem in this kernel)"
        dump = subprocess.Popen(ns.command([tool("tcpdump") or "tcpdump", "-i", "lo", "-U",
                                            "-w", str(out), f"tcp port {PORT}"]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(1.0)  # tcpdump is listening once it has said so; give it the time
            done = _run(ns.command([sys.executable, "-c", _PROGRAM]))
            assert done.returncode == 0, done.stderr
            size, deadline = -1, time.monotonic() + 20
            while time.monotonic() < deadline and out.stat().st_size != size:
                size = out.stat().st_size  # tcpdump is still writing what it buffered
                time.sleep(1.0)
        finally:
            dump.terminate()
            dump.wait(timeout=10)
        if netem.returncode == 0:
            counters = _run(ns.command([tc, "-s", "qdisc", "show", "dev", "lo"])).stdout
            dropped = sum(int(n) for n in re.findall(r"dropped (\d+)", counters))
        else:
            counters = _run(ns.command([tool("nft") or "nft", "list", "table", "inet",
                                        "capdissect_loss"])).stdout
            dropped = sum(int(n) for n in re.findall(r"counter packets (\d+)", counters))
    return how, dropped
