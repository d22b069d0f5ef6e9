"""Lesson scenarios driven with real sockets on loopback.

This layer (with ``capture/``) is the only one allowed to open sockets, run tcpdump or
make network namespaces.  ``traffic`` makes the two basic lessons' traffic;
``scenarios`` runs every lesson scenario, captures it and checks the capture's shape.
"""

from capdissect.demo.errors import DemoUnavailable, ScenarioError
from capdissect.demo.scenarios import (
    SCENARIOS,
    Scenario,
    ScenarioRun,
    free_ports,
    run_scenario,
    verify_capture,
)
from capdissect.demo.traffic import LESSON_CLIENT_DATA, LESSON_SERVER_DATA, tcp_lesson, udp_exchange

__all__ = [
    "LESSON_CLIENT_DATA",
    "LESSON_SERVER_DATA",
    "SCENARIOS",
    "DemoUnavailable",
    "Scenario",
    "ScenarioError",
    "ScenarioRun",
    "free_ports",
    "run_scenario",
    "tcp_lesson",
    "udp_exchange",
    "verify_capture",
]
