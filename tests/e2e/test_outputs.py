"""Outputs that never betray the user (issue #21): D8, D9, D10, D15, D16, D17.

Writing over an input is refused, whatever name the input goes by; any write error and
any closed standard stream is one line and a clean exit, never a traceback; annotate
refuses what pcapng cannot hold and does work linear in the file; a capture's comments
cannot become Markdown.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from capdissect.commands.handout import write_annotated
from capdissect.packets import RawPacket
from capdissect.sources.files import CaptureFile, open_capture
from capdissect.sources.pcapng import (
    Interface,
    enhanced_packet,
    interface_description,
    section_header,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).with_name("capdissect"))
TCP_BASIC = ROOT / "captures" / "tcp-basic.pcap"
DAMAGED = ROOT / "tests" / "damaged"
ENV = {"PATH": "/usr/bin:/bin", "TZ": "UTC"}


def shell(script: str, *args: str, stdin: int | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run *script* in bash with $CLI and *args* ($1...), so redirections are real."""
    return subprocess.run(["bash", "-c", script, "bash", *args], capture_output=True,
                          text=True, timeout=120, check=False, stdin=stdin, cwd=cwd,
                          env={**ENV, "CLI": CLI})


def one_line(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.splitlines()
    errors = [line for line in lines if line.startswith("capdissect:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def packets_in(path: Path) -> int:
    with open_capture(path) as capture:
        return sum(1 for _ in capture)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----- D8: never write over an input -------------------------------------------------------
WRITERS = [
    ('"$CLI" annotate "$1" -o "$2"', ".pcap"),
    ('"$CLI" handout "$1" -o "$2"', ".html"),
    ('"$CLI" timeline "$1" --svg "$2"', ".svg"),
    ('"$CLI" annotate - -o "$2" < "$1"', ".pcap"),
]


@pytest.mark.parametrize(("command", "suffix"), WRITERS)
@pytest.mark.parametrize("alias", ["same", "hardlink", "symlink"])
def test_writing_over_the_input_is_refused(tmp_path: Path, command: str, suffix: str,
                                           alias: str) -> None:
    source = tmp_path / f"lesson{suffix}"
    source.write_bytes(TCP_BASIC.read_bytes())
    before = digest(source)
    out = source
    if alias == "hardlink":
        out = tmp_path / f"other{suffix}"
        os.link(source, out)
    elif alias == "symlink":
        out = tmp_path / f"link{suffix}"
        out.symlink_to(source)
    line = one_line(shell(command, str(source), str(out)))
    assert "refusing to write over it" in line
    assert digest(source) == before  # the capture is still whole
    assert packets_in(source) == 11


@pytest.mark.parametrize("redirect", ["", ">&-"])  # D10: a closed stdout does not matter
def test_a_different_output_is_still_written(tmp_path: Path, redirect: str) -> None:
    out = tmp_path / "copy.pcapng"
    proc = shell(f'"$CLI" annotate "$1" -o "$2" {redirect}', str(TCP_BASIC), str(out))
    assert proc.returncode == 0, proc.stderr
    assert packets_in(out) == 11


# ----- D9: a full disk, on stdout and on files ----------------------------------------------
STDOUT_COMMANDS = [
    "read F", "read F --plain -nn", "read F --json", "read D", "flows F", "flows F --csv",
    "flows F --json", "flows D --json", "timeline F", "timeline F --json",
    "timeline F --mermaid", "sockets F", "sockets F --every", "--version", "demo --list",
]


@pytest.mark.parametrize("args", STDOUT_COMMANDS)
def test_full_disk_on_stdout_is_one_line(args: str) -> None:
    words = [str(TCP_BASIC) if w == "F" else str(DAMAGED / "D01_truncated_tcp_basic.pcap")
             if w == "D" else w for w in args.split()]
    line = one_line(shell('"$CLI" "$@" > /dev/full', *words))
    assert "No space left on device" in line


@pytest.mark.parametrize("command", [
    '"$CLI" annotate "$1" -o /dev/full',
    '"$CLI" timeline "$1" --svg /dev/full',
    'ln -s /dev/full "$2/full.html" && "$CLI" handout "$1" -o "$2/full.html"',
    'ln -s /dev/full "$2/full.md" && "$CLI" handout "$1" -o "$2/full.md"',
])
def test_full_disk_on_an_output_file_is_one_line(tmp_path: Path, command: str) -> None:
    line = one_line(shell(command, str(TCP_BASIC), str(tmp_path)))
    assert "No space left on device" in line


def test_a_reader_that_goes_away_ends_quietly() -> None:
    big = ROOT / "tests" / "corpus" / "scapy_pfcp.pcapng"
    proc = shell('"$CLI" read "$1" -v | head -n 1', str(big))
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "capdissect:" not in proc.stderr


# ----- D10: closed standard streams ---------------------------------------------------------
def test_closed_stderr_still_prints_the_output() -> None:
    normal = shell('"$CLI" read "$1" -nn', str(TCP_BASIC))
    assert normal.returncode == 0
    proc = shell('"$CLI" read "$1" -nn 2>&-', str(TCP_BASIC))
    assert proc.returncode == 0 and proc.stdout == normal.stdout
    flows = shell('"$CLI" flows "$1" --json 2>&-', str(TCP_BASIC))
    assert flows.returncode == 0 and '"packets": 11' in flows.stdout


def test_full_stderr_still_prints_the_output() -> None:
    normal = shell('"$CLI" read "$1" -nn', str(TCP_BASIC))
    proc = shell('"$CLI" read "$1" -nn 2>/dev/full', str(TCP_BASIC))
    assert proc.returncode == 0 and proc.stdout == normal.stdout


def test_closed_stderr_keeps_the_exit_status_of_a_damaged_file() -> None:
    proc = shell('"$CLI" read "$1" -nn 2>&-', str(DAMAGED / "D01_truncated_tcp_basic.pcap"))
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) > 7


@pytest.mark.parametrize("args", ["read F", "flows F --json", "timeline F", "--version"])
def test_closed_stdout_is_one_line(tmp_path: Path, args: str) -> None:
    source = tmp_path / "lesson.pcap"
    source.write_bytes(TCP_BASIC.read_bytes())
    before = digest(source)
    words = [str(source) if w == "F" else w for w in args.split()]
    line = one_line(shell('"$CLI" "$@" >&-', *words))
    assert "Bad file descriptor" in line
    assert digest(source) == before  # no file took descriptor 1 and got the output


def test_closed_stdin_is_one_line() -> None:
    line = one_line(shell('"$CLI" read - <&-'))
    assert "standard input is closed" in line


# ----- D15, D16: annotate ---------------------------------------------------------------------
def test_annotate_refuses_a_link_type_pcapng_cannot_hold(tmp_path: Path) -> None:
    out = tmp_path / "x.pcapng"
    line = one_line(shell('"$CLI" annotate "$1" -o "$2"',
                          str(DAMAGED / "D15_annotate_linktype_65537.pcap"), str(out)))
    assert "link type 65537" in line
    assert not out.exists()  # nothing half-made left behind


def test_annotate_work_is_linear_in_the_interfaces(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """D16: a packet on each of N interfaces used to copy the interface list per packet."""
    count = 3000
    source = tmp_path / "many.pcapng"
    with source.open("wb") as sink:
        sink.write(section_header("test"))
        for index in range(count):
            sink.write(interface_description(Interface(1, 262144, 10**6, 0, f"if{index}")))
            frame = bytes(12) + b"\x08\x00" + bytes(20)
            sink.write(enhanced_packet(RawPacket(index, 0, 1, len(frame), frame,
                                                 ifindex=index), index, 6, []))
    handed = [0]
    original_from = CaptureFile.interfaces_from
    original_all = CaptureFile.interfaces

    def counted_from(self: CaptureFile, known: int) -> list[Interface]:
        found = original_from(self, known)
        handed[0] += len(found)
        return found

    def counted_all(self: CaptureFile) -> list[Interface]:
        found = original_all.fget(self)  # type: ignore[attr-defined]
        handed[0] += len(found)
        return found  # type: ignore[no-any-return]

    monkeypatch.setattr(CaptureFile, "interfaces_from", counted_from)
    monkeypatch.setattr(CaptureFile, "interfaces", property(counted_all))
    out = tmp_path / "out.pcapng"
    assert write_annotated(source, out) == count
    assert handed[0] <= 2 * count  # each interface looked at once or twice, not per packet
    with open_capture(out) as copy:
        packets = list(copy)
        assert [p.ifindex for p in packets] == list(range(count))
        assert len(copy.interfaces) == count


# ----- D17: a capture's comment cannot become Markdown ---------------------------------------
def test_comment_lines_cannot_become_markdown(tmp_path: Path) -> None:
    markdown_it = pytest.importorskip("markdown_it")
    out = tmp_path / "lesson.md"
    proc = shell('"$CLI" handout "$1" -o "$2"',
                 str(DAMAGED / "D17_markdown_setext_comment.pcapng"), str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.count("PWNED") >= 10  # every comment is in the handout...
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(text)
    structure = {"heading_open", "blockquote_open", "bullet_list_open", "ordered_list_open",
                 "table_open"}
    around: list[str] = []  # the blocks open around each token
    for token in tokens:
        if token.nesting == 1:
            around.append(token.type)
        elif token.nesting == -1:
            around.pop()
        if "PWNED" not in token.content or token.type in ("fence", "code_block"):
            continue
        # An interface name sits in the summary table as escaped text; nothing from the
        # file forms a heading, a quote, a list, a table of its own, a link or emphasis.
        where = [kind for kind in around if kind in structure]
        assert where in ([], ["table_open"]), (where, token.content)
        assert where == [] or token.content.startswith("if")
        assert all(child.type == "text" for child in token.children or ()), token.content
