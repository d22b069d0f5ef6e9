"""``capdissect trace``: real server and client processes over loopback, real strace, real
capture; the textbook orderings asserted from each call's ``after_frame`` (SPEC §3.10).

Each test runs ``capdissect trace --json -- python tests/support/traceprog.py lesson ...``,
whose server and client are separate processes, and reads the timeline JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.support.compare import capdissect_command, fixed_env
from tests.support.livecli import free_port_both, live_problem

PROG = str(Path(__file__).parents[1] / "support" / "traceprog.py")
TIMEOUT_S = 60

problem = live_problem("scapy", tcpdump=False) or (
    None if shutil.which("strace") else "strace is not installed (apt-get install strace)")
pytestmark = [pytest.mark.live, pytest.mark.skipif(problem is not None, reason=problem or "")]


def trace_json(port: int, *cmd: str) -> dict[str, Any]:
    run = subprocess.run([*capdissect_command(), "trace", "--port", str(port), "--json", "--",
                          *cmd], capture_output=True, text=True, timeout=TIMEOUT_S,
                         env=fixed_env())
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    return doc


def lesson(family: str, mode: str) -> tuple[dict[str, Any], int]:
    port = free_port_both()
    return trace_json(port, sys.executable, PROG, "lesson", family, str(port), mode), port


def calls(flow: dict[str, Any], side: str, name: str) -> list[dict[str, Any]]:
    return [c for c in flow["syscalls"] if c["side"] == side and c["call"].startswith(name)]


def frame_of(flow: dict[str, Any], sender: str, flags: str, after: int = 0) -> int:
    """The first frame after *after* that *sender* sent with exactly these flags."""
    return next(e["frame"] for e in flow["events"]
                if e["from"] == sender and e["flags"] == flags and e["frame"] > after)


@pytest.mark.parametrize("family", ["4", "6"])
def test_tcp_lesson_orderings(family: str) -> None:
    doc, _ = lesson(family, "close")
    [flow] = doc["tcp"]
    syn_ack = frame_of(flow, "server", "S.")
    third_ack = frame_of(flow, "client", ".", syn_ack)
    client_fin = frame_of(flow, "client", "F.")
    [connect] = calls(flow, "client", "connect")
    [accept] = calls(flow, "server", "accept")
    [shutdown] = calls(flow, "client", "shutdown")
    eof = [c for c in calls(flow, "server", "recv") if c["ret"] == "0"]
    assert connect["ret"] == "0" and connect["after_frame"] >= syn_ack
    assert accept["after_frame"] >= third_ack
    assert accept["start_frame"] < syn_ack  # it waited through the handshake
    assert eof and eof[0]["after_frame"] >= client_fin
    assert shutdown["args"] == "SHUT_WR"
    assert shutdown["start_frame"] < client_fin  # the FIN follows shutdown(SHUT_WR)
    [close] = calls(flow, "server", "close")
    server_fin = frame_of(flow, "server", "F.")
    assert close["start_frame"] < server_fin  # ...and the server's FIN follows close()
    for call in flow["syscalls"]:
        assert call["start_ts"] <= call["ts"]
        assert set(call) >= {"ts", "pid", "side", "call", "args", "ret", "start_ts",
                             "after_frame"}
    # The listening socket's calls touch no flow: they are listed on their own.
    assert {"bind", "listen"} <= {c["call"] for c in doc["syscalls"]}
    assert not flow["findings"]


@pytest.mark.parametrize("family", ["4", "6"])
def test_linger_zero_then_close_is_followed_by_the_rst(family: str) -> None:
    doc, _ = lesson(family, "linger0")
    [flow] = doc["tcp"]
    [linger] = calls(flow, "server", "setsockopt")
    assert linger["args"] == "SO_LINGER 0"
    [close] = calls(flow, "server", "close")
    rst = next(e["frame"] for e in flow["events"] if "R" in e["flags"])
    assert close["start_frame"] < rst <= close["after_frame"]
    assert not any("F" in e["flags"] for e in flow["events"] if e["from"] == "server")
    assert {"frame": rst, "text": f"SO_LINGER 0 then close(): the RST at frame {rst}"} in (
        flow["findings"])


@pytest.mark.parametrize("family", ["4", "6"])
def test_a_server_that_never_closes_is_flagged_close_wait(family: str) -> None:
    doc, _ = lesson(family, "never-close")
    [flow] = doc["tcp"]
    client_fin = frame_of(flow, "client", "F.")
    assert not calls(flow, "server", "close")
    texts = [f["text"] for f in flow["findings"]]
    pid = calls(flow, "server", "accept")[0]["pid"]
    assert (f"the server got the FIN at frame {client_fin}, but pid {pid} never called "
            "close(): CLOSE_WAIT lingers until it does") in texts


@pytest.mark.parametrize("family", ["4", "6"])
def test_connected_udp_socket_refuses_a_third_party(family: str) -> None:
    doc, port = lesson(family, "udp-connected")
    server_end = f"[::1]:{port}" if family == "6" else f"127.0.0.1:{port}"
    connect = next(c for flow in doc["udp"] for c in flow["syscalls"]
                   if c["call"] == "connect")
    others = [f for f in doc["udp"] if f["icmp_unreachable"]]
    assert len(others) == 1
    [other] = others
    assert server_end in (other["a"], other["b"])
    datagram = next(e["frame"] for e in other["events"] if "from" in e)
    icmp = next(e["frame"] for e in other["events"] if e.get("icmp"))
    assert connect["after_frame"] < datagram < icmp
    assert any(f["frame"] == icmp and f["text"].startswith("this UDP socket called connect(")
               and f"frame {icmp}'s ICMP" in f["text"] for f in other["findings"])
    # The bind before any datagram is on its own line.
    assert any(c["call"] == "bind" and c["after_frame"] == 0 for c in doc["syscalls"])


def test_text_output_has_call_lines_and_ladder_marks() -> None:
    port = free_port_both()
    run = subprocess.run([*capdissect_command(), "trace", "--port", str(port), "-n", "--",
                          sys.executable, PROG, "lesson", "4", str(port), "close"],
                         capture_output=True, text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    connect = next(i for i, line in enumerate(lines)
                   if line.startswith("    | client pid ") and ": connect(127.0.0.1:" in line
                   and " returned " in line)
    assert f"connect(127.0.0.1:{port}) returned 0 after the " in lines[connect]
    syn_ack = next(i for i, line in enumerate(lines) if "Flags [S.]" in line)
    assert syn_ack < connect
    assert any(line.lstrip().startswith("|# pid ") and "connect(" in line for line in lines)
    assert any("accept4() = " in line and line.endswith("#|") for line in lines)


def _descendants_marker(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _listening(port: int) -> bool:
    """Some socket listens on 127.0.0.1:*port* (the kernel's table, no connection made)."""
    want = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return any(line.split()[1] == want and line.split()[3] == "0A" for line in lines)


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def test_sigkilled_program_leaves_no_process_and_one_line() -> None:
    port = free_port_both()
    marker = f"marker-{uuid.uuid4().hex}"
    argv = [*capdissect_command(), "trace", "--port", str(port), "--", sys.executable, PROG,
            "hang", str(port), marker]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=fixed_env())
    try:
        deadline = time.monotonic() + 20
        victims: list[int] = []
        while time.monotonic() < deadline:
            victims = [pid for pid in _descendants_marker(marker) if _argv(pid)[1:2] == [PROG]]
            if victims:
                break
            time.sleep(0.05)
        assert victims, "the traced program never started"
        while time.monotonic() < deadline and not _listening(port):
            time.sleep(0.05)
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == f"capdissect: {sys.executable} was killed by SIGKILL"
    assert "listen() returned 0" in out  # the calls so far are printed
    assert _descendants_marker(marker) == []


def test_command_not_found_is_one_line() -> None:
    run = subprocess.run([*capdissect_command(), "trace", "--port", "1", "--",
                          "no-such-program-xyz"], capture_output=True, text=True,
                         timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "capdissect: no-such-program-xyz: command not found")
    assert "Traceback" not in run.stderr


def test_nonzero_exit_is_one_line_after_the_output() -> None:
    run = subprocess.run([*capdissect_command(), "trace", "--port", "1", "--",
                          sys.executable, "-c",
                          "import sys; print('boom', file=sys.stderr); sys.exit(3)"],
                         capture_output=True, text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 1
    assert "boom\n" in run.stderr  # the program's own stderr is passed on
    assert run.stderr.strip().splitlines()[-1] == (
        f"capdissect: {sys.executable} exited with status 3")
    assert "no TCP connections or UDP conversations" in run.stdout


class Repl:
    """A Python process that runs each line sent to it (an IPython session stand-in)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, PROG, "repl"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def do(self, line: str) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"
        time.sleep(0.05)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _steps(port: int) -> list[tuple[str, str]]:
    addr = f"('127.0.0.1', {port})"
    return [
        ("a", "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              f"s.bind({addr}); s.listen(1)"),
        ("b", f"c = socket.socket(); c.connect({addr})"),
        ("a", "conn, _ = s.accept()"),
        ("a", "conn.sendall(b'who are you')"),
        ("b", "c.recv(100)"),
        ("b", "c.sendall(b'hello world')"),
        ("a", "conn.recv(100)"),
        ("b", "c.close()"),
        ("a", "conn.recv(100)"),
        ("a", "conn.close(); s.close()"),
    ]


def _ordering(doc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(side, call, ret, label of the frame it returned after) for each call of the flow."""
    [flow] = doc["tcp"]
    labels = {e["frame"]: f'{e["from"]} {e["label"]}' for e in flow["events"]}
    return [(c["side"], c["call"], c["ret"], labels.get(c["after_frame"], "-"))
            for c in flow["syscalls"]]


DRIVER = """
import subprocess, sys, time
steps = {steps!r}
procs = {{k: subprocess.Popen([sys.executable, {prog!r}, "repl"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True) for k in "ab"}}
for who, line in steps:
    p = procs[who]
    p.stdin.write(line + "\\n"); p.stdin.flush()
    assert p.stdout.readline().strip() == "ok"
    time.sleep(0.05)
for p in procs.values():
    p.stdin.close(); p.wait(10)
"""


def test_pid_attach_gives_the_same_ordering_as_running_under_trace() -> None:
    port = free_port_both()
    driver = DRIVER.format(steps=_steps(port), prog=PROG)
    under = trace_json(port, sys.executable, "-c", driver)
    port = free_port_both()
    a, b = Repl(), Repl()
    tracer = subprocess.Popen(
        [*capdissect_command(), "trace", "--port", str(port), "--json",
         "--pid", str(a.proc.pid), "--pid", str(b.proc.pid)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fixed_env())
    try:
        assert tracer.stderr is not None
        assert tracer.stderr.readline().startswith("tracing pid ")
        for who, line in _steps(port):
            (a if who == "a" else b).do(line)
        time.sleep(0.3)
        tracer.send_signal(signal.SIGINT)
        out, err = tracer.communicate(timeout=TIMEOUT_S)
    finally:
        a.close()
        b.close()
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
    assert tracer.returncode == 0, err
    attached = json.loads(out)
    assert _ordering(attached) == _ordering(under)
    assert ("client", "connect", "0", "client ACK") in _ordering(attached) or (
        ("client", "connect", "0", "server SYN-ACK") in _ordering(attached))


API_LESSON = """
import json, socket, sys
import capdissect
port = int(sys.argv[1])
with capdissect.capture(port=port, trace=True) as cap:
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port)); s.listen(1)
    c = socket.socket(); c.connect(("127.0.0.1", port)); a, _ = s.accept()
    a.sendall(b"who are you"); c.recv(100); c.close(); a.recv(100); a.close(); s.close()
joined = cap.joined()
print(json.dumps([[p.side, p.call.name, p.call.ret] for p in joined.calls]))
print(cap.syscalls())
"""


def test_api_traces_the_current_process() -> None:
    port = free_port_both()
    run = subprocess.run([sys.executable, "-c", API_LESSON, str(port)], capture_output=True,
                         text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 0, run.stderr
    first, *text = run.stdout.splitlines()
    seen = [tuple(x) for x in json.loads(first)]
    assert ("client", "connect", "0") in seen
    assert ("server", "recvfrom", "0") in seen
    assert any(": connect(127.0.0.1:" in line and "returned 0 after the" in line
               for line in text)


def test_write_keeps_the_calls_for_timeline_and_handout(tmp_path: Path) -> None:
    port = free_port_both()
    kept = tmp_path / "lesson.pcap"
    run = subprocess.run([*capdissect_command(), "trace", "--port", str(port), "-w", str(kept),
                          "--", sys.executable, PROG, "lesson", "4", str(port), "close"],
                         capture_output=True, text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 0, run.stderr
    calls = Path(f"{kept}.strace")
    assert kept.stat().st_size > 24 and calls.exists()
    again = subprocess.run([*capdissect_command(), "timeline", str(kept), "--json", "--calls",
                            str(calls)], capture_output=True, text=True, timeout=TIMEOUT_S,
                           env=fixed_env())
    [flow] = json.loads(again.stdout)["tcp"]
    [connect] = [c for c in flow["syscalls"] if c["call"] == "connect"]
    assert connect["after_frame"] >= frame_of(flow, "server", "S.")
    html_out, md_out = tmp_path / "lesson.html", tmp_path / "lesson.md"
    for out in (html_out, md_out):
        made = subprocess.run([*capdissect_command(), "handout", str(kept), "-o", str(out),
                               "--calls", str(calls)], capture_output=True, text=True,
                              timeout=TIMEOUT_S, env=fixed_env())
        assert made.returncode == 0, made.stderr
    page = html_out.read_text()
    assert '<div class="calls">' in page and 'class="call"' in page  # beside packets, ladder
    assert f"connect(127.0.0.1:{port}) returned 0 after the" in page
    assert "call: client pid" in md_out.read_text()
    assert "Note left of C: call pid" in md_out.read_text()
    picture = tmp_path / "lesson.svg"
    drawn = subprocess.run([*capdissect_command(), "timeline", str(kept), "--svg", str(picture),
                            "--calls", str(calls)], capture_output=True, text=True,
                           timeout=TIMEOUT_S, env=fixed_env())
    assert drawn.returncode == 0, drawn.stderr
    root = ElementTree.parse(picture).getroot()
    marks = [g for g in root.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "call"]
    assert len(marks) == len(flow["syscalls"])
    if shutil.which("tshark") is not None:  # Wireshark shows the calls as packet comments
        commented = tmp_path / "lesson.pcapng"
        subprocess.run([*capdissect_command(), "annotate", str(kept), "-o", str(commented),
                        "--calls", str(calls)], check=True, timeout=TIMEOUT_S, env=fixed_env())
        comments = subprocess.run(["tshark", "-r", str(commented), "-T", "fields", "-e",
                                   "frame.comment"], capture_output=True, text=True,
                                  timeout=TIMEOUT_S, check=True).stdout
        assert f"connect(127.0.0.1:{port}) returned 0 after the" in comments


def test_a_vanishing_pid_ends_with_what_was_traced_and_one_line() -> None:
    port = free_port_both()
    victim = subprocess.Popen([sys.executable, "-c", (
        "import socket, sys; sys.stdin.readline(); s = socket.socket(); "
        "s.bind(('127.0.0.1', int(sys.argv[1])))"), str(port)], stdin=subprocess.PIPE,
        text=True)
    tracer = subprocess.Popen([*capdissect_command(), "trace", "--port", str(port), "--pid",
                               str(victim.pid)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=fixed_env())
    try:
        assert tracer.stderr is not None and victim.stdin is not None
        assert tracer.stderr.readline().startswith("tracing pid ")  # attached
        victim.stdin.write("go\n")
        victim.stdin.close()  # it binds, then ends
        out, err = tracer.communicate(timeout=TIMEOUT_S)
    finally:
        for proc in (victim, tracer):
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    assert tracer.returncode == 1
    assert err.strip().splitlines()[-1] == f"capdissect: pid {victim.pid} ended while traced"
    assert f"bind(127.0.0.1:{port}) returned 0" in out
    assert "Traceback" not in err


def test_a_pid_that_does_not_exist_is_one_line() -> None:
    run = subprocess.run([*capdissect_command(), "trace", "--port", "1", "--pid", "999999999"],
                         capture_output=True, text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == "capdissect: no process 999999999 to trace"


def test_duration_stops_the_program_quietly_and_leaves_nothing() -> None:
    port = free_port_both()
    marker = f"marker-{uuid.uuid4().hex}"
    run = subprocess.run([*capdissect_command(), "trace", "--port", str(port), "--duration",
                          "4", "--", sys.executable, PROG, "hang", str(port), marker],
                         capture_output=True, text=True, timeout=TIMEOUT_S, env=fixed_env())
    assert run.returncode == 0, run.stderr
    assert "listen() returned 0" in run.stdout
    assert "accept4() never returned while traced" in run.stdout  # it waited in accept()
    assert _descendants_marker(marker) == []


def test_api_traces_two_sessions_by_pid() -> None:
    import capdissect

    port = free_port_both()
    a, b = Repl(), Repl()
    try:
        with capdissect.capture(port=port, trace=[a.proc.pid, b.proc.pid]) as cap:
            for who, line in _steps(port):
                (a if who == "a" else b).do(line)
    finally:
        a.close()
        b.close()
    joined = cap.joined()
    assert joined is not None
    seen = {(p.side, p.call.name, p.call.pid) for p in joined.calls}
    assert ("client", "connect", b.proc.pid) in seen
    assert ("server", "accept4", a.proc.pid) in seen
    text = str(cap.syscalls())
    assert f"client pid {b.proc.pid}: connect(127.0.0.1:{port}) returned 0 after the" in text
    assert f"pid {b.proc.pid} connect(127.0.0.1:{port}) = 0" in str(cap.timeline())
