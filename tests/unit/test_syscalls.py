# ruff: noqa: E501  (strace's lines are kept verbatim, and they are long)
"""tracking/syscalls.py: strace's lines in, Call records out; joined to flows by address."""

from __future__ import annotations

import ipaddress

from capdissect.dissect.strace import parse, with_sockets
from capdissect.tracking.syscalls import FlowEnds, Frame, join

LO = ipaddress.ip_address("127.0.0.1").packed
LO6 = ipaddress.ip_address("::1").packed

# strace -f -yy -ttt -T, two processes on IPv6 (captured from a real run, ports changed).
LOG6 = """\
7538  100.000000 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3<TCPv6:[12994]> <0.000036>
7538  100.000100 bind(3<TCPv6:[12994]>, {sa_family=AF_INET6, sin6_port=htons(30502), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0 <0.000020>
7538  100.000200 listen(3<TCPv6:[[::1]:30502]>, 1) = 0 <0.000010>
7538  100.000300 accept4(3<TCPv6:[[::1]:30502]>,  <unfinished ...>
7558  101.000000 socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_IP) = 3<TCPv6:[13076]> <0.000010>
7558  101.000100 connect(3<TCPv6:[13076]>, {sa_family=AF_INET6, sin6_port=htons(30502), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = 0 <0.000100>
7538  101.003000 <... accept4 resumed>{sa_family=AF_INET6, sin6_port=htons(47116), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, [28], SOCK_CLOEXEC) = 4<TCPv6:[[::1]:30502->[::1]:47116]> <1.002700>
7558  101.004000 sendto(3<TCPv6:[[::1]:47116->[::1]:30502]>, "{sa_family=AF_INET, sin_port=htons(1), sin_addr=inet_addr(\\"6.6.6.6\\")}", 70, 0, NULL, 0) = 70 <0.000010>
7558  101.005000 shutdown(3<TCPv6:[[::1]:47116->[::1]:30502]>, SHUT_WR) = 0 <0.000010>
7538  101.006000 read(5</etc/passwd>, "root", 4) = 4 <0.000010>
7538  101.007000 close(4<TCPv6:[[::1]:30502->[::1]:47116]>) = 0 <0.000010>
7558  101.008000 recvfrom(3<TCPv6:[[::1]:47116->[::1]:30502]>,  <unfinished ...>
7558  101.009000 +++ killed by SIGKILL +++
"""


def test_parse_keeps_socket_calls_with_both_moments_and_addresses() -> None:
    calls = with_sockets(parse(LOG6.splitlines()))
    names = [c.name for c in calls]
    assert names == ["socket", "bind", "listen", "socket", "connect", "accept4", "sendto",
                     "shutdown", "close", "recvfrom"]  # read() of a file is left out
    accept = calls[names.index("accept4")]
    assert (accept.start_ts, accept.ts, accept.ret) == (100.0003, 101.003, "4")
    assert accept.local == (LO6, 30502) and accept.remote == (LO6, 47116)
    connect = calls[names.index("connect")]
    # The entry stamp, and the return bounded by the next line (see _bounded).
    assert connect.start_ts == 101.0001 and connect.ts == 101.003
    assert connect.target == (LO6, 30502)
    assert connect.local == (LO6, 47116)  # from later calls on the same socket
    assert connect.summary() == "connect([::1]:30502)"
    sendto = calls[names.index("sendto")]
    assert sendto.target is None  # the payload's look-alike sockaddr is data, not an address
    assert sendto.detail == "70 bytes"
    assert calls[names.index("shutdown")].summary() == "shutdown(SHUT_WR)"
    recv = calls[-1]
    assert not recv.returned and recv.ret == "?" and recv.ts == 101.009


def test_refused_connect_and_linger() -> None:
    log = [
        '10  5.000000 setsockopt(3<TCP:[127.0.0.1:1->127.0.0.1:2]>, SOL_SOCKET, SO_LINGER, '
        '{l_onoff=1, l_linger=0}, 8) = 0 <0.000005>',
        '11  5.100000 connect(4<TCP:[99]>, {sa_family=AF_INET, sin_port=htons(9), '
        'sin_addr=inet_addr("127.0.0.1")}, 16) = -1 ECONNREFUSED (Connection refused) '
        '<0.000050>',
    ]
    linger, refused = parse(log)
    assert linger.linger_zero and linger.detail == "SO_LINGER 0"
    assert refused.failed and refused.ret == "-1 ECONNREFUSED" and refused.ts == 5.10005


def test_attached_mid_call_keeps_the_return() -> None:
    log = ['20  7.000000 <... accept4 resumed>{sa_family=AF_INET, sin_port=htons(5), '
           'sin_addr=inet_addr("127.0.0.1")}, [16], SOCK_CLOEXEC) = 6<TCP:[127.0.0.1:80->'
           '127.0.0.1:5]> <2.000000>']
    [accept] = parse(log)
    assert accept.start_ts == accept.ts == 7.0 and accept.remote == (LO, 5)


def test_garbage_lines_are_skipped_and_no_text_of_the_program_is_kept() -> None:
    assert list(parse(["", "nonsense", "1 2.0 connect(", "1 x.y close(3) = 0 <0.1>"])) == []
    [call] = parse(['12 1.0 connect(3<TCP:[1]>, "\x1b[31m", 5) = 0 <0.0>'])
    assert call.summary() == "connect()" and call.target is None


def test_join_places_calls_after_frames_and_finds_close_wait() -> None:
    calls = parse(LOG6.splitlines()[:9])  # the server never closes in this cut
    frames = [Frame(1, 101.0002, 1, "client", "SYN", "S"),
              Frame(2, 101.0003, 1, "server", "SYN-ACK", "S."),
              Frame(3, 101.0004, 1, "client", "ACK", "."),
              Frame(4, 101.0041, 1, "client", "data", "P."),
              Frame(5, 101.0051, 1, "client", "FIN", "F.")]
    flows = [FlowEnds(1, "tcp", ("client", "server"), ((LO6, 47116), (LO6, 30502)))]
    joined = join(calls, flows, frames)
    by_name = {p.call.name: p for p in joined.of(1)}
    assert by_name["connect"].side == "client" and by_name["connect"].after_frame == 3
    assert by_name["accept4"].side == "server" and by_name["accept4"].start_frame == 0
    assert by_name["shutdown"].start_frame < 5
    assert {p.call.name for p in joined.unjoined()} == {"socket", "bind", "listen"}
    assert joined.findings[1] == [(5, "the server got the FIN at frame 5, but pid 7538 "
                                   "never called close(): CLOSE_WAIT lingers until it does")]


def test_a_line_cut_short_by_strace_stopping_is_a_call_that_never_returned() -> None:
    log = ["5  3.000000 listen(3<TCP:[127.0.0.1:9]>, 128) = 0 <0.000016>",
           "5  3.100000 accept4(3<TCP:[127.0.0.1:9]>, "]
    listen, accept = parse(log)
    assert listen.returned and not accept.returned
    assert accept.name == "accept4" and accept.start_ts == 3.1 and accept.local == (LO, 9)

