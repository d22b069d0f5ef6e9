"""pcapng blocks as bytes, for ``annotate``: a copy of a capture with comments added.

``sources/writer.py`` writes live captures (one interface, streamed with one ``os.write``
per packet).  A copy of a saved capture needs more: several interfaces, each with its
own link type, snap length, name and timestamp resolution, and several comments per
packet (the original's and ours).  These functions only build bytes; the caller writes.

Format: draft-ietf-opsawg-pcapng.  Blocks are written in the machine's byte order (the
byte-order magic tells readers), options are TLVs padded to 4 bytes and closed by
``opt_endofopt``.  Timestamps are written at the interface's own resolution when it is a
power of ten (so a microsecond file stays a microsecond file), else in nanoseconds.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Iterable
from typing import Final

from capdissect.packets import RawPacket
from capdissect.sources.pcapng import Interface

_ORDER: Final = "<" if sys.byteorder == "little" else ">"
SHB: Final = 0x0A0D0D0A
IDB: Final = 0x00000001
EPB: Final = 0x00000006
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
SHB_USERAPPL: Final = 4
IF_NAME: Final = 2
IF_TSRESOL: Final = 9
MAX_OPTION: Final = 0xFFFF  # an option's length field is 16 bits
MAX_LINKTYPE: Final = 0xFFFF  # so is an IDB's link type (a pcap header's is 32)


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(pairs: Iterable[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack(_ORDER + "HH", code, len(value)) + _pad4(value)
                    for code, value in pairs)
    return body + struct.pack(_ORDER + "HH", OPT_ENDOFOPT, 0) if body else b""


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return (struct.pack(_ORDER + "II", block_type, total) + body
            + struct.pack(_ORDER + "I", total))


def _text(value: str) -> bytes:
    """UTF-8, cut to what one option can hold (on a character boundary)."""
    data = value.encode("utf-8", "replace")
    if len(data) > MAX_OPTION:
        data = data[:MAX_OPTION].decode("utf-8", "ignore").encode("utf-8")
    return data


def section_header(application: str) -> bytes:
    body = struct.pack(_ORDER + "IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)  # length unknown: -1
    return _block(SHB, body + _options([(SHB_USERAPPL, _text(application))]))


def resolution(iface: Interface) -> int:
    """The decimal exponent timestamps are written with: the interface's own, else 9."""
    exponent, units = 0, iface.units_per_sec
    while units > 1 and units % 10 == 0:
        units //= 10
        exponent += 1
    return exponent if units == 1 and 0 < exponent <= 9 else 9


def interface_description(iface: Interface) -> bytes:
    options = []
    if iface.name:
        options.append((IF_NAME, _text(iface.name)))
    options.append((IF_TSRESOL, bytes([resolution(iface)])))
    body = struct.pack(_ORDER + "HHI", iface.linktype, 0, iface.snaplen)
    return _block(IDB, body + _options(options))


def enhanced_packet(pkt: RawPacket, iface_id: int, exponent: int,
                    comments: Iterable[str]) -> bytes:
    """An EPB for *pkt* on interface *iface_id*, with one ``opt_comment`` per comment."""
    ticks = pkt.ts_sec * 10**exponent + pkt.ts_nsec // 10 ** (9 - exponent)
    ticks &= (1 << 64) - 1
    head = struct.pack(_ORDER + "IIIII", iface_id, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(pkt.data), pkt.wire_len)
    options = _options((OPT_COMMENT, _text(c)) for c in comments if c)
    return _block(EPB, head + _pad4(pkt.data) + options)
