"""How the Python API's objects show themselves: one line of text, and HTML for Jupyter.

Pure: records in, strings out.  Every string that came from a capture, or from
formatting one, goes through ``html.escape`` (``_e``), so a capture cannot inject
markup or script into a notebook.  The pictures are the handout's own SVG (a ladder
with state boxes; RFC 9293's diagram with each endpoint's path drawn over it).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from capdissect.addresses import endpoint
from capdissect.report.annotate import ANNOTATION_PREFIX
from capdissect.report.json.packet import JsonObject
from capdissect.tracking.stream import Finished
from capdissect.tracking.tcp import TcpConnection

PRE_STYLE: Final = "font-family: monospace; white-space: pre; line-height: 1.3"


def _e(text: object) -> str:
    return html.escape(str(text))


def packet_text(line: str, notes: Sequence[str]) -> str:
    """A packet as ``capdissect read`` prints it: tcpdump's text, then the annotations."""
    return line + "".join(f"\n{ANNOTATION_PREFIX}{note}" for note in notes)


def _flat(obj: Mapping[str, object], prefix: str = "") -> Iterable[tuple[str, object]]:
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flat(value, name + ".")
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            for i, item in enumerate(value):
                yield from _flat(item, f"{name}[{i}].")
        else:
            yield name, value


def packet_html(line: str, notes: Sequence[str], fields: JsonObject) -> str:
    """The packet's text, and a table of every decoded field (``read --json``'s)."""
    rows = "".join(f"<tr><th style='text-align:left'>{_e(name)}</th><td>{_e(value)}</td></tr>"
                   for name, value in _flat(fields) if value not in (None, [], ""))
    return (f"<div style='{PRE_STYLE}'>{_e(packet_text(line, notes))}</div>"
            f"<details><summary>fields of frame {_e(fields.get('frame'))}</summary>"
            f"<table>{rows}</table></details>")


def flow_summary(item: Finished) -> str:
    """One line: who talked to whom, how it opened and closed, the final states."""
    flow = item.flow
    if isinstance(flow, TcpConnection):
        c, s = flow.client, flow.server
        closed = f"close {flow.close}" + (f" by the {flow.closer}" if flow.closer else "")
        final = "/".join(getattr(e.state, "value", "-") for e in (c, s))
        return (f"TCP connection {flow.id}: {endpoint((c.addr, c.port))} -> "
                f"{endpoint((s.addr, s.port))}, open {flow.open}, {closed}, "
                f"{flow.packets} packets, final {final}")
    a_to_b, b_to_a = item.udp_payload
    refused = f", {flow.icmp_unreachable} ICMP unreachable" if flow.icmp_unreachable else ""
    return (f"UDP conversation {flow.id}: {endpoint(flow.a)} <-> {endpoint(flow.b)}, "
            f"{flow.datagrams} datagrams, {a_to_b}+{b_to_a} bytes{refused}")


def path_lines(item: Finished) -> list[str]:
    """Each TCP endpoint's path through the states (none for UDP)."""
    flow = item.flow
    if not isinstance(flow, TcpConnection):
        return []
    return [f"{role} {endpoint((ep.addr, ep.port))}: "
            f"{' -> '.join(state.value for state in ep.path) or '(no state seen)'}"
            for role, ep in (("client", flow.client), ("server", flow.server))]


def flow_html(item: Finished, first_ts: float, *, ids: str = "", diagram: bool = True) -> str:
    """The summary, the SVG ladder with its state boxes, the paths and (*diagram*) RFC
    9293's figure with both paths drawn on it.  *ids* keeps SVG ids unique in a page."""
    # Imported here: the handout package is a tenth of the CLI's start-up, and only a
    # notebook draws ladders from the API.
    from capdissect.report.handout.svg import (
        CLIENT_COLOUR,
        SERVER_COLOUR,
        state_diagram,
        tcp_ladder,
        udp_ladder,
    )

    flow = item.flow
    items = tuple(item.events)
    parts = [f"<p><b>{_e(flow_summary(item))}</b></p>"]
    if isinstance(flow, TcpConnection):
        parts.append(tcp_ladder(flow, items, first_ts, ids=ids, links=False).svg)
        parts += [f"<div style='{PRE_STYLE}'>{_e(line)}</div>" for line in path_lines(item)]
        if diagram:
            paths = [(f"client: {' -> '.join(x.value for x in flow.client.path)}",
                      flow.client.path, CLIENT_COLOUR),
                     (f"server: {' -> '.join(x.value for x in flow.server.path)}",
                      flow.server.path, SERVER_COLOUR)]
            parts.append(f"<details><summary>the path on RFC 9293's state diagram</summary>"
                         f"{state_diagram(paths).svg}</details>")
    else:
        parts.append(udp_ladder(flow, items, first_ts, ids=ids, links=False).svg)
    return "<div class='capdissect-flow'>" + "".join(parts) + "</div>"


def table_html(headers: Sequence[str], rows: Iterable[Sequence[object]],
               notes: Iterable[str] = ()) -> str:
    """A plain HTML table, then a paragraph per note."""
    head = "".join(f"<th>{_e(name)}</th>" for name in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return (f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + "".join(f"<p>{_e(note)}</p>" for note in notes))


def pre_html(text: str) -> str:
    return f"<pre>{_e(text)}</pre>"
