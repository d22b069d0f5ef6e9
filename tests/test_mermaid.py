"""Every Mermaid diagram capdissect writes, rendered by Mermaid itself (issue #18).

``timeline --mermaid`` (one ``sequenceDiagram`` per flow) and the Markdown handout (ladder,
state diagram, sequence chart) of lesson captures covering every kind of diagram go into
one Markdown file that ``mmdc`` (@mermaid-js/mermaid-cli from npm,
tests/node, installed by ``make tools``) renders with Debian's Chromium: it must exit 0,
write one SVG per diagram, and none of them may be Mermaid's error picture.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Final

import pytest

from capdissect.lesson import find_chromium

ROOT: Final = Path(__file__).resolve().parents[1]
MMDC: Final = ROOT / "tests" / "node" / "node_modules" / ".bin" / "mmdc"
# Every kind of diagram and note: TCP with crossing FINs, a simultaneous open, a reset,
# UDP with an ICMP error (mmdc takes seconds a diagram, so not all ten lessons).
CAPTURES: Final = [ROOT / "captures" / f"{name}.pcap" for name in (
    "tcp-basic", "tcp-simultaneous-open", "tcp-simultaneous-close", "tcp-reset",
    "udp-unreachable")]
pytestmark = pytest.mark.skipif(not MMDC.exists() or find_chromium() is None,
                                reason="mermaid-cli or chromium missing (make tools)")


def cli(*args: object) -> str:
    return subprocess.run([sys.executable, "-m", "capdissect", *map(str, args)],
                          capture_output=True, text=True, check=True, timeout=120).stdout


def test_every_mermaid_diagram_renders(tmp_path: Path) -> None:
    parts, blocks = ["# capdissect's Mermaid\n"], 0
    for path in CAPTURES:
        for diagram in re.split(r"\n\n(?=sequenceDiagram)", cli("timeline", "--mermaid", path)
                                .strip()):
            parts.append(f"```mermaid\n{diagram}\n```\n")
            blocks += 1
        handout = tmp_path / f"{path.stem}.md"
        cli("handout", path, "-o", handout)
        text = handout.read_text(encoding="utf-8")
        blocks += text.count("```mermaid")
        parts.append(text)
    source = tmp_path / "all.md"
    source.write_text("\n".join(parts), encoding="utf-8")
    config = tmp_path / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": find_chromium(),
                                  "args": ["--no-sandbox", "--disable-gpu"]}))
    done = subprocess.run([str(MMDC), "-p", str(config), "-i", str(source),
                           "-o", str(tmp_path / "out.md")],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    svgs = sorted(tmp_path.glob("out-*.svg"))
    assert len(svgs) == blocks >= 2 * len(CAPTURES)
    for picture in svgs:
        text = picture.read_text(encoding="utf-8")
        # Mermaid's error picture: a bomb icon and "Syntax error in text" (every SVG's
        # stylesheet names .error-icon; only the error picture has the element).
        assert "Syntax error" not in text and 'class="error-icon"' not in text, picture.name
        assert "<g" in text
