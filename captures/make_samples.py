"""Remake the sample captures in this folder from real loopback traffic.

    sudo .venv/bin/python captures/make_samples.py

tcp-basic.pcap: the TCP lesson (server on 127.0.0.1:30002 sends "who are you", the client
sends "hello world" and closes first).  udp-basic.pcap: one UDP request and reply on
127.0.0.1:10001.  Both are captured by tcpdump on lo while capdissect.demo.traffic drives
the sockets.  Needs root and tcpdump.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: capdissect and tests.livecap

from capdissect.demo.traffic import tcp_lesson, udp_exchange  # noqa: E402
from tests.livecap import TcpdumpCapture  # noqa: E402

TCP_PORT = 30002
UDP_PORT = 10001
ATTEMPTS = 3


def make(out: Path, bpf_filter: str, traffic: Callable[[], None], expect: set[int]) -> int:
    """Capture *traffic* into *out*; retry (bounded) until the packet count is as expected."""
    count = 0
    for attempt in range(1, ATTEMPTS + 1):
        with tempfile.TemporaryDirectory(prefix="capdissect-samples-") as tmp:
            path = Path(tmp) / out.name  # .pcap name: tcpdump's AppArmor profile allows it
            with TcpdumpCapture(path, bpf_filter) as cap:
                traffic()
                count = cap.stop(expect_packets=max(expect))
            if count in expect:
                shutil.copyfile(path, out)
                return count
        print(f"{out.name}: attempt {attempt} captured {count} packets, want {sorted(expect)}")
    raise SystemExit(f"{out.name}: no clean capture after {ATTEMPTS} attempts")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    out_dir: Path = args.out_dir
    host = "127.0.0.1"
    n = make(
        out_dir / "tcp-basic.pcap", f"tcp port {TCP_PORT}",
        lambda: tcp_lesson(host, TCP_PORT), {10, 11},
    )  # fmt: skip
    print(f"tcp-basic.pcap: {n} packets")
    n = make(
        out_dir / "udp-basic.pcap", f"udp port {UDP_PORT}",
        lambda: udp_exchange(host, UDP_PORT), {2},
    )  # fmt: skip
    print(f"udp-basic.pcap: {n} packets")


if __name__ == "__main__":
    main()
