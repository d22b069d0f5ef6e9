"""The command line: each command wires options to one library call and prints.

The console script starts in capdissect/console.py, which runs ``read``, ``flows``,
``timeline`` and ``sockets`` without building this app when it can (start-up); their
bodies are console's ``run_*``, called from here with the same arguments otherwise.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer

from capdissect._version import __version__
from capdissect.clihelp import App
from capdissect.commands.read import ReadOptions
from capdissect.commands.terminal import (
    checked_jobs,
    cli_errors,
    colour_wanted,
    given_together,
    painted,
    run_flows,
    run_read,
    run_sockets,
    run_timeline,
    say,
    write_pieces,
)

app = App(
    add_completion=False,
    no_args_is_help=True,
    help="Capture and dissect TCP and UDP: tcpdump's output, explained.",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"capdissect {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """capdissect: packet capture and dissection for TCP/IP lessons and socket debugging."""


CaptureFile = Annotated[str, typer.Argument(metavar="FILE", help="pcap or pcapng file "
                                            "(gzip too), or - for stdin.")]
WideOption = Annotated[bool, typer.Option("--wide", help="Every column (Zeek's conn_state "
                                          "and history, completeness, analysis counts), "
                                          "one line per flow, however wide.")]


# tcpdump's output options, shared by `read`, `live` and `demo` (same letters, same meaning).
NumericOption = Annotated[int, typer.Option("-n", count=True, help="Don't convert addresses "
                                            "and ports to names (-nn as in tcpdump).")]
VerboseOption = Annotated[int, typer.Option("-v", count=True, help="More detail: IP header "
                                            "fields, checksums (-vv more).")]
HexAsciiOption = Annotated[int, typer.Option("-X", count=True, help="Hex and ASCII dump of "
                                             "each packet (-XX with the link header).")]
HexOption = Annotated[int, typer.Option("-x", count=True, help="Hex dump of each packet "
                                        "(-xx with the link header).")]
LinkHeaderOption = Annotated[bool, typer.Option("-e", help="Print the link-level header.")]
AbsoluteSeqOption = Annotated[bool, typer.Option("-S", help="Absolute TCP sequence numbers.")]
NoChecksumOption = Annotated[bool, typer.Option("-K", help="Don't verify checksums.")]
TimestampOption = Annotated[int, typer.Option("-t", count=True, help="Timestamp format: -t "
                                              "none, -tt epoch, -ttt delta, -tttt date, "
                                              "-ttttt since first.")]


@app.command()
def read(
    path: CaptureFile,
    expression: Annotated[
        list[str] | None,
        typer.Argument(
            help="A tcpdump filter expression, e.g. 'tcp and port 30002' (several words "
            "are joined with spaces, as tcpdump does). Put -- before it if it starts with -.",
            show_default=False,
        ),
    ] = None,
    n: NumericOption = 0,
    v: VerboseOption = 0,
    X: HexAsciiOption = 0,
    x: HexOption = 0,
    e: LinkHeaderOption = False,
    S: AbsoluteSeqOption = False,
    K: NoChecksumOption = False,
    t: TimestampOption = 0,
    count: Annotated[int | None, typer.Option("-c", metavar="N", help="Stop after N "
                                              "packets (that pass the filter).")] = None,
    plain: Annotated[bool, typer.Option("--plain", help="Exactly tcpdump's output, "
                                        "without capdissect's annotation lines.")] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per packet (JSON "
                                       "Lines) with every decoded field; only -c and the "
                                       "filter apply.")] = False,
    jobs: Annotated[int | None, typer.Option("-j", "--jobs", metavar="N", help="Make "
                                             "the JSON lines or the annotated text in N "
                                             "processes (same output, for a large file; "
                                             "not --plain).")] = None,
) -> None:
    """Print a capture file the way `tcpdump -r FILE` does, annotated.

    Examples:

      capdissect read captures/tcp-basic.pcap -n

      capdissect read trace.pcapng --plain -nn -v -X

      capdissect read trace.pcap -nn 'tcp and port 30002'

      capdissect read trace.pcap -c 5 'tcp[tcpflags] & tcp-syn != 0'

      tcpdump -i lo -w - port 30002 | capdissect read - -n

      capdissect read captures/tcp-basic.pcap --json -c 3 | jq .tcp.flags

      capdissect read big.pcap --json -j 2 > big.jsonl
    """
    # tcpdump joins the words after the options into one expression (copy_argv).
    joined = " ".join(expression or ()).strip() or None
    run_read(path=path, options=ReadOptions(n=n, v=v, X=X, x=x, e=e, S=S, K=K, t=t,
                                            count=count, plain=plain, expression=joined,
                                            json=json, jobs=jobs))


# ----- timeline, flows, sockets: one library call each (capdissect/commands/reports.py) ----------
TrackJobsOption = Annotated[int | None, typer.Option(
    "-j", "--jobs", metavar="N", help="Track the connections in N processes, each its share "
    "(same output, for a large file).")]


def _at_most_one(**chosen: bool | int | str | None) -> None:
    given = given_together(**chosen)
    if given:
        raise typer.BadParameter(f"{' and '.join(given)} cannot be used together")


@app.command()
def timeline(
    path: CaptureFile,
    conn: Annotated[int | None, typer.Option("--conn", help="Only connection (or UDP "
                                             "conversation) N, as numbered by flows.")] = None,
    mermaid: Annotated[bool, typer.Option("--mermaid", help="A Mermaid sequenceDiagram per "
                                          "flow instead of text.")] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object with every segment "
                                       "(see the README).")] = False,
    svg: Annotated[str | None, typer.Option("--svg", metavar="OUT.svg", help="Write the "
                                            "ladders as one SVG picture to OUT.svg.")] = None,
    calls: Annotated[str | None, typer.Option("--calls", metavar="FILE.strace", help="Show "
                                              "the socket calls of strace's log (trace -w "
                                              "F.pcap keeps it as F.pcap.strace).")] = None,
    jobs: TrackJobsOption = None,
) -> None:
    """Ladder diagrams: an arrow per segment between client and server, with their states.

    Examples:

      capdissect timeline captures/tcp-basic.pcap

      capdissect timeline trace.pcap --conn 3 --mermaid > conn3.mmd

      capdissect timeline trace.pcap --json | jq '.tcp[0].events[0]'

      capdissect timeline captures/tcp-basic.pcap --svg tcp-basic.svg

      capdissect timeline big.pcap --json -j 2 > big.json
    """
    _at_most_one(mermaid=mermaid, json=json, svg=svg)
    run_timeline(path=path, conn=conn, mermaid=mermaid, json=json, svg=svg, calls=calls,
                 jobs=jobs)


@app.command()
def flows(
    path: CaptureFile,
    json: Annotated[bool, typer.Option("--json", help="One JSON object (see the README), "
                                       "a flow per line.")] = False,
    csv: Annotated[bool, typer.Option("--csv", help="CSV with a header row.")] = False,
    wide: WideOption = False,
    jobs: TrackJobsOption = None,
) -> None:
    """One row per TCP connection and UDP conversation: who, how much, how it opened and closed.

    The table fits 80 columns: each flow takes two lines, the client's above the
    server's; --wide adds Zeek's and Wireshark's columns and the analysis counts.

    Examples:

      capdissect flows captures/tcp-basic.pcap

      capdissect flows trace.pcap --wide | less -S

      capdissect flows trace.pcapng --csv > flows.csv

      capdissect flows trace.pcap --json | jq '.tcp[] | select(.close == "reset")'

      capdissect flows big.pcap --json -j 2 > big-flows.json
    """
    _at_most_one(json=json, csv=csv)
    run_flows(path=path, json=json, csv=csv, wide=wide, jobs=jobs)


@app.command()
def sockets(
    path: CaptureFile,
    at: Annotated[str | None, typer.Option("--at", metavar="TIME", help="The table at TIME: "
                                           "seconds since the first packet (0.25), a Unix "
                                           "time or an ISO date and time.")] = None,
    after: Annotated[int | None, typer.Option("--after", metavar="FRAME", help="The table "
                                              "after packet FRAME (1 is the first).")] = None,
    every: Annotated[bool, typer.Option("--every", help="A table after each packet that "
                                        "changes a socket's state.")] = False,
    jobs: TrackJobsOption = None,
) -> None:
    """What netstat -tanu would have shown: each socket's state, rebuilt from the capture.

    Without --at, --after or --every: the table at the end of the capture.

    Examples:

      capdissect sockets captures/tcp-basic.pcap --every

      capdissect sockets trace.pcap --after 3

      capdissect sockets trace.pcap --at 0.5

      capdissect sockets big.pcap --every -j 2 > big-sockets.txt
    """
    _at_most_one(at=at, after=after, every=every)
    if after is not None and after < 1:
        raise typer.BadParameter("frames count from 1", param_hint="--after")
    run_sockets(path=path, at=at, after=after, every=every, jobs=jobs)


# ----- live: capture on an interface (capdissect/commands/live.py) --------------------------------
class LiveProto(enum.StrEnum):
    tcp = "tcp"
    udp = "udp"
    all = "all"


class LiveBackend(enum.StrEnum):
    scapy = "scapy"
    tshark = "tshark"


PortOption = Annotated[list[int] | None, typer.Option(
    "--port", min=0, max=65535, show_default=False,
    help="Capture this port (repeatable): 'port P' plus the ICMP/ICMPv6 errors that "
    "quote a packet of port P.")]
HostOption = Annotated[str | None, typer.Option("--host", help="Only packets to or from "
                                                "this host ('host H').")]
IfaceOption = Annotated[str, typer.Option("-i", "--iface", help="Interface to capture on.")]
ProtoOption = Annotated[LiveProto, typer.Option("--proto", help="Only TCP or only UDP (with "
                                                "the ICMP errors about them), or all.")]
DurationOption = Annotated[float | None, typer.Option("--duration", metavar="SECONDS",
                                                      help="Stop after this many seconds.")]
BackendOption = Annotated[LiveBackend, typer.Option("--backend", help="scapy: in-process "
                                                    "AF_PACKET ring; tshark: Wireshark's "
                                                    "dumpcap.")]


@app.command()
def live(
    expression: Annotated[
        list[str] | None,
        typer.Argument(help="A tcpdump filter expression, and-ed with --port/--host/--proto "
                       "(several words are joined, as tcpdump does).", show_default=False),
    ] = None,
    port: PortOption = None,
    host: HostOption = None,
    iface: IfaceOption = "lo",
    proto: ProtoOption = LiveProto.all,
    count: Annotated[int | None, typer.Option("-c", "--count", metavar="N",
                                              help="Stop after N packets.")] = None,
    duration: DurationOption = None,
    write: Annotated[str | None, typer.Option("-w", "--write", metavar="FILE",
                                              help="Also write the packets shown to FILE: "
                                              "pcapng if it ends in .pcapng, else pcap.")
                     ] = None,
    backend: BackendOption = LiveBackend.scapy,
    buffer_size: Annotated[int, typer.Option("-B", "--buffer-size", metavar="KIB",
                                             help="Capture buffer in KiB, as tcpdump -B "
                                             "(1024 to 1048576, 1 GiB).")
                           ] = 32 * 1024,
    n: NumericOption = 0,
    v: VerboseOption = 0,
    X: HexAsciiOption = 0,
    x: HexOption = 0,
    e: LinkHeaderOption = False,
    S: AbsoluteSeqOption = False,
    K: NoChecksumOption = False,
    t: TimestampOption = 0,
    plain: Annotated[bool, typer.Option("--plain", help="Exactly tcpdump's output on stdout "
                                        "(the summary goes to stderr).")] = False,
    wide: WideOption = False,
) -> None:
    """Capture live and print each packet as it arrives, as `read` prints a file, annotated.

    Each packet is shown once: on loopback the outgoing copy is dropped, as tcpdump does.

    On stop (-c, --duration, Ctrl-C or SIGTERM) a row per connection follows, as `flows`.

    Needs root, or cap_net_raw on the interpreter (on dumpcap with --backend tshark).

    Examples:

      capdissect live --port 30002 -n

      capdissect live --port 30002 --port 30003 --proto udp -c 20 -w lesson.pcap

      capdissect live -i lo --plain -nn 'tcp[tcpflags] & tcp-syn != 0'

      capdissect live --port 30002 --backend tshark --duration 60 -w lesson.pcapng
    """
    # Imported here: only live needs the capture backends (and scapy's libpcap binding).
    from capdissect.commands import live as live_capture
    from capdissect.report.colour import highlight
    from capdissect.sources.live import option_problem

    problem = None
    if count is not None and count < 1:
        problem = f"invalid packet count {count}"
    elif t > 5:
        problem = "only -t, -tt, -ttt, -tttt and -ttttt are supported"
    if problem is not None:
        say(f"capdissect: {problem}")
        raise typer.Exit(1)
    # A usage error, checked before any privilege or interface is: exit 2.
    problem = option_problem(buffer_size, duration)
    if problem is not None:
        say(f"capdissect: {problem}")
        raise typer.Exit(2)
    joined = " ".join(expression or ()).strip() or None
    options = ReadOptions(n=n, v=v, X=X, x=x, e=e, S=S, K=K, t=t, count=count, plain=plain)
    selection = live_capture.LiveSelection(iface, tuple(port or ()), host, proto.value, joined)
    with cli_errors():
        live_capture.run(selection, options, sys.stdout, sys.stderr, backend=backend.value,
                         duration=duration, write=write, buffer_kib=buffer_size,
                         interactive=sys.stdout.isatty(),
                         paint=highlight if colour_wanted(sys.stdout) else None, wide=wide)


@app.command(context_settings={"allow_interspersed_args": False})
def trace(
    command: Annotated[list[str] | None, typer.Argument(
        help="The program to run under strace, after --: -- python3 server.py",
        show_default=False)] = None,
    pid: Annotated[list[int] | None, typer.Option(
        "--pid", min=1, show_default=False, help="Attach to this running process instead "
        "(repeatable); stop with Ctrl-C or --duration.")] = None,
    port: PortOption = None,
    host: HostOption = None,
    iface: IfaceOption = "lo",
    proto: ProtoOption = LiveProto.all,
    filter_expression: Annotated[str | None, typer.Option(
        "--filter", metavar="EXPRESSION", help="A tcpdump filter expression, and-ed with "
        "--port/--host/--proto.")] = None,
    duration: DurationOption = None,
    write: Annotated[str | None, typer.Option(
        "-w", "--write", metavar="FILE", help="Also write the packets to FILE (pcapng if it "
        "ends in .pcapng) and strace's log of the calls to FILE.strace.")] = None,
    backend: BackendOption = LiveBackend.scapy,
    json: Annotated[bool, typer.Option("--json", help="timeline --json of the capture, "
                                       "with the calls of each flow (syscalls).")] = False,
    n: NumericOption = 0,
    v: VerboseOption = 0,
    X: HexAsciiOption = 0,
    x: HexOption = 0,
    e: LinkHeaderOption = False,
    S: AbsoluteSeqOption = False,
    K: NoChecksumOption = False,
    t: TimestampOption = 0,
    plain: Annotated[bool, typer.Option("--plain", help="tcpdump's lines with only the "
                                        "calls under them.")] = False,
) -> None:
    """Run a program under strace while capturing: each socket call beside its packets.

    The program's output goes to stderr; once it ends, stdout gets the packets as `read`
    prints them with a line per call under the packet it returned after, then the
    ladders with the calls marked, then the flows table.  Needs strace, root (or
    cap_net_raw) to capture, and ptrace permission.

    Examples:

      capdissect trace --port 30002 -n -- python3 lesson.py

      capdissect trace --port 30002 --json -- ./client 127.0.0.1 30002 | jq '.tcp[0].syscalls'

      capdissect trace --port 30002 --pid 4711 --pid 4712 -w lesson.pcap

      capdissect timeline lesson.pcap --calls lesson.pcap.strace
    """
    from capdissect.commands import live as live_capture
    from capdissect.commands import trace as tracing
    from capdissect.report.colour import highlight

    problem = None
    if bool(command) == bool(pid):
        problem = "give a command after -- or --pid PID, not both and not neither"
    elif duration is not None and duration <= 0:
        problem = f"invalid duration {duration:g}: give a number of seconds above 0"
    elif t > 5:
        problem = "only -t, -tt, -ttt, -tttt and -ttttt are supported"
    if problem is not None:
        say(f"capdissect: {problem}")
        raise typer.Exit(1)
    options = ReadOptions(n=n, v=v, X=X, x=x, e=e, S=S, K=K, t=t, plain=plain)
    selection = live_capture.LiveSelection(iface, tuple(port or ()), host, proto.value,
                                           filter_expression)
    target = tracing.Target(tuple(command or ()), tuple(pid or ()))
    with cli_errors():
        outcome = tracing.run(selection, target, options, sys.stdout, sys.stderr,
                              backend=backend.value, duration=duration, write=write,
                              json=json,
                              paint=highlight if colour_wanted(sys.stdout) else None)
    if outcome is not None:
        say(f"capdissect: {outcome}")
        raise typer.Exit(1)


class QuizFormat(enum.StrEnum):
    JSON = "json"
    GIFT = "gift"


@app.command()
def quiz(
    path: Annotated[str, typer.Argument(help="pcap or pcapng file (gzip too), or - for stdin")],
    fmt: Annotated[QuizFormat, typer.Option("--format", help="json, or gift (the text format "
                                            "Moodle imports).")] = QuizFormat.JSON,
    seed: Annotated[int, typer.Option("--seed", metavar="S", help="Which packets and fields "
                                      "are asked about, and the shuffles.")] = 0,
) -> None:
    """Exercises with answers: states after a packet, next seq/ack, who closed, flags,
    a blanked field, packets to put in order.

    The same questions as the handout's, from the capture's own events.

    Examples:

      capdissect quiz captures/tcp-basic.pcap

      capdissect quiz captures/tcp-basic.pcap --format gift --seed 7 > tcp-basic.gift
    """
    from capdissect.commands.handout import quiz as make_quiz

    with cli_errors(progress=Path(path).name):
        text = make_quiz(path, fmt.value, seed)
    typer.echo(text, nl=False)


class Direction(enum.StrEnum):
    BOTH = "both"
    CLIENT = "client"
    SERVER = "server"


@app.command()
def follow(
    path: Annotated[str, typer.Argument(help="pcap or pcapng file (gzip too), or - for stdin")],
    conn: Annotated[int, typer.Option("--conn", metavar="N", help="The TCP connection, "
                                      "numbered as `flows` does.")],
    ascii_: Annotated[bool, typer.Option("--ascii", help="Printable ASCII, '.' for the rest "
                                         "(the default).")] = False,
    hex_: Annotated[bool, typer.Option("--hex", help="A hex dump per chunk, as tcpdump -X.")
                    ] = False,
    raw: Annotated[bool, typer.Option("--raw", help="One chunk a line in hex, the server's "
                                      "indented by a tab: tshark -z follow,tcp,raw.")] = False,
    direction: Annotated[Direction, typer.Option("--direction", help="Whose bytes: client, "
                                                 "server or both.")] = Direction.BOTH,
) -> None:
    """The bytes the applications sent each other, reassembled as Wireshark's Follow TCP
    Stream does: retransmissions and overlaps once, out-of-order segments in place, and
    "[N bytes missing in capture file]" where a segment was acknowledged but not captured.

    Examples:

      capdissect follow captures/tcp-basic.pcap --conn 1

      capdissect follow lesson.pcap --conn 2 --hex --direction server
    """
    from capdissect.commands.handout import follow_stream

    _at_most_one(ascii=ascii_, hex=hex_, raw=raw)
    mode = "hex" if hex_ else "raw" if raw else "ascii"
    with cli_errors(progress=Path(path).name):
        text = follow_stream(path, conn, mode, direction.value)
    typer.echo(text, nl=False)


class GraphKind(enum.StrEnum):
    TSG = "tsg"
    RTT = "rtt"
    THROUGHPUT = "throughput"
    INFLIGHT = "inflight"
    WINDOW = "window"


class Side(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"


@app.command()
def graph(
    path: Annotated[str, typer.Argument(help="pcap or pcapng file (gzip too), or - for stdin")],
    kind: Annotated[GraphKind, typer.Option("--kind", help="tsg (time-sequence), rtt, "
                                            "throughput, inflight or window.")],
    conn: Annotated[int | None, typer.Option("--conn", metavar="N", help="The TCP connection "
                                             "(see `flows`); the first by default.")] = None,
    out: Annotated[str | None, typer.Option("-o", "--output", metavar="OUT.svg",
                                            help="Write the graph as SVG.")] = None,
    direction: Annotated[Side | None, typer.Option("--direction", help="Whose data: client "
                                                   "or server (default: who sent more).")
                         ] = None,
    tsv: Annotated[bool, typer.Option("--tsv", help="Every plotted point, tab-separated "
                                      "(series, packet, time, value).")] = False,
) -> None:
    """One connection over time: sequence numbers (tcptrace's time-sequence graph), RTT,
    throughput, bytes in flight or the advertised windows.

    RTT and bytes in flight follow Wireshark's rules (tcp.analysis.ack_rtt and
    tcp.analysis.bytes_in_flight). Without -o, a text plot on the terminal.

    Examples:

      capdissect graph captures/tcp-basic.pcap --kind tsg -o tsg.svg

      capdissect graph transfer.pcap --conn 2 --kind inflight
    """
    from capdissect.commands.handout import graph as make_graph

    _at_most_one(output=out, tsv=tsv)
    with cli_errors(progress=Path(path).name):
        text = make_graph(path, kind.value, conn, out, direction.value if direction else None,
                          tsv)
    if out is not None:
        typer.echo(f"wrote {out}", err=True)
    typer.echo(text, nl=False)


class Paper(enum.StrEnum):
    A4 = "a4"
    LETTER = "letter"


@app.command()
def handout(
    path: CaptureFile,
    out: Annotated[str, typer.Option("-o", "--output", metavar="OUT",
                                     help="The handout: OUT.html, OUT.md or OUT.pdf.")],
    title: Annotated[str | None, typer.Option("--title", help="The handout's title.")] = None,
    conn: Annotated[int | None, typer.Option("--conn", metavar="N", help="Only connection or "
                                             "conversation N (see `flows`).")] = None,
    calls: Annotated[str | None, typer.Option("--calls", metavar="FILE.strace", help="The "
                                              "socket calls of strace's log beside the "
                                              "packets (trace -w F.pcap keeps it as "
                                              "F.pcap.strace).")] = None,
    paper: Annotated[Paper, typer.Option("--paper", help="Page size of the PDF (and of the "
                                         "HTML printed).")] = Paper.LETTER,
    jobs: Annotated[int | None, typer.Option(
        "-j", "--jobs", metavar="N", help="With --conn, find the connection in N processes, "
        "each tracking its share (same handout, for a large file).")] = None,
) -> None:
    """Write a lesson handout of a capture: ladders, state diagram, every packet explained.

    The format follows OUT's suffix: .html (one self-contained page, no scripts), .md
    (GitHub Markdown with Mermaid diagrams) or .pdf (the HTML printed by headless
    Chromium).

    Examples:

      capdissect handout captures/tcp-basic.pcap -o tcp-basic.html

      capdissect handout lesson.pcapng -o lesson.md --title "Lesson 3: UDP" --conn 2
    """
    from capdissect.commands.handout import write_handout  # only this command needs the renderers

    processes = checked_jobs(path, jobs)
    with cli_errors(progress=Path(path).name):
        written = write_handout(path, out, title=title, conn=conn, calls=calls,
                                paper=paper.value, jobs=processes)
    say(f"wrote {written}")


@app.command()
def annotate(
    path: CaptureFile,
    out: Annotated[str, typer.Option("-o", "--output", metavar="OUT.pcapng",
                                     help="The annotated copy (always pcapng).")],
    calls: Annotated[str | None, typer.Option("--calls", metavar="FILE.strace", help="Add "
                                              "the socket calls of strace's log (trace -w "
                                              "F.pcap keeps it as F.pcap.strace).")] = None,
) -> None:
    """Copy a capture to pcapng with each packet's annotation as its comment.

    Wireshark shows the comments (Packet comments), and so does
    `tshark -r OUT.pcapng -T fields -e frame.comment`. Timestamps, link types and
    interfaces are kept.

    Example:

      capdissect annotate captures/tcp-basic.pcap -o tcp-basic.pcapng
    """
    from capdissect.commands.handout import write_annotated

    with cli_errors(progress=Path(path).name):
        count = write_annotated(path, out, calls)
    say(f"wrote {count} annotated packets to {out}")


@app.command()
def demo(
    scenario: Annotated[str | None, typer.Argument(help="The lesson scenario (see --list).")]
    = None,
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    write: Annotated[Path | None, typer.Option("--write", "-w", metavar="F.pcap",
                                               help="Keep the capture in F.pcap.")] = None,
    handout_out: Annotated[Path | None, typer.Option("--handout", metavar="OUT",
                                                     help="Also write the lesson handout "
                                                     "(.html, .md or .pdf).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="The server's port (default: "
                                             "the lesson's, 30002 for TCP).")] = None,
    ipv6: Annotated[bool, typer.Option("--ipv6", "-6", help="Run it over ::1.")] = False,
    n: NumericOption = 1,
    v: VerboseOption = 0,
    X: HexAsciiOption = 0,
) -> None:
    """Run a lesson with real sockets on loopback, capture it, and explain it.

    Prints the packets (as tcpdump would, annotated), the timeline and netstat's view
    after each change.  Without capture privilege it replays the bundled capture from
    captures/ and says so.  The crossing scenarios run in a network namespace that the
    demo creates and always deletes.

    Examples:

      capdissect demo tcp-basic

      capdissect demo --list

      capdissect demo udp-connected --write udp.pcap --handout udp.html
    """
    from capdissect.demo.present import demo_pieces, scenario_list

    if list_ or scenario is None:
        for line in scenario_list():
            typer.echo(line)
        return
    options = ReadOptions(n=n, v=v, X=X)
    with cli_errors():
        write_pieces(painted(demo_pieces(scenario, family=6 if ipv6 else 4, port=port, write=write,
                           handout=handout_out, options=options,
                           notice=say)))


# ----- export and sql: Parquet and DuckDB (capdissect/export/, extras sql and scale) -----
@app.command()
def export(
    inputs: Annotated[list[str], typer.Argument(help="Capture files, directories (every "
                                                "file under them) or glob patterns.",
                                                metavar="FILE|DIR|GLOB...")],
    out: Annotated[str, typer.Option("-o", "--output", metavar="OUT", help="The export: a "
                                     "directory, or an fsspec URL (s3://...) the workers "
                                     "share.")],
    tables: Annotated[str, typer.Option("--tables", help="Which tables, comma-separated "
                                        "(files is always written).")
                      ] = "packets,flows,events,sockets",
    jobs: Annotated[int, typer.Option("-j", "--jobs", metavar="N", help="Convert files in "
                                      "N processes.")] = 1,
    continuous: Annotated[bool, typer.Option("--continuous", help="The files, in timestamp "
                                             "order, are one capture (rotated files): a "
                                             "connection spanning them is one flow.")
                          ] = False,
    scheduler: Annotated[str | None, typer.Option("--scheduler", metavar="tcp://HOST:PORT",
                                                  help="Run one task per file on this Dask "
                                                  "cluster.")] = None,
) -> None:
    """Write Parquet tables (packets, flows, events, sockets, files) of many captures.

    One partition per capture file (per --continuous group) in each table, zstd, the
    schema of docs/export-schema.md.  A damaged file exports what is readable and its
    error goes to the files table; the others go on; the exit status is then 1.
    Needs the sql extra (pip install 'capdissect[sql]'); --scheduler the scale extra
    ('capdissect[scale]').

    Examples:

      capdissect export captures/ -o class.parquet

      capdissect export 'trace-*.pcap' --continuous -o week -j 4

      capdissect export /shared/caps -o /shared/out --scheduler tcp://127.0.0.1:8786
    """
    from capdissect.commands.progress import CountBar
    from capdissect.export import load

    names = [t.strip() for t in tables.split(",") if t.strip()]
    bar = CountBar(sys.stderr, "export") if sys.stderr.isatty() else None
    with cli_errors(progress="export" if jobs == 1 and scheduler is None else None):
        export_run = load("capdissect.export.run", "export")
        try:
            summary = export_run.export(inputs, out, names, processes=jobs,
                                        continuous=continuous, scheduler=scheduler,
                                        progress=bar)
        finally:
            if bar is not None:
                bar.clear()
    files = sum(len(result.files) for result in summary.results)
    say(f"exported {summary.packets:,} packets of {files} files to {out}")
    for error in summary.errors:
        say(f"capdissect: {error}")
    if summary.errors:
        raise typer.Exit(1)


class SqlFormat(enum.StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def sql(
    out: Annotated[str, typer.Argument(help="An export (capdissect export -o OUT).")],
    query: Annotated[str | None, typer.Argument(help="The SQL query (DuckDB's dialect).")
                     ] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="A prompt: one "
                                              "query after another.")] = False,
    fmt: Annotated[SqlFormat, typer.Option("--format", help="How to print the result.")
                   ] = SqlFormat.table,
) -> None:
    """Query an export with SQL (DuckDB, embedded): views packets, flows, events, sockets, files.

    Examples:

      capdissect sql class.parquet "SELECT open, count(*) FROM flows GROUP BY open"

      capdissect sql week "SELECT * FROM files WHERE error IS NOT NULL" --format csv

      capdissect sql class.parquet --interactive
    """
    from capdissect.export import load

    if (query is None) == (not interactive):
        raise typer.BadParameter("give a query, or --interactive (not both)")
    with cli_errors():
        export_sql = load("capdissect.export.sql", "sql")
        if interactive:
            export_sql.interactive(out)
        else:
            write_pieces(export_sql.query(out, query or "", fmt.value))

