"""TCP (RFC 9293 §3.1): the fixed header, flags and options."""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from capdissect.dissect.tcp_options import Options, parse_options
from capdissect.errors import Truncated

_new_tuple: Final = tuple.__new__  # a NamedTuple, built faster (capdissect/packets.py)

_TCP: Final = struct.Struct("!HHIIHHHH")  # RFC 9293 §3.1

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20
ECE: Final = 0x40
CWR: Final = 0x80
AE: Final = 0x100  # RFC 9768 (was NS, RFC 3540)

# tcpdump's letters for the eight classic flags, by the flags byte ("S.", "P.", "none"),
# spelt once: the printers, the JSON, the export and the tracker's events index it.
FLAG_STRINGS: Final = tuple(
    "".join(letter for bit, letter in ((FIN, "F"), (SYN, "S"), (RST, "R"), (PSH, "P"),
                                       (ACK, "."), (URG, "U"), (ECE, "E"), (CWR, "W"))
            if flags & bit) or "none"
    for flags in range(256)
)

NO_OPTIONS: Final = Options((), None)


class TcpHeader(NamedTuple):
    offset: int
    src_port: int
    dst_port: int
    seq: int
    ack: int
    hdr_len: int  # data offset in bytes
    flags: int  # the 12 low bits of the offset/flags word (AE, CWR ... FIN)
    window: int
    checksum: int
    urgent: int
    options: Options

    @property
    def payload_offset(self) -> int:
        return self.offset + self.hdr_len


def parse_tcp(buf: bytes, offset: int, end: int | None = None,
              with_options: bool = True) -> TcpHeader:
    """Decode the TCP header at *offset*; raise Truncated if the fixed 20 bytes are not there.

    *end* is where the captured data ends (default: the end of *buf*).  A caller that
    reads the option bytes itself (the tcpdump printer) passes ``with_options=False``
    and gets NO_OPTIONS.
    """
    caplen = len(buf) if end is None else end
    if caplen - offset < 20:
        raise Truncated("tcp", offset, 20, caplen - offset)
    sport, dport, seq, ack, off_flags, win, cksum, urg = _TCP.unpack_from(buf, offset)
    hdr_len = (off_flags >> 12) * 4
    options = (
        parse_options(buf, offset + 20, offset + hdr_len, caplen)
        if hdr_len > 20 and with_options
        else NO_OPTIONS
    )
    return _new_tuple(TcpHeader, (offset, sport, dport, seq, ack, hdr_len, off_flags & 0x1FF,
                                  win, cksum, urg, options))
