"""``flows -j 2`` on a capture whose work is a few connections of unequal size: the survey
plans the big ones, largest first, so the two workers get even shares of the tracking,
and the report is still one process's.

Four real connections on 127.0.0.1 open one after the other before any data, one with
three times the round trips of each of the others.  Dealt only as they open, to whichever
worker had tracked least so far, they alternate: the big one and a small one in one
worker, two thirds of the work.  Planned from the survey, the big one has a worker to
itself.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from capdissect.commands import reports, rounds
from capdissect.dissect.route import UNKNOWN, route, route_decoded
from capdissect.dissect.stack import decode
from capdissect.packets import RawPacket
from capdissect.sources.files import open_capture
from capdissect.tracking.shards import Dealer
from tests.support.livecap import pytest_capture
from tests.support.livecli import free_port

ROUND_TRIPS = (900, 300, 300, 300)  # the first connection's, then the others'
MESSAGE = b"x" * 100


def _serve(listener: socket.socket, count: int) -> None:
    conns = [listener.accept()[0] for _ in range(count)]

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    threads = [threading.Thread(target=echo, args=(c,), daemon=True) for c in conns]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def _talk(path: Path) -> None:
    port = free_port()
    listener = socket.create_server(("127.0.0.1", port))
    listener.settimeout(10)
    with pytest_capture(path, f"tcp port {port}") as cap:
        server = threading.Thread(target=_serve, args=(listener, len(ROUND_TRIPS)),
                                  daemon=True)
        server.start()
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10)
                   for _ in ROUND_TRIPS]
        for client, trips in zip(clients, ROUND_TRIPS, strict=True):
            for _ in range(trips):
                client.sendall(MESSAGE)
                got = 0
                while got < len(MESSAGE):
                    got += len(client.recv(4096))
        for client in clients:
            client.close()
        server.join(timeout=30)
        cap.stop()
    listener.close()


def test_unequal_connections_get_even_shares(tmp_path: Path) -> None:
    path = tmp_path / "unequal.pcap"
    _talk(path)
    raws = list(_raw(path))
    survey = rounds._surveyed(str(path))
    planned = _shares(raws, Dealer(2, plan=survey.plan(2)))
    assert 0.4 < planned[0] / sum(planned) < 0.6, planned
    dealt = _shares(raws, Dealer(2))  # as they opened: two thirds in one worker
    assert max(dealt) / sum(dealt) > 0.6, dealt
    one = "".join(reports.flows(path, "json", jobs=1))
    assert "".join(reports.flows(path, "json", jobs=2)) == one


def _shares(raws: list[RawPacket], dealer: Dealer) -> list[int]:
    """The packets *dealer* gives each shard."""
    shares = [0, 0]
    for raw in raws:
        where = route(raw.data, raw.linktype, raw.wire_len)
        shares[dealer.owner(route_decoded(decode(raw)) if where == UNKNOWN else where)] += 1
    return shares


def _raw(path: Path) -> Iterator[RawPacket]:
    with open_capture(path) as capture:
        yield from capture
