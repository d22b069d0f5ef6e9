"""What can go wrong when a lesson scenario runs for real.

Two kinds, because callers treat them differently: the machine cannot run the scenario
at all (no root, tcpdump or nftables missing: the demo falls back to a bundled capture,
a test skips), or it ran and the wire did not show what the lesson promises (an error).
"""

from __future__ import annotations

from capdissect.errors import CapdissectError, CaptureError


class DemoUnavailable(CaptureError):
    """This machine cannot capture the scenario (privilege, a missing tool, no netns)."""


class ScenarioError(CapdissectError):
    """A scenario ran but its sockets or its capture did not behave as the lesson says."""

    def __init__(self, scenario: str, reason: str) -> None:
        self.scenario = scenario
        self.reason = reason
        super().__init__(f"{scenario}: {reason}")


class PortInUse(ScenarioError):
    """The lesson's port is taken on this machine: trying again would not help."""

    def __init__(self, scenario: str, ports: tuple[int, ...]) -> None:
        taken = " or ".join(str(p) for p in ports)
        super().__init__(scenario, f"port {taken} is in use (another program, or an earlier "
                                   f"run's socket); choose a free one with --port "
                                   f"{max(ports) + 100}")
