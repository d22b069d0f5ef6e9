"""Host and port names as tcpdump prints them without -n, from local files only.

The lessons show ``localhost.30002``; a DNS query would make output depend on the
network and hang offline, so names come only from /etc/hosts and /etc/services.
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path


def _hosts(path: Path) -> dict[bytes, str]:
    table: dict[bytes, str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return table
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                packed = socket.inet_pton(family, fields[0])
            except OSError:
                continue
            table.setdefault(packed, fields[1])  # the first name given for an address
    return table


def _services(path: Path) -> dict[tuple[str, int], str]:
    table: dict[tuple[str, int], str] = {}
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return table
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2 or "/" not in fields[1]:
            continue
        port, _, proto = fields[1].partition("/")
        if port.isdigit():
            table.setdefault((proto, int(port)), fields[0])
    return table


class Names:
    """Address and port names; numeric when *numeric* (tcpdump's -n)."""

    def __init__(
        self,
        numeric: bool,
        hosts: Path = Path("/etc/hosts"),
        services: Path = Path("/etc/services"),
    ) -> None:
        self.numeric = numeric
        self._hosts = {} if numeric else _hosts(hosts)
        self._services = {} if numeric else _services(services)
        self.ip = lru_cache(maxsize=65536)(self._ip)
        self.tcp_port = lru_cache(maxsize=65536)(self._tcp_port)
        self.udp_port = lru_cache(maxsize=65536)(self._udp_port)

    def _ip(self, packed: bytes) -> str:
        name = self._hosts.get(packed)
        if name is not None:
            return name
        return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed)

    def _tcp_port(self, port: int) -> str:
        return self._services.get(("tcp", port)) or str(port)

    def _udp_port(self, port: int) -> str:
        return self._services.get(("udp", port)) or str(port)
