"""A FIN lost on loopback, checked against the kernel: its receiver changes state when
the copy sent again arrives, not at the lost one.

Inside a namespace whose firewall drops each side's first FIN (demo/netns.py), the
client shuts down, then the server closes: each FIN is lost once and sent again about
0.2 s later (the retransmission timeout).  ``ss`` runs inside the namespace while each
first FIN is lost, after each retransmission, and at the end; capdissect's socket table
at each of those moments must be the kernel's (demo/oracle.py lines them up).  Before
the copies sent again were taken into account, the table had the server in CLOSE_WAIT
while the kernel still had it ESTABLISHED, and the client in TIME_WAIT while the kernel
had it in FIN_WAIT2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capdissect.demo.kernel import Snapshot
from capdissect.demo.netns import Namespace, namespace_problem
from capdissect.demo.oracle import compare_capture

ROOT = Path(__file__).resolve().parents[2]
PORT = 30002
ATTEMPTS = 3  # a run that looked too late (after a retransmission) is tried again

# Run inside the namespace: capture, drive the sockets, snapshot ss at each step.
DRIVER = """
import json, socket, sys, time
from pathlib import Path
from capdissect.demo.kernel import take_snapshot
from capdissect.demo.tcpdump import TcpdumpCapture

port, out = int(sys.argv[1]), Path(sys.argv[2])
snapshots = []

def step(label):
    snapshots.append(take_snapshot(label, [port]).to_json())

with TcpdumpCapture(out, f"tcp port {port}") as cap:
    srv = socket.socket()
    srv.bind(("127.0.0.1", port))
    srv.listen()
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    server, _ = srv.accept()
    server.settimeout(5)
    client.sendall(b"hello world")
    server.recv(100)
    server.sendall(b"who are you")
    client.recv(100)
    time.sleep(0.05)  # the data's ACKs first
    client.shutdown(socket.SHUT_WR)
    time.sleep(0.05)  # well inside the 0.2 s before the FIN is sent again
    step("the client's first FIN lost")
    if server.recv(100) != b"":
        sys.exit("the server did not read end of file")
    time.sleep(0.1)  # past the server's delayed ACK of the FIN
    step("the FIN sent again arrived")
    server.close()
    time.sleep(0.05)
    step("the server's first FIN lost")
    if client.recv(100) != b"":
        sys.exit("the client did not read end of file")
    step("the server's FIN sent again arrived")
    client.close()
    srv.close()
    time.sleep(0.05)
    step("both closed")
    cap.stop(13)
print(json.dumps(snapshots))
"""


def run_once(out: Path) -> list[Snapshot]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    with Namespace("fin") as ns:
        done = subprocess.run(ns.command([sys.executable, "-c", DRIVER, str(PORT), str(out)]),
                              capture_output=True, text=True, env=env, timeout=60,
                              check=False)
    assert done.returncode == 0, done.stderr
    return [Snapshot.from_json(s) for s in json.loads(done.stdout)]


@pytest.mark.skipif(namespace_problem() is not None, reason=str(namespace_problem()))
def test_lost_fins_take_effect_when_sent_again(tmp_path: Path) -> None:
    out = tmp_path / "lost-fin.pcap"  # .pcap: Debian's AppArmor profile for tcpdump
    seen = []
    for _ in range(ATTEMPTS):
        snapshots = run_once(out)
        # The kernel had each receiver wait for the copy sent again, unless this run was
        # too slow to look before the retransmission (a loaded machine): then again.
        seen = [{row.state for row in s.rows() if row.state != "LISTEN"} for s in snapshots]
        if len(seen) == 5 and seen[0] == {"FIN_WAIT1", "ESTABLISHED"} and seen[2] == {
                "FIN_WAIT2", "LAST_ACK"}:
            break
    else:
        pytest.fail(f"ss never saw the lost FINs waiting: {seen}")
    for comparison in compare_capture(out, snapshots):
        assert not comparison.unexplained, (out, comparison)
