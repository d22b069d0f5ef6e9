"""What a person at a terminal sees: help pages, colour, tables that fit.

Colour is checked on a real pseudo-terminal (``pty``): the command must find out by
itself that its stdout is a terminal, as it would for a person.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest
import typer.main

from capdissect.cli import app
from tests.support.compare import capdissect_command

ROOT = Path(__file__).resolve().parents[2]
TCP_BASIC = ROOT / "captures" / "tcp-basic.pcap"
ESC = "\x1b["
COMMANDS = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLUMNS")}
    env.update({"TZ": "UTC", "LC_ALL": "C.UTF-8"}, **extra)
    return env


def on_pty(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """What ``capdissect ARGS`` writes to stdout when stdout is a terminal."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*capdissect_command(), *args], stdout=slave,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=env or _env())
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
    assert proc.returncode == 0, f"{args}: exit {proc.returncode}"
    return b"".join(chunks).decode()


def in_pipe(*args: str, env: dict[str, str] | None = None) -> str:
    run = subprocess.run([*capdissect_command(), *args], capture_output=True, text=True,
                         env=env or _env(), timeout=60, check=True)
    return run.stdout


# ----- help ------------------------------------------------------------------------------
@pytest.mark.parametrize("columns", [80, 100])
@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_well_and_fits_the_terminal(command: str, columns: int) -> None:
    text = in_pipe(command, "--help", env=_env(COLUMNS=str(columns)))
    for metavar in ("<bool>", "<int>", "<str>", "<list", "<float>", "<path>"):
        assert metavar not in text, f"{command} --help shows {metavar}"
    assert "SPEC" not in text and "[default: 0]" not in text
    too_long = [line for line in text.splitlines() if len(line) > columns]
    assert not too_long, f"{command} --help at {columns} columns: {too_long}"
    assert "Examples:" in text and f"capdissect {command}" in text.split("Examples:")[1]
    assert "--color auto|always|never" in text and "--no-color" in text


def test_counted_flags_show_as_flags() -> None:
    text = in_pipe("read", "--help", env=_env(COLUMNS="80"))
    options = text.split("Options:")[1]
    for flag in ("-n", "-v", "-X", "-t"):
        line = next(line for line in options.splitlines() if line.strip().startswith(flag))
        # the flag, then its help: no value name between them
        assert line.split()[0] == flag and line.split()[1][0].isupper(), line
    assert "  -c N " in options


def test_program_help_lists_every_command() -> None:
    text = in_pipe("--help", env=_env(COLUMNS="80"))
    assert all(f"  {command} " in text for command in COMMANDS)
    assert max(len(line) for line in text.splitlines()) <= 80


# ----- colour ----------------------------------------------------------------------------
REPORTS = [("read", str(TCP_BASIC)), ("flows", str(TCP_BASIC)), ("timeline", str(TCP_BASIC)),
           ("sockets", str(TCP_BASIC), "--every")]


@pytest.mark.parametrize("args", REPORTS, ids=lambda a: a[0])
def test_colour_on_a_terminal(args: tuple[str, ...]) -> None:
    text = on_pty(*args)
    assert ESC in text
    assert f"{ESC}1;32mESTABLISHED{ESC}0m" in text or f"{ESC}1;35mTIME_WAIT" in text


def test_colour_marks_phases_states_and_addresses_in_annotations() -> None:
    text = on_pty("read", "-n", str(TCP_BASIC))
    assert f"    | {ESC}1;36mhandshake{ESC}0m 1/3 SYN" in text
    assert f"client {ESC}34m127.0.0.1." in text
    assert f"{ESC}1;32mSYN_SENT{ESC}0m -> {ESC}1;32mESTABLISHED{ESC}0m" in text


@pytest.mark.parametrize("args", REPORTS, ids=lambda a: a[0])
def test_always_colours_a_pipe_too(args: tuple[str, ...]) -> None:
    assert ESC in in_pipe(*args, "--color", "always")


@pytest.mark.parametrize("args", REPORTS, ids=lambda a: a[0])
def test_no_colour_in_a_pipe(args: tuple[str, ...]) -> None:
    assert ESC not in in_pipe(*args)


@pytest.mark.parametrize("choice", [("--color", "never"), ("--no-color",)], ids=str)
@pytest.mark.parametrize("args", REPORTS, ids=lambda a: a[0])
def test_never_on_a_terminal(args: tuple[str, ...], choice: tuple[str, ...]) -> None:
    text = on_pty(*args, *choice)
    assert ESC not in text and "TIME_WAIT" in text


@pytest.mark.parametrize("args", REPORTS, ids=lambda a: a[0])
def test_no_color_variable_on_a_terminal(args: tuple[str, ...]) -> None:
    assert ESC not in on_pty(*args, env=_env(NO_COLOR="1"))


@pytest.mark.parametrize("choice", [(), ("--color", "always")], ids=["auto", "always"])
def test_plain_is_never_coloured(choice: tuple[str, ...]) -> None:
    text = on_pty("read", "--plain", "-nn", str(TCP_BASIC), *choice)
    assert ESC not in text and "Flags [S]" in text
    assert text.replace("\r\n", "\n") == in_pipe("read", "--plain", "-nn", str(TCP_BASIC))


def test_help_is_coloured_on_a_terminal_only() -> None:
    assert f"{ESC}1mUsage:" in on_pty("read", "--help")
    assert ESC not in in_pipe("read", "--help")
    assert ESC not in on_pty("read", "--no-color", "--help")


# ----- tables that fit -------------------------------------------------------------------
LONG_V6 = ("2001:db8:85a3:1234:5678:8a2e:370:7334", "2001:db8:85a3:4321:8765:e2a8:73:4337")


@pytest.fixture(scope="module")
def ipv6_flows(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TCP connections and a UDP exchange between two long IPv6 addresses."""
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    client, server = LONG_V6
    packets = []
    ts = 1_700_000_000.0
    for n, sport in enumerate((50001, 50002, 65535)):
        seq, ack = 1000 * n, 5000 * n
        for src, dst, sp, dp, flags, s, a, data in (
            (client, server, sport, 30002, "S", seq, 0, b""),
            (server, client, 30002, sport, "SA", ack, seq + 1, b""),
            (client, server, sport, 30002, "A", seq + 1, ack + 1, b""),
            (client, server, sport, 30002, "PA", seq + 1, ack + 1, b"hello world"),
            (server, client, 30002, sport, "A", ack + 1, seq + 12, b""),
            (client, server, sport, 30002, "FA", seq + 12, ack + 1, b""),
            (server, client, 30002, sport, "FA", ack + 1, seq + 13, b""),
            (client, server, sport, 30002, "A", seq + 13, ack + 2, b""),
        ):
            pkt = (Ether() / IPv6(src=src, dst=dst)
                   / TCP(sport=sp, dport=dp, flags=flags, seq=s, ack=a) / data)
            pkt.time = ts
            ts += 0.001
            packets.append(pkt)
    pkt = Ether() / IPv6(src=client, dst=server) / UDP(sport=40000, dport=10001) / b"who?"
    pkt.time = ts
    packets.append(pkt)
    path = tmp_path_factory.mktemp("v6") / "ipv6-flows.pcap"
    wrpcap(str(path), packets)
    return path


def test_flows_of_ipv6_fit_80_columns(ipv6_flows: Path) -> None:
    text = in_pipe("flows", str(ipv6_flows))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    rows = [line for line in lines if line[:4].strip().isdigit()]
    assert [int(line.split()[0]) for line in rows] == [1, 2, 3, 4]
    assert text.count("TIME_WAIT") == 3 and "three-way" in text
    # the folded addresses are all there, piece by piece
    flat = "".join(line[15:40].strip() for line in lines)
    assert f"[{LONG_V6[0]}]:65535" in flat and f"[{LONG_V6[1]}]:30002" in flat


def test_flows_wide_gives_every_column(ipv6_flows: Path) -> None:
    text = in_pipe("flows", "--wide", str(ipv6_flows))
    header = text.splitlines()[0].split()
    assert header[:4] == ["id", "proto", "client", "server"]
    assert {"conn_state", "history", "complete", "analysis"} <= set(header)
    assert f"[{LONG_V6[0]}]:50001" in text  # not folded


@pytest.mark.live
@pytest.mark.parametrize("plain", [False, True], ids=["annotated", "plain"])
def test_live_is_coloured_on_a_terminal_but_never_plain(plain: bool) -> None:
    import shutil
    import socket
    import threading

    if os.geteuid() != 0 or shutil.which("tcpdump") is None:
        pytest.skip("live capture needs root")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]

        def send() -> None:  # once live listens: a datagram every 0.2 s, bounded
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                for _ in range(25):
                    client.sendto(b"hello", ("127.0.0.1", port))
                    time.sleep(0.2)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        args = ["live", "--port", str(port), "-c", "2", "-n", *(["--plain"] if plain else [])]
        text = on_pty(*args, timeout=30)
        sender.join(10)
    assert "UDP, length 5" in text
    assert (ESC in text) is not plain
