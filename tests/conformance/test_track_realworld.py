"""Issue #20: the tracker on real-world captures (Zeek's test traces, tests/corpus-extra).

Each test names what the wire itself shows (the frames are quoted in the comments, as
`tcpdump -nr FILE` prints them) and checks the tracker's states against it; where a
tool can be asked, tshark is: the conversations (`-z conv,tcp`) and the analysis flags.
None of the expectations comes from capdissect's own output.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from capdissect.demo.netns import namespace_problem
from capdissect.sources import open_capture
from tests.live.test_track_scenarios import track
from tests.support.analysis_compare import capdissect_flags, tshark_flags, tshark_problem
from tests.support.compare import capdissect_command
from tests.support.fastopen import fast_open_capture

EXTRA = Path(__file__).resolve().parents[1] / "corpus-extra"

Flow = dict[str, Any]

needs_tshark = pytest.mark.skipif(tshark_problem() is not None, reason=str(tshark_problem()))


def tcp_flows(name: str) -> list[Flow]:
    tcp, _udp, _tracker = track(EXTRA / name)  # an absolute name stays as it is
    return tcp


def states_at(flow: Flow, frame: int) -> dict[str, str | None]:
    (event,) = [e for e in flow["events"] if e["frame"] == frame]
    states: dict[str, str | None] = event["states"]
    return states


def tshark_conversations(path: Path) -> dict[frozenset[str], int]:
    """tshark -z conv,tcp: {the two endpoints: frames}."""
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-q", "-z", "conv,tcp"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    convs: dict[frozenset[str], int] = {}
    for line in out.splitlines():
        m = re.match(r"(\S+)\s+<->\s+(\S+)\s+(\d+)\s.*?\s(\d+)\s+\S+\s+\S+\s+(\d+)\s", line)
        if m:
            convs[frozenset((m[1], m[2]))] = int(m[5])
    return convs


def tracker_conversations(flows: list[Flow]) -> dict[frozenset[str], int]:
    """{the two endpoints: frames}, spelled as tshark does ([2001:db8::1]:80 without [])."""
    return {frozenset(re.sub(r"^\[(.*)\]", r"\1", f[end]) for end in ("client", "server")):
            f["packets"] for f in flows}


# ----- 1. the final ACK of a simultaneous close rides on a retransmitted FIN -------------
def test_retransmitted_fin_with_the_final_ack_reaches_time_wait() -> None:
    # zeek mysql/auth.pcap, connection 1 (client .3:55834, server .8:3306):
    #  5 server F. seq 77 ack 1           the server closes first
    #  6 client .  ack 77                 the client has not got that FIN (ack 77, not 78)
    #  7 client F. seq 1 ack 77           so its FIN crosses the server's
    #  8 server .  ack 2                  the server got the client's FIN
    #  9 client F. seq 1 ack 78           the FIN again, now acknowledging the server's FIN
    # Both FINs crossed and both were acknowledged: TIME_WAIT on both sides, through
    # CLOSING (the server's FIN of frame 5 reached the client before frame 8 did: one
    # path delivers in order).
    flows = tcp_flows("zeek_mysql_auth.pcap")
    assert len(flows) == 13
    for flow in flows:
        assert (flow["close"], flow["closer"]) == ("simultaneous", "both")
        assert flow["final"] == {"client": "TIME_WAIT", "server": "TIME_WAIT"}
        assert "anomalies" not in flow
    first = flows[0]
    assert first["path"]["client"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "CLOSING",
                                       "TIME_WAIT"]
    assert first["path"]["server"] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
                                       "CLOSING", "TIME_WAIT"]
    assert states_at(first, 9) == {"client": "TIME_WAIT", "server": "TIME_WAIT"}


def test_retransmitted_fin_in_an_http_close() -> None:
    # zeek http/get-gzip.pcap: the same close; the client's FIN is sent again with the ack
    # of the server's FIN.
    (flow,) = tcp_flows("zeek_http_get-gzip.pcap")
    assert flow["final"] == {"client": "TIME_WAIT", "server": "TIME_WAIT"}
    assert "anomalies" not in flow


def test_fin_reordered_behind_its_senders_later_ack_is_a_simultaneous_close() -> None:
    # tests/corpus-extra/capdissect_reordered_fin.pcap (a relayed transfer, README):
    # 12 client F. seq 1000001 ack 100001   the client closes
    # 13 server .  seq 100002 ack 1000002   the server got it; its seq is one past a FIN
    #                                       the capture has not seen yet
    # 14 server F. seq 100001 ack 1000001   that FIN: sent before frame 13 (its ack does
    #                                       not cover the client's FIN), reordered after it
    # 15 client .  ack 100002
    # The server sent its FIN first and then got the client's: FIN_WAIT_1 -> CLOSING ->
    # TIME_WAIT, as `ss` showed (not CLOSE_WAIT -> LAST_ACK -> CLOSED in capture order).
    (flow,) = tcp_flows("capdissect_reordered_fin.pcap")
    assert flow["path"]["server"][-4:] == ["ESTABLISHED", "FIN_WAIT_1", "CLOSING", "TIME_WAIT"]
    assert flow["path"]["client"][-3:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert states_at(flow, 14) == {"client": "FIN_WAIT_2", "server": "CLOSING"}
    assert flow["final"] == {"client": "TIME_WAIT", "server": "TIME_WAIT"}


# ----- 2. captures that start at the SYN-ACK or miss a direction -------------------------
def test_capture_starting_at_the_synack_enters_the_implied_states() -> None:
    # zeek tcp/missing-syn.pcap: frame 1 is the server's S. (ack 1512382794: the client's
    # SYN, not captured), then a whole HTTP exchange; the client closes (18 F.), the
    # server acknowledges it (19), closes (20 F. seq 9418) and the client acknowledges
    # that (21 ack 9419).  The client ends in TIME_WAIT, the server CLOSED.
    (flow,) = tcp_flows("zeek_tcp_missing-syn.pcap")
    assert flow["path"]["client"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2",
                                      "TIME_WAIT"]
    assert flow["path"]["server"] == ["SYN_RECEIVED", "ESTABLISHED", "CLOSE_WAIT", "LAST_ACK",
                                      "CLOSED"]
    assert "anomalies" not in flow
    timeline = capdissect("timeline", EXTRA / "zeek_tcp_missing-syn.pcap")
    assert "the capture starts at the SYN-ACK" in timeline
    assert "has no transition" not in timeline


def test_server_side_only_capture() -> None:
    # zeek tcp/one-sided-2745.pcap: only the server's segments.  1 S. ; 2 . ack 53: the
    # server acknowledges 52 bytes of client data, so the client got the SYN-ACK and the
    # server got the client's ACK (data carries one); 3 F.: the server closes.
    flows = tcp_flows("zeek_tcp_one-sided-2745.pcap")
    assert len(flows) == 2
    for flow in flows:
        assert flow["path"]["client"] == ["SYN_SENT", "ESTABLISHED"]
        assert flow["path"]["server"] == ["SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1"]
        assert "anomalies" not in flow


def test_client_side_only_capture() -> None:
    # zeek ssh/ssh.client-side-half-duplex.pcap, its first 25 frames (one connection):
    # the client's S, then . ack 912166851: it acknowledges the server's SYN-ACK, which
    # the capture does not have; so the server listened and answered, and both reached
    # ESTABLISHED; frame 24 is the client's FIN.
    (flow,) = tcp_flows("zeek_ssh_client-side-half-duplex-first25.pcap")
    assert flow["open"] == "three-way"
    assert flow["path"]["client"] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1"]
    assert flow["path"]["server"] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]
    assert states_at(flow, 2) == {"client": "ESTABLISHED", "server": "ESTABLISHED"}
    assert "anomalies" not in flow


def test_mid_stream_capture() -> None:
    # zeek http/get_nosyn.pcap: starts with the client's P. (the GET), no SYN at all; the
    # client closes first and both FINs are acknowledged.
    (flow,) = tcp_flows("zeek_http_get_nosyn.pcap")
    assert flow["open"] == "none"
    assert flow["path"]["client"] == ["ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"]
    assert flow["path"]["server"] == ["ESTABLISHED", "CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert "the capture starts mid-connection" in capdissect(
        "timeline", EXTRA / "zeek_http_get_nosyn.pcap")


# ----- 5. RST acceptability (RFC 9293 §3.10.7.3) ------------------------------------------
def test_rst_not_acknowledging_the_syn_is_dropped_in_syn_sent() -> None:
    # zeek tcp/rst-inject-rae.pcap:
    #  1 client S  seq 1569339004
    #  2 server R. seq 0, ack 1569339004   acks the ISN itself, not ISN + 1: in SYN-SENT
    #                                      only ISS < SEG.ACK =< SND.NXT is acceptable
    #  3 server S. ack 1569339005          the real answer
    # So the client stays in SYN_SENT at frame 2 and the connection opens: not refused.
    (flow,) = tcp_flows("zeek_tcp_rst-inject-rae.pcap")
    assert flow["open"] == "three-way"
    assert states_at(flow, 2)["client"] == "SYN_SENT"
    assert flow["path"]["client"][:2] == ["SYN_SENT", "ESTABLISHED"]
    assert flow["path"]["server"][:3] == ["LISTEN", "SYN_RECEIVED", "ESTABLISHED"]


def test_out_of_window_rst_closes_nothing() -> None:
    # zeek ssh/ssh_version_199.pcap, the end: the client's FIN (77 FP. seq 1493) reached
    # the server before its RSTs of frames 79, 81 and 83 (R seq 1493): the server's
    # RCV.NXT is 1494, so those are below the window, and the server goes on (80 FP.,
    # 82 and 84 ack 1494).  The RST of frame 85 (seq 1494) is in the window and closes it.
    (flow,) = tcp_flows("zeek_ssh_ssh_version_199.pcap")
    for frame in (79, 81, 83):
        assert states_at(flow, frame)["server"] != "CLOSED", frame
    assert states_at(flow, 84)["server"] == "CLOSING"
    assert states_at(flow, 85)["server"] == "CLOSED"
    assert flow["final"] == {"client": "CLOSED", "server": "CLOSED"}
    assert "anomalies" not in flow


# ----- 6. a refused SYN, sent again ---------------------------------------------------------
def test_syn_sent_again_after_each_rst_stays_refused() -> None:
    # zeek pop3/pop3.pcap (Windows retries a refused connect with the same SYN): frames
    # 1-6 are S, R., S, R., S, R.: every attempt refused, so the connection is refused,
    # with no server socket.  The same SYN again shows the client still connecting:
    # it gave up only after the last RST.
    flows = tcp_flows("zeek_pop3_pop3.pcap")
    refused = flows[0]
    assert refused["open"] == "refused" and refused["path"]["server"] == []
    assert refused["path"]["client"] == ["SYN_SENT", "CLOSED"]
    assert [states_at(refused, frame)["client"] for frame in range(1, 7)] == [
        "SYN_SENT"] * 5 + ["CLOSED"]
    assert [f["open"] for f in flows[2:]] == ["three-way"] * (len(flows) - 2)


REFUSED_THEN_ACCEPTED = r"""
import socket, sys, threading, time
port = int(sys.argv[1])
def serve():
    time.sleep(0.4)  # after the first SYN was refused, before its retransmission (1 s)
    ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port)); ls.listen(1); ls.settimeout(10)
    c, _ = ls.accept(); c.settimeout(10)
    while c.recv(65536):  # until the client closes
        pass
    c.close()
threading.Thread(target=serve).start()
c = socket.socket(); c.bind(("127.0.0.1", port + 1)); c.settimeout(10)
c.connect(("127.0.0.1", port))
c.sendall(b"x" * 2 * 1024 * 1024)
time.sleep(0.2)
print("ESTABLISHED" if "ESTAB" in sys.stdin.readline() else "?", flush=True)
c.close()
"""


@pytest.mark.live
def test_refused_syn_sent_again_and_accepted(tmp_path: Path) -> None:
    # A real capture, made in a namespace: the kernel refuses the first SYN (no listener
    # yet) and its RST is dropped on the way in (nftables), so the client never gets it;
    # the client's SYN, sent again after 1 s with the same ISN, finds the listener; 2 MiB
    # follow.  ss in the namespace says the client is ESTAB during the transfer.
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "tcpdump", "ss")):
        pytest.skip("needs root, ip, nft, tcpdump and ss")
    ns, port, pcap = f"capdissect-rta-{os.getpid()}", 30400, tmp_path / "rta.pcap"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        run = ["ip", "netns", "exec", ns]
        subprocess.run([*run, "ip", "link", "set", "lo", "up"], check=True)
        subprocess.run([*run, "nft", "-f", "-"], check=True, text=True, input=(
            "table inet rta {\n chain incoming {\n  type filter hook input priority 0;\n"
            f"  tcp dport {port + 1} tcp flags rst drop\n }}\n}}\n"))
        dump = subprocess.Popen([*run, "tcpdump", "-i", "lo", "-n", "-U", "-s", "128", "-w",
                                 str(pcap), "tcp"], stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            prog = subprocess.Popen([*run, sys.executable, "-c", REFUSED_THEN_ACCEPTED,
                                     str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True)
            time.sleep(2.5)  # the retransmitted SYN (1 s) and the transfer are done
            ss = subprocess.run([*run, "ss", "-tanH", "src", f"127.0.0.1:{port + 1}"],
                                capture_output=True, text=True, timeout=10).stdout
            out, _ = prog.communicate(ss + "\n", timeout=30)
            time.sleep(0.5)
        finally:
            dump.terminate()
            dump.wait(timeout=10)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert out.strip() == "ESTABLISHED", ss
    (flow,) = tcp_flows(str(pcap))
    flags = [e["flags"] for e in flow["events"][:4]]
    assert flags == ["S", "R.", "S", "S."], f"not the case this test makes: {flags}"
    assert flow["open"] == "three-way" and flow["close"] == "normal"
    assert flow["payload"]["client"] == 2 * 1024 * 1024
    assert flow["path"]["client"][:3] == ["SYN_SENT", "ESTABLISHED", "FIN_WAIT_1"]
    assert flow["final"] == {"client": "TIME_WAIT", "server": "CLOSED"}
    assert states_at(flow, flow["events"][1]["frame"])["client"] == "SYN_SENT"


# ----- 7. the SYN-ACK captured before its SYN ------------------------------------------------
@pytest.mark.tshark
@needs_tshark
def test_synack_before_its_syn_is_one_connection() -> None:
    # zeek tcp/handshake-reorder.pcap: 1 server S. ack 4263588411, 2 client S seq
    # 4263588410 (the SYN it answers), 3 client . ack 1, then an HTTP exchange.
    path = EXTRA / "zeek_tcp_handshake-reorder.pcap"
    flows = tcp_flows(path.name)
    assert tracker_conversations(flows) == tshark_conversations(path)
    (flow,) = flows
    assert flow["open"] == "three-way"
    assert flow["path"]["server"][:2] == ["SYN_RECEIVED", "ESTABLISHED"]
    assert flow["final"] == {"client": "TIME_WAIT", "server": "CLOSED"}
    assert capdissect_flags(path) == tshark_flags(path)  # no reused_ports


# ----- 4. idle gaps and clock jumps ----------------------------------------------------------
@pytest.mark.tshark
@needs_tshark
def test_idle_gap_does_not_split_a_connection() -> None:
    # zeek ftp/bigtransfer.pcap: the FTP control connection (client .1:59762) is quiet
    # for 151 s while the data connection moves 5 GB; then the client sends QUIT.
    path = EXTRA / "zeek_ftp_bigtransfer.pcap"
    flows = tcp_flows(path.name)
    assert tracker_conversations(flows) == tshark_conversations(path)
    control = next(f for f in flows if f["server"].endswith(":21"))
    assert control["client"] == "192.168.56.1:59762"
    assert (control["close"], control["closer"]) == ("normal", "client")


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("jump", [6 * 3600, -6 * 3600])
def test_clock_jump_keeps_the_connection_and_its_analysis(jump: int, tmp_path: Path) -> None:
    # zeek ftp/bigtransfer.pcap with the clock set forward (or back) by 6 hours from frame
    # 28 on (editcap -t): frame 28 belongs to the listing's data connection, and the
    # control connection (client .1:59762) goes on at frame 34.
    source = EXTRA / "zeek_ftp_bigtransfer.pcap"
    head, tail, path = tmp_path / "head.pcap", tmp_path / "tail.pcap", tmp_path / "jump.pcap"
    subprocess.run(["editcap", "-r", str(source), str(head), "1-27"], check=True)
    subprocess.run(["editcap", "-t", str(jump), str(source), str(tail), "1-27"], check=True)
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(path), str(head), str(tail)],
                   check=True)
    tcp, _udp, _tracker = track(path)
    assert tracker_conversations(tcp) == tshark_conversations(path)
    control = next(f for f in tcp if f["server"].endswith(":21"))
    assert control["client"] == "192.168.56.1:59762"
    # The jump changes no flag on either side: tshark never forgets, and the tracker did
    # not start the connection afresh.
    assert capdissect_flags(path) == capdissect_flags(source)
    assert tshark_flags(path) == tshark_flags(source)


@pytest.mark.tshark
@needs_tshark
def test_ack_lost_segment_after_the_sequence_numbers_wrap() -> None:
    # zeek ftp/bigtransfer.pcap: the 5 GB data connection is sliced, and its server's
    # numbers wrap past 2^32 (frame 53 seq 4294812326, frame 56 seq 238246).  tshark flags
    # the client's ACKs of unseen data in frames 54, 55, 57, 60, 64, 67 and 70; the bound
    # it moves after each report is compared as a sequence number, across the wrap.
    path = EXTRA / "zeek_ftp_bigtransfer.pcap"
    ours, theirs = capdissect_flags(path), tshark_flags(path)
    assert ours == theirs
    assert sorted(f for f, names in theirs.items() if "ack_lost_segment" in names) == [
        54, 55, 57, 60, 64, 67, 70]


# ----- 8. payload over 4 GiB -----------------------------------------------------------------
def test_payload_over_4_gib_is_counted_in_full() -> None:
    # zeek ftp/bigtransfer.pcap: the FTP listing the capture carries says rand.txt has
    # 5416666670 bytes, and the data connection (client .1:59764) transfers it.
    size = None
    with open_capture(EXTRA / "zeek_ftp_bigtransfer.pcap") as cap:
        for raw in cap:
            m = re.search(rb" (\d+) \w+ +\d+ [\d:]+ rand\.txt", raw.data)
            if m:
                size = int(m[1])
                break
    assert size is not None and size > 1 << 32
    flows = tcp_flows("zeek_ftp_bigtransfer.pcap")
    data = next(f for f in flows if f["client"] == "192.168.56.1:59764")
    assert data["payload"]["server"] == size



def capdissect(command: str, path: Path) -> str:
    return subprocess.run([*capdissect_command(), command, str(path)], capture_output=True,
                          text=True, check=True, timeout=120).stdout


# ----- 10. TSO frames with IP total length 0 -------------------------------------------------
@pytest.mark.tshark
@needs_tshark
def test_tso_frames_are_tracked_by_their_frame_length() -> None:
    # zeek krb/kerberos_tso.pcapng, its TCP stream 6 (tshark -Y "tcp.stream == 6"): the
    # sender's capture of a segmentation-offloaded frame (4 here) has IP total length 0.
    # tcpdump prints it "IP bad-len 0" (and so does `capdissect read`); tracked by the
    # frame's length as Wireshark does, it leaves no phantom gap.
    path = EXTRA / "zeek_krb_kerberos_tso-stream6.pcapng"
    assert capdissect_flags(path) == tshark_flags(path) == {}
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "ip.src",
                          "-e", "tcp.len"], capture_output=True, text=True, check=True,
                         timeout=120).stdout
    sent: dict[str, int] = {}
    for line in out.splitlines():
        src, length = line.split("\t")
        sent[src] = sent.get(src, 0) + int(length)
    (flow,) = tcp_flows(path.name)
    assert flow["payload"] == {"client": sent["172.16.0.211"], "server": sent["172.16.0.100"]}
    assert flow["open"] == "three-way" and "anomalies" not in flow
    tcpdump = subprocess.run(["tcpdump", "-n", "-r", str(path)], capture_output=True,
                             text=True, check=True, timeout=120).stdout
    assert capdissect("read", path).count("IP bad-len 0") == tcpdump.count("IP bad-len 0") == 1


@pytest.mark.tshark
@needs_tshark
def test_tcp_inside_mpls_is_tracked() -> None:
    # zeek mixed-vlan-mpls.pcap: a telnet connection inside MPLS (label 29), two HTTP
    # connections inside VLAN tags.  tshark finds the same three conversations with the
    # same frames, and the same duplicate ACK in the MPLS one.
    path = EXTRA / "zeek_mixed-vlan-mpls.pcap"
    flows = tcp_flows(path.name)
    assert tracker_conversations(flows) == tshark_conversations(path)
    assert capdissect_flags(path) == tshark_flags(path) != {}
    telnet = next(f for f in flows if f["server"] == "10.34.0.1:23")
    assert telnet["open"] == "three-way"


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("name, server", [
    # zeek tunnels/gre-sample.pcap: ping, DNS and an SSH connection inside GRE (version 0,
    # no optional fields, IPv4 in IPv4).
    ("zeek_tunnels_gre-sample.pcap", "172.28.2.3:22"),
    # zeek tunnels/vxlan-encapsulated-http.pcap: an HTTP connection inside VXLAN (UDP to
    # port 4789, VNI 1, an inner Ethernet frame).
    ("zeek_tunnels_vxlan-encapsulated-http.pcap", "54.86.237.188:80"),
])
def test_tcp_inside_gre_and_vxlan_is_tracked(name: str, server: str) -> None:
    # tshark decodes the inner TCP: the same conversations with the same frames, the
    # same analysis flags, and a complete connection in the timeline.
    path = EXTRA / name
    flows = tcp_flows(name)
    assert tracker_conversations(flows) == tshark_conversations(path) != {}
    assert capdissect_flags(path) == tshark_flags(path)
    (flow,) = [f for f in flows if f["server"] == server]
    assert (flow["open"], flow["close"]) == ("three-way", "normal")
    assert f"server {server}" in capdissect("timeline", path)


def _gre_wrapped(source: Path, target: Path, bits: int) -> None:
    """Each IP packet of *source* (Ethernet) inside GRE with the *bits* given (checksum,
    key, sequence number), in an outer IPv4 header: IPv6 with protocol type 0x86dd."""
    from capdissect.dissect.checksum import ones_sum

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    with open_capture(source) as cap:
        for number, raw in enumerate(cap, start=1):
            inner = raw.data[14:]
            ptype = {4: 0x0800, 6: 0x86DD}[inner[0] >> 4]
            fields = b""
            if bits & 0x8000:
                fields += b"\0\0\0\0"  # checksum and reserved, filled in below
            if bits & 0x2000:
                fields += struct.pack("!I", 0x2A)
            if bits & 0x1000:
                fields += struct.pack("!I", number)
            gre = bytearray(struct.pack("!HH", bits, ptype) + fields + inner)
            if bits & 0x8000:
                struct.pack_into("!H", gre, 4, ~ones_sum(bytes(gre)) & 0xFFFF)
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(gre), number, 0,
                                       64, 47, 0, bytes([192, 0, 2, 1]),
                                       bytes([192, 0, 2, 2])))
            struct.pack_into("!H", ip, 10, ~ones_sum(bytes(ip)) & 0xFFFF)
            frame = raw.data[:12] + b"\x08\x00" + bytes(ip) + bytes(gre)
            out.append(struct.pack("<IIII", raw.ts_sec, raw.ts_nsec // 1000, len(frame),
                                   len(frame)) + frame)
    target.write_bytes(b"".join(out))


@pytest.mark.tshark
@needs_tshark
@pytest.mark.parametrize("bits", [0x8000 | 0x2000 | 0x1000, 0x2000, 0x1000])
def test_gre_optional_fields_and_ipv6_inside(bits: int, tmp_path: Path) -> None:
    # No public capture found has TCP inside GRE with its optional words (RFC 2784's
    # checksum, RFC 2890's key and sequence number), and this kernel has no GRE device,
    # so the packets of a real capture (pcpp tls.pcap: one TLS connection over IPv4, one
    # over IPv6) are put inside GRE with them, an IPv6 one with protocol type 0x86dd.
    # tshark decodes the result on its own: the same conversations, the same flags.
    source = Path(__file__).resolve().parents[1] / "corpus" / "pcpp_tls.pcap"
    path = tmp_path / "gre.pcap"
    _gre_wrapped(source, path, bits)
    gre = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "gre.proto",
                          "-e", "gre.key", "-e", "gre.sequence_number", "-Y", "tcp"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    rows = [line.split("\t") for line in gre.splitlines()]
    assert {row[0] for row in rows} == {"0x0800", "0x86dd"}
    assert all((row[1] == "0x0000002a") == bool(bits & 0x2000)
               and bool(row[2]) == bool(bits & 0x1000) for row in rows)
    flows = tcp_flows(str(path))
    assert tracker_conversations(flows) == tshark_conversations(path) == \
        tshark_conversations(source)
    assert capdissect_flags(path) == tshark_flags(path) == tshark_flags(source)


# ----- TCP Fast Open (tfo_syn, tfo_ack, tfo_ignored) ----------------------------------------
def _fast_open_flags(path: Path) -> dict[int, set[str]]:
    return {frame: names for frame, names in tshark_flags(path).items()
            if any(name.startswith("tfo_") for name in names)}


@pytest.mark.tshark
@needs_tshark
def test_fast_open_flags_on_a_real_capture() -> None:
    # tests/corpus-extra/capdissect_tfo.pcap (tests/support/fastopen.py): frame 1 asks for a
    # cookie; frame 9 is a SYN with the cookie and 7 bytes, whose SYN-ACK (10) acks them;
    # frame 17 is a SYN with a stale cookie and 7 bytes, whose SYN-ACK (18) acks only the
    # SYN.  tshark flags tfo_syn, tfo_ack, tfo_syn, tfo_ignored, and so does capdissect.
    path = EXTRA / "capdissect_tfo.pcap"
    assert _fast_open_flags(path) == {9: {"tfo_syn"}, 10: {"tfo_ack"}, 17: {"tfo_syn"},
                                      18: {"tfo_ignored"}}
    assert capdissect_flags(path) == tshark_flags(path)


@pytest.mark.tshark
@needs_tshark
@pytest.mark.skipif(namespace_problem() is not None, reason=str(namespace_problem()))
def test_fast_open_flags_on_a_fresh_capture(tmp_path: Path) -> None:
    # The same three connections made again by this kernel.
    path = tmp_path / "tfo.pcap"
    fast_open_capture(path)
    flags = _fast_open_flags(path)
    assert [names for _frame, names in sorted(flags.items())] == [
        {"tfo_syn"}, {"tfo_ack"}, {"tfo_syn"}, {"tfo_ignored"}]
    assert capdissect_flags(path) == tshark_flags(path)
