"""The lesson notebook (examples/lesson.ipynb), run as a learner would run it.

It is executed headless on a real Jupyter kernel (nbclient + ipykernel), with real
sockets and a real capture on loopback; its outputs must hold the ladders (SVG with the
state boxes), the netstat snapshots between the steps and the connected UDP socket
refusing a third party.  Then nbconvert turns it into HTML, and Chromium must render
that without a console error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_handout import chromium, console_lines, needs_chromium

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "lesson.ipynb"
CELL_TIMEOUT_S = 120


def _outputs(nb: Any) -> tuple[str, str, list[str]]:
    """All text, all HTML, and any errors, of the executed notebook's code cells."""
    texts: list[str] = []
    pages: list[str] = []
    errors: list[str] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type == "error":
                errors.append(f"{out.ename}: {out.evalue}")
            else:
                texts.append(out.get("data", {}).get("text/plain", ""))
                pages.append(out.get("data", {}).get("text/html", ""))
    return "\n".join(texts), "\n".join(pages), errors


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if os.geteuid() != 0 or (shutil.which("netstat") is None and shutil.which("ss") is None):
        pytest.skip("the lesson captures on loopback: needs root, and netstat or ss")
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # starts the kernel, runs every cell, shuts the kernel down
    assert client.km is None or not client.km.is_alive(), "the kernel was left running"
    assert (workdir / "tcp-lesson.pcap").stat().st_size > 24
    return nb


@pytest.mark.live
def test_the_lesson_runs_on_a_real_kernel(executed: Any) -> None:
    text, page, errors = _outputs(executed)
    assert errors == []
    # UDP: the connected socket got B's second datagram, never C's
    assert "b'B again'" in text and "hello from C" not in text.split("b'B again'")[0][-40:]
    assert "connect()ed to" in text and "port unreachable" in text
    # the kernel's netstat between the steps, through the whole TCP lesson
    for state in ("LISTEN", "ESTABLISHED", "FIN_WAIT2", "CLOSE_WAIT", "TIME_WAIT"):
        assert state in text, state
    # capdissect's netstat while the capture ran
    assert "so far (the capture is still running)" in text
    # the ladders: SVG with the state boxes, the paths, the summary line
    assert "<svg" in page
    for state in ("SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_2", "TIME_WAIT",
                  "CLOSE_WAIT", "LAST_ACK"):
        assert f">{state}</text>" in page, state
    assert "open three-way, close normal by the client" in text
    assert "SYN_SENT -&gt; ESTABLISHED -&gt; FIN_WAIT_1 -&gt; FIN_WAIT_2 -&gt; TIME_WAIT" in page
    assert "TcpState.TIME_WAIT" in text and "IPv4Address('127.0.0.1')" in text
    assert "fields of frame 4" in page  # a packet of the saved file, with its fields


@pytest.mark.live
@pytest.mark.chromium
@needs_chromium
def test_the_lesson_as_html_renders_without_console_errors(executed: Any,
                                                           tmp_path: Path) -> None:
    nbconvert = pytest.importorskip("nbconvert")
    # The "basic" template: the notebook's own HTML, without the CDN scripts (MathJax,
    # require.js) the full templates load; the page must work offline.
    body, _ = nbconvert.HTMLExporter(template_name="basic").from_notebook_node(executed)
    page = tmp_path / "lesson.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>lesson</title>"
                    f"</head><body>{body}</body></html>", encoding="utf-8")
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert console_lines(dom.stderr) == []
    assert "<svg" in dom.stdout and ">TIME_WAIT</text>" in dom.stdout
    assert "ESTABLISHED" in dom.stdout
