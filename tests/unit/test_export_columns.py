"""The export's columns: the short ways (array.array for unsigned integers, one value
repeated) give what pyarrow's own conversion gives, nulls, limits and errors included."""

from __future__ import annotations

import pytest

pa = pytest.importorskip("pyarrow")

from capdissect.export.schema import _array, arrow_schema, record_batch  # noqa: E402

CASES = [
    (pa.uint8(), (0, 1, 255, 7)),
    (pa.uint16(), (0, 65535, 443, 80)),
    (pa.uint32(), (0, 2**32 - 1, 12345, 1)),
    (pa.uint32(), (1, None, 3)),  # a null: pyarrow's way
    (pa.uint16(), (None, 5, 5)),
    (pa.uint32(), (5, 5, 5)),  # one value: repeated
    (pa.uint32(), (None, None)),
    (pa.string(), ("a.pcap", "a.pcap", "a.pcap")),
    (pa.string(), ("S.", "P.", "S.")),
    (pa.string(), ("x", None, "x")),
    (pa.float64(), (1.5, 1.5)),
    (pa.float64(), (1.5, 0.25, 1e300, -0.0)),
    (pa.float64(), (1.5, None, 2.0)),
    (pa.int64(), (0, -1, 2**63 - 1, -(2**63))),
    (pa.int64(), (1, None)),
    (pa.timestamp("ns", tz="UTC"), (1_700_000_000_123_456_789, 0, -5)),
    (pa.timestamp("ns", tz="UTC"), (None, 1)),
    (pa.list_(pa.string()), ([], [], [])),
    (pa.list_(pa.string()), ([],) * 3),  # one empty list throughout: offsets made directly
    (arrow_schema("events").field("analysis").type, ([],) * 2048),  # a batch of no findings
    (pa.list_(pa.string()), (None,) * 4),
    (pa.list_(pa.string()), (["a"], [], ["a"])),
    (pa.bool_(), (True, False, True)),
    (pa.uint8(), ()),
]


@pytest.mark.parametrize(("kind", "column"), CASES, ids=lambda x: str(x)[:30])
def test_a_column_is_what_pyarrow_makes_of_it(kind: object, column: tuple[object, ...]) -> None:
    made = _array(column, kind)
    expected = pa.array(column, type=kind)
    assert made.type == kind
    if pa.types.is_timestamp(kind):  # nanoseconds are not datetimes: compare the numbers
        made, expected = made.cast(pa.int64()), expected.cast(pa.int64())
    assert made.to_pylist() == expected.to_pylist()
    assert made.null_count == expected.null_count
    assert made.equals(expected)
    made.validate(full=True)


@pytest.mark.parametrize(("kind", "column"), [
    (pa.uint8(), (1, 256)),
    (pa.uint16(), (1, -1)),
    (pa.uint32(), (1, 2**32)),
    (pa.uint32(), (1, "2")),
    (pa.int64(), (1, 2**63)),
    (pa.float64(), (1.0, "2")),
])
def test_a_value_pyarrow_refuses_is_refused_the_same_way(kind: object,
                                                         column: tuple[object, ...]) -> None:
    with pytest.raises(Exception) as expected:
        pa.array(column, type=kind)
    with pytest.raises(type(expected.value)):
        _array(column, kind)


def test_a_batch_of_rows_keeps_its_order_and_nulls() -> None:
    names = [field.name for field in arrow_schema("sockets")]
    rows: list[tuple[object, ...]] = [
        ("f", "tcp", "127.0.0.1:1", None, "LISTEN", 1, 0.5, None, None),
        ("f", "tcp", "127.0.0.1:2", "127.0.0.1:1", "ESTABLISHED", 2, 0.75, 9, 1.25)]
    batch = record_batch("sockets", rows)
    assert batch.to_pylist() == [dict(zip(names, row, strict=True)) for row in rows]
