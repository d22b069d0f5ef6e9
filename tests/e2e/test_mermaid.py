"""Every Mermaid diagram capdissect writes, rendered by Mermaid itself (issue #18).

``timeline --mermaid`` (one ``sequenceDiagram`` per flow) and the Markdown handout (ladder,
state diagram, sequence chart) of every lesson capture go into one Markdown file that
``mmdc`` (@mermaid-js/mermaid-cli from npm, tests/node, installed by ``make tools``)
renders with Debian's Chromium: it must exit 0, write one SVG per diagram, and none of
them may be Mermaid's error picture.  A diagram written twice (the state diagram of two
lessons that pass the same states, a timeline equal to a handout's chart) is rendered
once: mmdc takes about a second a diagram, so the ten lessons' 35 diagrams are 23 renders.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import pytest

from capdissect.commands.handout import find_chromium

ROOT: Final = Path(__file__).resolve().parents[2]
MMDC: Final = ROOT / "tests" / "node" / "node_modules" / ".bin" / "mmdc"
CAPTURES: Final = sorted((ROOT / "captures").glob("*.pcap"))
pytestmark = [pytest.mark.chromium,
              pytest.mark.skipif(not MMDC.exists() or find_chromium() is None,
                                 reason="mermaid-cli or chromium missing (make tools)")]


def cli(*args: object) -> str:
    return subprocess.run([sys.executable, "-m", "capdissect", *map(str, args)],
                          capture_output=True, text=True, check=True, timeout=120).stdout


def diagrams(path: Path, folder: Path) -> list[str]:
    """The Mermaid diagrams of one capture: its timeline's, then its handout's."""
    timeline = re.split(r"\n\n(?=sequenceDiagram)", cli("timeline", "--mermaid", path).strip())
    handout = folder / f"{path.stem}.md"
    cli("handout", path, "-o", handout)
    drawn = re.findall(r"```mermaid\n(.*?)```", handout.read_text(encoding="utf-8"), re.S)
    assert len(drawn) == handout.read_text(encoding="utf-8").count("```mermaid") >= 1
    return [*timeline, *(d.strip() for d in drawn)]


def test_every_mermaid_diagram_renders(tmp_path: Path) -> None:
    assert len(CAPTURES) == 10  # the ten lessons
    with ThreadPoolExecutor(4) as pool:  # the CLI runs are a Python start-up each
        written = [d for found in pool.map(lambda p: diagrams(p, tmp_path), CAPTURES)
                   for d in found]
    distinct = list(dict.fromkeys(written))
    assert len(written) >= 2 * len(CAPTURES) and len(distinct) > len(CAPTURES)
    source = tmp_path / "all.md"
    source.write_text("# capdissect's Mermaid\n\n" + "".join(
        f"```mermaid\n{d}\n```\n\n" for d in distinct), encoding="utf-8")
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": find_chromium(),
                                  "args": ["--no-sandbox", "--disable-gpu"]}))
    done = subprocess.run([str(MMDC), "-p", str(config), "-i", str(source),
                           "-o", str(tmp_path / "out.md")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    svgs = sorted(tmp_path.glob("out-*.svg"))
    assert len(svgs) == len(distinct)
    for picture in svgs:
        text = picture.read_text(encoding="utf-8")
        # Mermaid's error picture: a bomb icon and "Syntax error in text" (every SVG's
        # stylesheet names .error-icon; only the error picture has the element).
        assert "Syntax error" not in text and 'class="error-icon"' not in text, picture.name
        assert "<g" in text
