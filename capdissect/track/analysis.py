"""TCP analysis with Wireshark's rules and names (packet-tcp.c, tcp_analyze_sequence_number).

``TcpAnalyzer.segment`` looks at one segment in the context of its connection and
returns the findings Wireshark would flag on it, each with the numbers that met the
rule (SPEC §4): retransmission, fast_retransmission, spurious_retransmission,
out_of_order, lost_segment, ack_lost_segment, duplicate_ack, zero_window,
zero_window_probe, window_update, window_full, keep_alive, reused_ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from capdissect.dissect.tcp import TcpHeader
    from capdissect.track.tcp import Endpoint, Finding, TcpConnection


class TcpAnalyzer:
    """Keeps, per connection and direction, what Wireshark's analysis remembers."""

    def segment(self, conn: TcpConnection, sender: Endpoint, receiver: Endpoint,
                seg: TcpHeader, length: int, ts: float) -> tuple[Finding, ...]:
        """The findings for *seg*, sent by *sender*, before the tracker updates state."""
        return ()
