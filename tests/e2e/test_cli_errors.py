"""Bad input: one line on stderr, exit 1, no traceback, every packet before the damage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = [str(Path(sys.executable).with_name("capdissect"))]
SAMPLE = Path(__file__).parents[1] / "corpus" / "lwerdna_simple_http.pcap"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], input=stdin.decode("latin-1") if stdin else None, capture_output=True,
        text=True, env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}, timeout=60,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("capdissect:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"GET / HTTP/1.1\r\n\r\n", "unknown file format"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "truncated capture file"),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    assert message in one_error_line(run("read", str(bad), "--plain", "-nn"))


def test_missing_file(tmp_path: Path) -> None:
    assert "No such file" in one_error_line(run("read", str(tmp_path / "nope.pcap")))


def test_truncated_file_prints_every_whole_packet(tmp_path: Path) -> None:
    whole = run("read", str(SAMPLE), "--plain", "-nn")
    assert whole.returncode == 0
    lines = whole.stdout.splitlines()
    raw = SAMPLE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) // 2])
    proc = run("read", str(cut), "--plain", "-nn")
    assert "truncated capture file" in one_error_line(proc)
    got = proc.stdout.splitlines()
    assert 0 < len(got) < len(lines)
    assert got == lines[: len(got)]


def test_stdin_reads_like_a_file() -> None:
    whole = run("read", str(SAMPLE), "--plain", "-nn")
    piped = subprocess.run([*CLI, "read", "-", "--plain", "-nn"], input=SAMPLE.read_bytes(),
                           capture_output=True, env={"TZ": "UTC"}, timeout=60)
    assert piped.returncode == 0
    assert piped.stdout.decode() == whole.stdout


def test_closed_pipe_is_quiet() -> None:
    proc = subprocess.run(f"{CLI[0]} read {SAMPLE} --plain -nn | head -1", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr
