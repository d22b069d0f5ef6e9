"""Real socket programs for the trace tests (tests/live/test_trace.py): each role is its own
process.

``python traceprog.py lesson FAMILY PORT MODE`` starts a server process and a client
process (and for ``udp-connected`` a third party) and waits for them; MODE picks what
the server does at the end:

- ``close``: the who-are-you/hello-world lesson; the client shuts down its writing
  side, the server reads b'' and closes;
- ``never-close``: the server reads b'' and never calls close() (it exits later);
- ``linger0``: the server sets SO_LINGER 0 and closes: the kernel sends RST;
- ``udp-connected``: a UDP socket connect()s to one peer; a third party's datagram to
  it is answered with ICMP port unreachable.

``python traceprog.py repl`` runs each line of stdin as Python and answers "ok", so a
test can drive two processes by hand, as two IPython sessions would.
``python traceprog.py hang PORT`` listens and waits in accept() until killed.
Every wait is bounded: the sockets block, as in the lessons (a timeout would make
them non-blocking and change the calls), and an alarm ends a process that waits too long.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time

TIMEOUT_S = 10.0


def _family(name: str) -> tuple[socket.AddressFamily, str]:
    return (socket.AF_INET6, "::1") if name == "6" else (socket.AF_INET, "127.0.0.1")


def server(family: str, port: int, mode: str) -> None:
    fam, host = _family(family)
    if mode == "udp-connected":
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        sock.bind((host, port))
        print("ready", flush=True)
        data, peer = sock.recvfrom(100)
        sock.connect(peer)  # from now on only this peer
        sock.send(b"hello " + data)
        time.sleep(0.3)  # the third party sends meanwhile
        sock.close()
        return
    listener = socket.socket(fam, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    print("ready", flush=True)
    conn, _ = listener.accept()
    conn.sendall(b"who are you\n")
    conn.recv(100)
    if mode == "linger0":
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    else:
        conn.recv(100)  # b'': the client's FIN
        if mode == "never-close":
            time.sleep(0.3)
            sys.stdout.flush()
            os._exit(0)  # no close(), not even Python's at exit: the kernel closes
        conn.close()
    listener.close()


def client(family: str, port: int, mode: str) -> None:
    fam, host = _family(family)
    if mode == "udp-connected":
        sock = socket.socket(fam, socket.SOCK_DGRAM)
        sock.sendto(b"client", (host, port))
        sock.recvfrom(100)
        sock.close()
        return
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.connect((host, port))
    sock.recv(100)
    sock.sendall(b"hello world")
    if mode == "linger0":
        time.sleep(0.2)
        with contextlib.suppress(OSError):  # the RST
            sock.recv(100)
    else:
        time.sleep(0.1)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(100)
    sock.close()


def third(family: str, port: int) -> None:
    fam, host = _family(family)
    with socket.socket(fam, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"someone else", (host, port))
        time.sleep(0.1)


def lesson(family: str, port: int, mode: str) -> None:
    me = [sys.executable, __file__]
    srv = subprocess.Popen([*me, "server", family, str(port), mode], stdout=subprocess.PIPE,
                           text=True)
    try:
        assert srv.stdout is not None
        assert srv.stdout.readline().strip() == "ready"
        subprocess.run([*me, "client", family, str(port), mode], check=True,
                       timeout=TIMEOUT_S)
        if mode == "udp-connected":
            subprocess.run([*me, "third", family, str(port)], check=True, timeout=TIMEOUT_S)
        srv.wait(TIMEOUT_S)
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def repl() -> None:
    names: dict[str, object] = {"socket": socket, "struct": struct, "time": time}
    for line in sys.stdin:
        exec(line, names)  # the test's own statements
        print("ok", flush=True)


def hang(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    print("ready", flush=True)
    listener.accept()


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    signal.alarm(int(TIMEOUT_S) * 3)
    if role == "lesson":
        lesson(args[0], int(args[1]), args[2])
    elif role == "server":
        server(args[0], int(args[1]), args[2])
    elif role == "client":
        client(args[0], int(args[1]), args[2])
    elif role == "third":
        third(args[0], int(args[1]))
    elif role == "repl":
        repl()
    else:
        hang(int(args[0]))
