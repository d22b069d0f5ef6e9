"""``capdissect sockets`` as a command: the lesson's netstat sequence, printed by the CLI."""

from __future__ import annotations

import subprocess
import sys

from tests.support.netstat import LESSON_NETSTAT, contains_in_order, snapshots
from tests.unit.test_sockets import TCP_BASIC


def test_lesson_every_prints_the_netstat_sequence_exactly() -> None:
    """Issue must-show 3, on the bundled capture, through the real command line."""
    proc = subprocess.run([sys.executable, "-m", "capdissect", "sockets", str(TCP_BASIC),
                           "--every"], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    got = snapshots(proc.stdout.splitlines())
    assert [states for _, states in got] == [
        ["LISTEN"],
        ["LISTEN", "SYN_SENT"],  # SPEC §4: the server shows it got the SYN by its SYN-ACK
        ["LISTEN", "ESTABLISHED", "SYN_RECV"],
        ["LISTEN", "ESTABLISHED", "ESTABLISHED"],
        ["LISTEN", "FIN_WAIT1", "CLOSE_WAIT"],
        ["LISTEN", "FIN_WAIT2", "CLOSE_WAIT"],
        ["LISTEN", "TIME_WAIT", "LAST_ACK"],
        ["LISTEN", "TIME_WAIT"],
    ]
    assert contains_in_order([s for _, s in got], LESSON_NETSTAT)
    headers = [h for h, _ in got]
    assert headers[0].startswith("before frame 1 (+0.000000 s): the server accepts the SYN")
    assert headers[3].startswith("after frame 3 ") and "SYN_RECV -> ESTABLISHED" in headers[3]
    assert "LAST_ACK -> CLOSE (gone from the table)" in headers[-1]
