"""The scenarios by name: traffic, check, capture filter, ports, and whether it
needs a namespace that drops each side's first FIN or SYN."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from capdissect.demo.netns import Drop
from capdissect.demo.scenarios.drive import (
    HOSTS,
    LESSON_TCP_PORT,
    LESSON_UDP_PORT,
    Ports,
    drive_tcp_basic,
    drive_tcp_half_close,
    drive_tcp_refused,
    drive_tcp_reset,
    drive_tcp_server_closes_first,
    drive_tcp_simultaneous_close,
    drive_tcp_simultaneous_open,
    drive_udp_basic,
    drive_udp_connected,
    drive_udp_unreachable,
)
from capdissect.demo.scenarios.verify import (
    Wire,
    verify_tcp_basic,
    verify_tcp_half_close,
    verify_tcp_refused,
    verify_tcp_reset,
    verify_tcp_server_closes_first,
    verify_tcp_simultaneous_close,
    verify_tcp_simultaneous_open,
    verify_udp_basic,
    verify_udp_connected,
    verify_udp_unreachable,
)
from capdissect.demo.steps import Steps
from capdissect.demo.traffic import (
    loopback_family,
)
from capdissect.errors import ScenarioError


# ----- the registry ----------------------------------------------------------------------
def _tcp_filter(ports: Ports) -> str:
    return f"tcp port {ports[0]}"


def _udp_filter(index: int) -> Callable[[Ports], str]:
    """UDP to or from one port, and the ICMP/ICMPv6 port unreachable quoting it (the
    quoted destination port: ICMP header 8 + quoted IPv4 header 20 + 2; ICMPv6 8 + 40 + 2)."""
    def bpf(ports: Ports) -> str:
        port = ports[index]
        return (f"udp port {port}"
                f" or (icmp[icmptype] == icmp-unreach and icmp[30:2] == {port})"
                f" or (icmp6[icmp6type] == icmp6-destinationunreach and icmp6[50:2] == {port})")
    return bpf


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    summary: str
    drive: Callable[[str, Ports, float, Steps], None]  # host, ports, timeout, steps
    verify: Callable[[Sequence[Wire], Ports], str]
    bpf: Callable[[Ports], str]
    ports: Ports  # the lesson's ports; tests pass free ones (free_ports)
    transport: int  # socket.SOCK_STREAM or SOCK_DGRAM, for free_ports
    min_packets: int  # the capture is not over before it holds this many
    drop: Drop | None = None  # run in a namespace that drops each side's first FIN/SYN


SCENARIO_LIST: Final = (
    Scenario("tcp-basic", "the lesson: who are you / hello world, the client closes first",
             drive_tcp_basic, verify_tcp_basic, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 10),
    Scenario("tcp-server-closes-first", "the lesson, but the server closes first",
             drive_tcp_server_closes_first, verify_tcp_server_closes_first, _tcp_filter,
             (LESSON_TCP_PORT,), socket.SOCK_STREAM, 10),
    Scenario("tcp-half-close", "shutdown(SHUT_WR) by the client; the server still answers",
             drive_tcp_half_close, verify_tcp_half_close, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 10),
    Scenario("tcp-reset", "SO_LINGER {1, 0} then close(): RST instead of FIN",
             drive_tcp_reset, verify_tcp_reset, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 7),
    Scenario("tcp-refused", "connect() to a port nothing listens on: SYN answered by RST",
             drive_tcp_refused, verify_tcp_refused, _tcp_filter, (LESSON_TCP_PORT,),
             socket.SOCK_STREAM, 2),
    Scenario("tcp-simultaneous-close", "both sides close at once: the FINs cross",
             drive_tcp_simultaneous_close, verify_tcp_simultaneous_close, _tcp_filter,
             (LESSON_TCP_PORT,), socket.SOCK_STREAM, 13, drop="fin"),
    Scenario("tcp-simultaneous-open", "two bound sockets connect() to each other: the SYNs "
             "cross", drive_tcp_simultaneous_open, verify_tcp_simultaneous_open, _tcp_filter,
             (LESSON_TCP_PORT, LESSON_TCP_PORT + 1), socket.SOCK_STREAM, 10, drop="syn"),
    Scenario("udp-basic", "sendto/recvfrom: a request and its reply",
             drive_udp_basic, verify_udp_basic, _udp_filter(0), (LESSON_UDP_PORT,),
             socket.SOCK_DGRAM, 2),
    Scenario("udp-connected", "a connected UDP socket ignores a third party, whose datagram "
             "is answered by ICMP port unreachable", drive_udp_connected,
             verify_udp_connected, _udp_filter(1), (LESSON_UDP_PORT, LESSON_UDP_PORT + 1),
             socket.SOCK_DGRAM, 4),
    Scenario("udp-unreachable", "UDP to a port nothing is bound to: ICMP port unreachable",
             drive_udp_unreachable, verify_udp_unreachable, _udp_filter(0),
             (LESSON_UDP_PORT,), socket.SOCK_DGRAM, 2),
)

SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType(
    {s.name: s for s in SCENARIO_LIST})


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise ScenarioError(name, f"no such scenario (known: {known})") from None


def free_ports(name: str, family: int) -> Ports:
    """Ports the kernel calls free right now, as many as the scenario uses.

    A scenario in its own namespace keeps the lesson's ports: nothing else lives there.
    The sockets are held together while probing, so the ports are distinct.
    """
    scenario = get_scenario(name)
    if scenario.drop is not None:
        return scenario.ports
    host = HOSTS[family]
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket(loopback_family(host), scenario.transport))
                  for _ in scenario.ports]
        for probe in probes:
            probe.bind((host, 0))
        return tuple(int(p.getsockname()[1]) for p in probes)
