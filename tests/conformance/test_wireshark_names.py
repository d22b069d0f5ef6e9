"""The Wireshark display-filter names capdissect puts beside each field (issue #18),
checked against Wireshark's own dissection through pyshark (the ``[wireshark]`` extra;
tests only, never at run time).

``read --json`` names each field of each layer (its "wireshark" object): every name must
be a field Wireshark shows for the packet, with the same value where the value is a
number or an address.  For every packet of every lesson capture and every field the
handout marks with a Wireshark name, pyshark (tshark's PDML) must have a field of that
name at exactly those bytes, and where the field is whole bytes its raw value must be
those bytes.  The filter the handout suggests for each packet must select it in tshark.
Every capture is closed, so no tshark process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from capdissect.report.handout.lesson import build_lesson
from tests.support.handoutwire import decoded_packets

T = TypeVar("T")
pyshark = pytest.importorskip("pyshark", reason="pip install '.[wireshark]'")
ROOT: Final = Path(__file__).resolve().parents[2]
CAPTURES: Final = sorted((ROOT / "captures").glob("*.pcap"))
pytestmark = [pytest.mark.tshark,
              pytest.mark.skipif(shutil.which("tshark") is None, reason="no tshark")]


@pytest.fixture(autouse=True, scope="module")
def _child_watcher_detached() -> Iterator[None]:
    """pyshark attaches asyncio's SafeChildWatcher to the main thread's event loop: a
    SIGCHLD handler that writes to the loop's wakeup socket.  Left there, the loop never
    runs again, the later tests' child processes fill that socket as they end, and each
    exit after that warns ("Exception ignored ... BlockingIOError" from asyncio's
    ``_sighandler_noop``): 1,113 warnings in make test.  Detached after this module."""
    yield
    asyncio.get_child_watcher().close()  # removes the handler and the wakeup fd
    asyncio.set_child_watcher(asyncio.ThreadedChildWatcher())  # Python 3.11's default


def dissected(path: Path, per_packet: Callable[[Any], T]) -> list[T]:
    """*per_packet* of each packet Wireshark dissects in *path*.  pyshark on this
    Python (3.11.7) now and then fails in its PDML parsing, with CPython's own "AST
    constructor recursion depth mismatch" SystemError, which it may report as a tshark
    crash (about once in 30 files; the same file passes on the next run): such a run is
    tried again, at most 3 times."""
    for attempt in range(3):
        capture = pyshark.FileCapture(str(path), keep_packets=False)
        try:
            result = [per_packet(packet) for packet in capture]
            capture.close()  # where the tshark "crash" is raised, if at all
            return result
        except (pyshark.capture.capture.TSharkCrashException, SystemError):
            if attempt == 2:
                raise
            with contextlib.suppress(Exception):
                capture.close()  # stops tshark if it still runs
    raise AssertionError("unreachable")


def wireshark_fields(path: Path) -> list[dict[str, list[tuple[int, int, str]]]]:
    """Per packet: field name -> every (pos, size, raw value) Wireshark shows for it."""
    def fields_of(packet: Any) -> dict[str, list[tuple[int, int, str]]]:
        fields: dict[str, list[tuple[int, int, str]]] = {}
        for layer in packet.layers:
            for field in layer._get_all_fields_with_alternates():
                if field.pos is not None and field.size is not None:
                    fields.setdefault(field.name, []).append(
                        (int(field.pos), int(field.size), field.raw_value or ""))
        return fields

    return dissected(path, fields_of)


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_names_and_values_agree_with_wireshark(path: Path) -> None:
    lesson = build_lesson(decoded_packets(path), path.name)
    theirs = wireshark_fields(path)
    checked = 0
    for view in lesson.packets:
        fields = theirs[view.frame - 1]
        for span in view.spans:
            if not span.wireshark:
                continue
            size = span.end - span.start
            found = fields.get(span.wireshark, [])
            assert any(pos == span.start and got == size for pos, got, _ in found), (
                path.name, view.frame, span, found)
            raw = view.data[span.start : span.end].hex()
            for pos, got, value in found:
                if pos == span.start and got == size and len(value) == 2 * size:
                    assert value == raw, (view.frame, span, value)
            checked += 1
    assert checked >= 8 * len(lesson.packets)
    mine = subprocess.run(["pgrep", "-P", str(os.getpid()), "tshark"], capture_output=True,
                          text=True, check=False).stdout
    assert mine == "", "a tshark process was left behind"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_suggested_filter_selects_the_packet(path: Path) -> None:
    lesson = build_lesson(decoded_packets(path), path.name)
    for view in lesson.packets:
        assert view.filter
        done = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", view.filter, "-T",
                               "fields", "-e", "frame.number"], capture_output=True,
                              text=True, check=True, timeout=60)
        assert str(view.frame) in done.stdout.split(), (view.frame, view.filter)


def first_values(path: Path) -> list[dict[str, str]]:
    """Per packet: field name -> what Wireshark shows for its first (outermost) occurrence."""
    def shown_of(packet: Any) -> dict[str, str]:
        shown: dict[str, str] = {}
        for layer in packet.layers:
            for field in layer._get_all_fields_with_alternates():
                shown.setdefault(field.name, field.show)
        return shown

    return dissected(path, shown_of)


IPV6: Final = [ROOT / "tests/corpus" / name for name in (
    "zeek_chksums_ip6-tcp-bad-chksum.pcap", "zeek_communityid_icmp6.pcap")]


@pytest.mark.parametrize("path", [*CAPTURES, *IPV6], ids=lambda p: p.name)
def test_read_json_names_every_field_as_wireshark(path: Path) -> None:
    """Each layer of ``read --json`` names its fields as Wireshark does; where the value is
    a number or an address, Wireshark shows the same one."""
    import json

    lines = subprocess.run([sys.executable, "-m", "capdissect", "read", "--json", str(path)],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    theirs = first_values(path)
    checked = 0
    for line, shown in zip(lines.splitlines(), theirs, strict=True):
        obj = json.loads(line)
        for key in ("ip", "tcp", "udp", "icmp", "icmp6"):
            layer = obj.get(key)
            if not layer:
                continue
            names = layer["wireshark"]
            assert set(names) <= set(layer) and len(names) >= 3, (key, names)
            for field, name in names.items():
                assert name in shown, (path.name, obj["frame"], field, name)
                ours = layer[field]
                if isinstance(ours, bool) or not isinstance(ours, int | str) or field == "flags":
                    continue
                want = int(shown[name], 0) if isinstance(ours, int) else shown[name]
                assert want == ours, (path.name, obj["frame"], field, name, shown[name])
                checked += 1
    assert checked > 0
