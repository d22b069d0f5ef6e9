"""``read --json`` as a command: every line strict JSON, ``-c``, the filter, the text options
ignored, a truncated file, a hostile payload (tests/unit/test_packetjson.py checks the
objects themselves).
"""

from __future__ import annotations

import socket
import struct
import subprocess
from pathlib import Path

from capdissect.commands.read import ReadOptions, read_lines
from tests.support.compare import capdissect_command, fixed_env, run
from tests.unit.test_packetjson import CAPTURES, CORPUS, loads, packets


# ----- the command -----------------------------------------------------------------------
def cli(*args: str) -> tuple[int, list[str], str]:
    result = run([*capdissect_command(), "read", *args])
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout.splitlines(), result.stderr


def test_count_gives_that_many_lines() -> None:
    status, lines, _ = cli(str(CAPTURES / "tcp-basic.pcap"), "--json", "-c", "3")
    assert status == 0
    assert [loads(line)["frame"] for line in lines] == [1, 2, 3]


def test_filter_limits_the_lines_as_it_limits_the_text() -> None:
    path = CORPUS / "pcpp_tls.pcap"
    everything = packets(path)
    for expression in ("ip6", "tcp[tcpflags] & tcp-syn != 0", "tcp and port 443",
                       "not ip6"):
        text = list(read_lines(path, ReadOptions(plain=True, n=2, expression=expression)))
        frames = [p["frame"] for p in packets(path, expression)]
        assert len(frames) == len(text) > 0, expression
    v6 = [p["frame"] for p in everything if p["ip"]["version"] == 6]
    assert [p["frame"] for p in packets(path, "ip6")] == v6
    assert [p["frame"] for p in packets(path, "ip6", count=2)] == v6[:2]
    status, lines, _ = cli(str(path), "--json", "-c", "2", "ip6")
    assert status == 0
    assert [loads(line)["frame"] for line in lines] == v6[:2]
    status, lines, _ = cli(str(CAPTURES / "udp-connected.pcap"), "--json", "icmp")
    assert [loads(line)["frame"] for line in lines] == [4]


def test_json_ignores_the_text_options() -> None:
    path = str(CAPTURES / "tcp-basic.pcap")
    _, plain, _ = cli(path, "--json")
    assert len(plain) == 11
    assert cli(path, "--json", "-nn", "-vv", "-XX", "-e", "-S", "-K", "-ttttt", "--plain")[1] \
        == plain


def test_truncated_file_gives_its_whole_packets_then_one_error_line(tmp_path: Path) -> None:
    sample = CORPUS / "lwerdna_simple_http.pcap"
    _, whole, _ = cli(str(sample), "--json")
    raw = sample.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) // 2])
    status, lines, stderr = cli(str(cut), "--json")
    assert status == 1
    errors = [line for line in stderr.splitlines() if line.startswith("capdissect:")]
    assert len(errors) == 1 and "truncated capture file" in errors[0]
    assert 0 < len(lines) < len(whole)
    assert lines == whole[: len(lines)]
    for line in lines:
        loads(line)


def test_hostile_payload_is_hex(tmp_path: Path) -> None:
    payload = b"\x1b[2J\x1b]0;owned\x07\x00\x7f\xff\xfe\"\\\n\r</script>\xe2\x80\xae"
    src, dst = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.1")
    udp = struct.pack("!HHHH", 1, 2, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    # An unknown TCP option carrying the same bytes, in a second packet.
    option = bytes([99, 2 + 18]) + payload[:18]
    pad = bytes((-len(option)) % 4)
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 0, 0, (20 + len(option) + len(pad)) // 4 << 4, 2,
                      0, 0, 0) + option + pad
    ip2 = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    path = tmp_path / "hostile.pcap"
    records = b"".join(struct.pack("<IIII", 0, 0, len(d), len(d)) + d for d in (ip + udp,
                                                                              ip2 + tcp))
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101) + records)
    proc = subprocess.run([*capdissect_command(), "read", str(path), "--json"],
                          capture_output=True, env=fixed_env(), timeout=60, check=False)
    assert proc.returncode == 0
    out = proc.stdout
    assert out.endswith(b"\n") and out.count(b"\n") == 2
    assert all(0x20 <= b < 0x7F for b in out.replace(b"\n", b""))
    first_obj, second_obj = (loads(line) for line in out.decode("ascii").splitlines())
    assert bytes.fromhex(first_obj["payload"]) == payload
    (unknown,) = second_obj["tcp"]["options"]
    assert bytes.fromhex(unknown["data"]) == payload[:18]
