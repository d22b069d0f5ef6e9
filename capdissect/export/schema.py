"""The Parquet schema of the export, version ``SCHEMA_VERSION`` (docs/export-schema.md).

Each column is (name, Arrow type, where the value comes from).  The third item names the
field of ``read --json`` / ``flows --json`` / ``timeline --json`` the column holds, as a
dotted path; tests/e2e/test_export.py compares every column with those outputs through it.
Types are the smallest that hold the field (ports uint16, TTL uint8), timestamps are
nanosecond integers where the capture has them, and text that repeats (addresses,
flags, states, file names) is dictionary-encoded.  Raise the version on any change that
would break a query written against the old one (a column renamed, removed or retyped).
"""

from __future__ import annotations

import array
import functools
from typing import Final, cast

import pyarrow as pa

SCHEMA_VERSION: Final = 1

Column = tuple[str, pa.DataType, str]

_LIST_STR: Final = pa.list_(pa.string())
_FINDINGS: Final = pa.list_(pa.struct([("name", pa.string()), ("why", pa.string())]))

PACKET_COLUMNS: Final[tuple[Column, ...]] = (
    ("file", pa.string(), "the capture file"),
    ("frame", pa.uint32(), "frame"),
    ("ts", pa.timestamp("ns", tz="UTC"), "ts (exact, in nanoseconds)"),
    ("ts_sec", pa.int64(), "ts_sec"),
    ("ts_nsec", pa.uint32(), "ts_nsec"),
    ("captured_len", pa.uint32(), "captured_len"),
    ("wire_len", pa.uint32(), "wire_len"),
    ("interface", pa.uint32(), "interface"),
    ("link_type", pa.string(), "link.type"),
    ("ip_version", pa.uint8(), "ip.version"),
    ("ip_src", pa.string(), "ip.src"),
    ("ip_dst", pa.string(), "ip.dst"),
    ("ip_proto", pa.uint8(), "ip.proto (IPv4)"),
    ("ip_next_header", pa.uint8(), "ip.next_header (IPv6)"),
    ("ip_ttl", pa.uint8(), "ip.ttl (IPv4), ip.hop_limit (IPv6)"),
    ("ip_id", pa.uint16(), "ip.id (IPv4)"),
    ("transport", pa.string(), "which of tcp, udp, icmp, icmp6 is present"),
    ("src_port", pa.uint16(), "tcp.src_port, udp.src_port"),
    ("dst_port", pa.uint16(), "tcp.dst_port, udp.dst_port"),
    ("tcp_seq", pa.uint32(), "tcp.seq"),
    ("tcp_ack", pa.uint32(), "tcp.ack"),
    ("tcp_flags", pa.string(), "tcp.flags"),
    ("tcp_window", pa.uint16(), "tcp.window"),
    ("tcp_hdr_len", pa.uint8(), "tcp.hdr_len"),
    ("udp_len", pa.uint16(), "udp.len"),
    ("icmp_type", pa.uint8(), "icmp.type, icmp6.type"),
    ("icmp_code", pa.uint8(), "icmp.code, icmp6.code"),
    ("payload_len", pa.uint32(), "payload_len"),
    ("fragment", pa.bool_(), "fragment"),
    ("partial", pa.bool_(), "partial"),
    ("error", pa.string(), "error.message"),
)

FLOW_COLUMNS: Final[tuple[Column, ...]] = (
    ("file", pa.string(), "the capture file"),
    ("id", pa.uint32(), "id"),
    ("proto", pa.string(), "tcp or udp: the array the flow is in"),
    ("client", pa.string(), "client (TCP), a (UDP)"),
    ("server", pa.string(), "server (TCP), b (UDP)"),
    ("open", pa.string(), "open"),
    ("close", pa.string(), "close"),
    ("closer", pa.string(), "closer"),
    ("packets", pa.uint64(), "packets (TCP), datagrams (UDP)"),
    ("payload_client", pa.uint64(), "payload.client"),
    ("payload_server", pa.uint64(), "payload.server"),
    ("final_client", pa.string(), "final.client"),
    ("final_server", pa.string(), "final.server"),
    ("path_client", _LIST_STR, "path.client"),
    ("path_server", _LIST_STR, "path.server"),
    ("conn_state", pa.string(), "conn_state"),
    ("history", pa.string(), "history"),
    ("completeness", pa.uint8(), "completeness"),
    ("analysis", pa.map_(pa.string(), pa.uint64()), "analysis"),
    ("anomalies", _LIST_STR, "anomalies (absent in JSON when empty)"),
    ("hints", _LIST_STR, "hints (absent in JSON when empty)"),
    ("udp_payload", pa.uint64(), "payload (UDP)"),
    ("icmp_unreachable", pa.uint64(), "icmp_unreachable (UDP)"),
    ("start", pa.float64(), "start"),
    ("duration", pa.float64(), "duration"),
    ("extra", pa.string(), "any other keys, as a JSON object (null: none)"),
)

EVENT_COLUMNS: Final[tuple[Column, ...]] = (
    ("file", pa.string(), "the capture file"),
    ("flow_id", pa.uint32(), "the flow's id"),
    ("proto", pa.string(), "tcp or udp"),
    ("index", pa.uint32(), "position in the flow's events array"),
    ("frame", pa.uint32(), "frame"),
    ("ts", pa.float64(), "ts"),
    ("sender", pa.string(), "from"),
    ("flags", pa.string(), "flags"),
    ("seq", pa.uint32(), "seq (relative)"),
    ("ack", pa.uint32(), "ack (relative)"),
    ("len", pa.uint32(), "len"),
    ("phase", pa.string(), "phase"),
    ("label", pa.string(), "label"),
    ("state_client", pa.string(), "states.client"),
    ("state_server", pa.string(), "states.server"),
    ("analysis", _FINDINGS, "analysis"),
    ("through_client", _LIST_STR, "through.client (absent in JSON: null)"),
    ("through_server", _LIST_STR, "through.server (absent in JSON: null)"),
    ("icmp", pa.string(), "icmp (UDP: an ICMP error)"),
    ("answers_frame", pa.uint32(), "answers_frame"),
    ("extra", pa.string(), "any other keys, as a JSON object (null: none)"),
)

SOCKET_COLUMNS: Final[tuple[Column, ...]] = (
    ("file", pa.string(), "the capture file"),
    ("proto", pa.string(), "Proto (tcp, tcp6, udp, udp6)"),
    ("local_address", pa.string(), "Local Address"),
    ("foreign_address", pa.string(), "Foreign Address (null: *, a listener or unconnected UDP)"),
    ("state", pa.string(), "State, netstat's spelling (empty for UDP)"),
    ("since_frame", pa.uint32(), "the frame that put the socket in this state"),
    ("since_ts", pa.float64(), "its time"),
    ("until_frame", pa.uint32(), "the frame that changed or removed it (null: the end)"),
    ("until_ts", pa.float64(), "its time"),
)

FILE_COLUMNS: Final[tuple[Column, ...]] = (
    ("file", pa.string(), "the capture file as given"),
    ("partition", pa.string(), "the partition its rows are in"),
    ("position", pa.uint32(), "its place in a --continuous group (0 otherwise)"),
    ("format", pa.string(), "pcap or pcapng (null: not a capture)"),
    ("size", pa.uint64(), "bytes"),
    ("packets", pa.uint64(), "packets read (all of them, or those before the damage)"),
    ("first_frame", pa.uint32(), "its first frame in the partition"),
    ("error", pa.string(), "why it was not read to its end (null: it was)"),
    ("schema_version", pa.uint16(), "SCHEMA_VERSION"),
    ("capdissect", pa.string(), "capdissect's version"),
)

TABLES: Final[dict[str, tuple[Column, ...]]] = {
    "packets": PACKET_COLUMNS,
    "flows": FLOW_COLUMNS,
    "events": EVENT_COLUMNS,
    "sockets": SOCKET_COLUMNS,
    "files": FILE_COLUMNS,
}
DATA_TABLES: Final = ("packets", "flows", "events", "sockets")


def arrow_schema(table: str) -> pa.Schema:
    metadata = {"capdissect.schema_version": str(SCHEMA_VERSION), "capdissect.table": table}
    return pa.schema([(name, kind) for name, kind, _ in TABLES[table]], metadata=metadata)


def record_batch(table: str, rows: list[tuple[object, ...]]) -> pa.RecordBatch:
    """*rows* (tuples in column order) as one Arrow batch of *table*'s schema."""
    schema = arrow_schema(table)
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.RecordBatch.from_arrays(
        [_array(column, field.type) for column, field in zip(columns, schema, strict=True)],
        schema=schema)


# The export's Arrow memory comes from the C library's malloc.  pyarrow's default pool,
# mimalloc, gave pages back to the system between batches and faulted them in again:
# 4.6% of an export's perf samples were the kernel zeroing new pages, 1% with malloc.
MEMORY: Final = pa.system_memory_pool()

# Number columns go through array.array, which converts a value in about 7 ns where
# pyarrow takes 20; a column with a null (or a value out of range) cannot, and takes
# pyarrow's way, which says what is wrong with it.
_PACKED: Final = {pa.uint8(): "B", pa.uint16(): "H", pa.uint32(): "I", pa.int64(): "q",
                  pa.timestamp("ns", tz="UTC"): "q", pa.float64(): "d"}
assert all(array.array(code).itemsize == kind.bit_width // 8 for kind, code in _PACKED.items())


@functools.cache
def _empty(kind: pa.DataType) -> pa.Array:
    return pa.array([], type=kind)


def _array(column: tuple[object, ...], kind: pa.DataType) -> pa.Array:
    """One column's values as an Arrow array of type *kind*."""
    if column and column[0] is column[-1] and column.count(column[0]) == len(column):
        # One value throughout: the file of every row, a column null for this traffic,
        # the empty findings of segments without any.
        value = column[0]
        if value == [] and pa.types.is_list(kind):
            # Arrow repeats a list by concatenating it: 1.1 ms for 2,048 empty lists,
            # more than half a microsecond an event row; their offsets are all zero.
            offsets = pa.py_buffer(bytes(4 * (len(column) + 1)))
            return pa.Array.from_buffers(kind, len(column), [None, offsets],
                                         children=[_empty(kind.value_type)])
        return pa.repeat(pa.scalar(value, type=kind), len(column), memory_pool=MEMORY)
    code = _PACKED.get(kind)
    if code is not None:
        try:
            # numbers, or TypeError says they are not
            packed = array.array(code, cast("tuple[float, ...]", column))
        except (TypeError, OverflowError):
            pass
        else:
            return pa.Array.from_buffers(kind, len(packed), [None, pa.py_buffer(packed)])
    return pa.array(column, type=kind, memory_pool=MEMORY)
