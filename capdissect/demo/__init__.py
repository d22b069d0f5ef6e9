"""Lesson scenarios driven with real sockets on loopback.

This layer (with ``sources/``) is the only one allowed to open sockets, run tcpdump or
make network namespaces.  ``traffic`` makes the two basic lessons' traffic;
``scenarios`` runs every lesson scenario, captures it and checks the capture's shape;
``kernel`` records ``ss -tanu`` at each of a scenario's ``steps`` and ``oracle`` compares
those tables with capdissect's reconstruction.
"""

from capdissect.demo.kernel import Snapshot
from capdissect.demo.oracle import EXCEPTIONS, Comparison, compare_capture
from capdissect.demo.scenarios import (
    SCENARIOS,
    Scenario,
    ScenarioRun,
    free_ports,
    run_scenario,
    verify_capture,
)
from capdissect.demo.steps import NO_STEPS, Steps
from capdissect.demo.traffic import LESSON_CLIENT_DATA, LESSON_SERVER_DATA, tcp_lesson, udp_exchange
from capdissect.errors import DemoUnavailable, ScenarioError

__all__ = [
    "EXCEPTIONS",
    "LESSON_CLIENT_DATA",
    "LESSON_SERVER_DATA",
    "NO_STEPS",
    "SCENARIOS",
    "Comparison",
    "DemoUnavailable",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "Snapshot",
    "Steps",
    "compare_capture",
    "free_ports",
    "run_scenario",
    "tcp_lesson",
    "udp_exchange",
    "verify_capture",
]
