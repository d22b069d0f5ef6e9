"""The JSON of ``timeline --json`` and ``flows --json`` (SPEC §4), built from tracker records.

Endpoints are written ``127.0.0.1:30002`` and ``[::1]:30002``; states use RFC 9293's
names; ``frame`` is the packet's 1-based position in the file.
"""

from __future__ import annotations

from typing import Any

from capdissect.addresses import endpoint
from capdissect.tracking.tcp import Event, TcpConnection
from capdissect.tracking.udp import UdpConversation

JsonObject = dict[str, Any]



def tcp_json(conn: TcpConnection, events: bool = True) -> JsonObject:
    c, s = conn.client, conn.server
    obj: JsonObject = {
        "id": conn.id,
        "client": endpoint((c.addr, c.port)),
        "server": endpoint((s.addr, s.port)),
        "open": conn.open,
        "close": conn.close,
        "closer": conn.closer,
        "packets": conn.packets,
        "payload": {"client": c.payload, "server": s.payload},
        "final": {"client": _state(c.state), "server": _state(s.state)},
        "path": {"client": [x.value for x in c.path], "server": [x.value for x in s.path]},
        "conn_state": conn.conn_state,
        "history": conn.history,
        "completeness": conn.completeness,
        "analysis": dict(sorted(conn.analysis_counts.items())),
        "start": conn.first_ts,
        "duration": round(conn.last_ts - conn.first_ts, 6),
    }
    if conn.anomalies:
        obj["anomalies"] = list(conn.anomalies)
    hints = conn.hints
    if hints:
        obj["hints"] = hints
    if events:
        obj["events"] = [event_json(e) for e in conn.events]
    return obj


def event_json(e: Event) -> JsonObject:
    obj = _event_json(e)
    # A segment that moved an endpoint more than one step (a FIN sent, then the crossing
    # FIN taken) lists the states it passed on the way, so the events still spell the path.
    through: dict[str, list[str]] = {}
    for index, change in enumerate(e.changes):
        if any(later.role == change.role for later in e.changes[index + 1:]):
            through.setdefault(change.role, []).append(change.after.value)
    if through:
        obj["through"] = through
    return obj


def _event_json(e: Event) -> JsonObject:
    return {
        "frame": e.frame,
        "ts": e.ts,
        "from": e.sender,
        "flags": e.flags,
        "seq": e.seq,
        "ack": e.ack,
        "len": e.length,
        "phase": e.phase,
        "label": e.label,
        "states": {"client": _state(e.states[0]), "server": _state(e.states[1])},
        "analysis": [{"name": f.name, "why": f.why} for f in e.analysis],
    }


def udp_json(conv: UdpConversation, events: bool = True) -> JsonObject:
    obj: JsonObject = {
        "id": conv.id,
        "a": endpoint(conv.a),
        "b": endpoint(conv.b),
        "datagrams": conv.datagrams,
        "payload": conv.payload,
        "icmp_unreachable": conv.icmp_unreachable,
        "conn_state": conv.conn_state,
        "start": conv.first_ts,
        "duration": round(conv.last_ts - conv.first_ts, 6),
    }
    if events:
        obj["events"] = [
            {"frame": d.frame, "ts": d.ts, "from": d.sender, "len": d.length}
            for d in conv.events
        ] + [
            {"frame": u.frame, "ts": u.ts, "icmp": "port unreachable",
             "answers_frame": u.quoted_frame}
            for u in conv.unreachable
        ]
    return obj


def _state(state: object) -> str | None:
    value = getattr(state, "value", None)
    return value if isinstance(value, str) else None
