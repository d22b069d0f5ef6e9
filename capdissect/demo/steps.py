"""What a scenario tells an onlooker while it runs: the lesson's steps and its sockets.

A scenario's ``drive`` calls ``steps.step("the server listens")`` at each point where a
lesson would stop and run netstat, and ``steps.watch(sock)`` for a socket the scenario's
port filter would miss (an unconnected client on an ephemeral port).  What happens at a
step is the onlooker's business: ``kernel.SsRecorder`` records ``ss -tanu`` there, and
``NO_STEPS`` does nothing.  The calls are made where the scenario's sockets are quiet
(every segment sent has been processed by its receiver), so a snapshot taken there
lines up with the capture's packets up to that moment.

A step may be called from a scenario's helper thread; onlookers must be thread-safe.
"""

from __future__ import annotations

import socket
from typing import Final, Protocol

# The steps every scenario shares: the one before its first socket (taken by the runner,
# so that sockets older than the scenario can be told apart) and the one after its last.
BASELINE_STEP: Final = "before the lesson"
EXIT_STEP: Final = "after the programs exit"


class Steps(Protocol):
    def step(self, label: str) -> None:
        """The lesson reached *label* (e.g. "the client connected")."""

    def watch(self, sock: socket.socket) -> None:
        """*sock* (bound now) belongs to the scenario although none of its ports is one
        of the scenario's ports."""


class _NoSteps:
    def step(self, label: str) -> None:
        pass

    def watch(self, sock: socket.socket) -> None:
        pass


NO_STEPS: Final[Steps] = _NoSteps()
