"""Do any two text elements of an SVG figure overlap?  Asked of Chromium's own layout.

The figure is put in a page with a small script that measures every ``<text>`` with
``getBoundingClientRect`` (the box the reader sees, after fonts and anchors) and writes
the pairs that intersect into the DOM, which ``--dump-dom`` then prints.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Final

from capdissect.commands.handout import CHROMIUM_FLAGS, find_chromium

_SCRIPT: Final = """
<script>
const boxes = [...document.querySelectorAll('svg text')].map(t => {
  const r = t.getBoundingClientRect();
  return {text: t.textContent, l: r.left, t: r.top, r: r.right, b: r.bottom};
}).filter(b => b.r > b.l && b.b > b.t);
const hits = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], c = boxes[j];
  if (a.l < c.r - 0.5 && c.l < a.r - 0.5 && a.t < c.b - 0.5 && c.t < a.b - 0.5)
    hits.push([a.text, c.text]);
}
const out = document.createElement('pre');
out.id = 'overlaps';
out.textContent = JSON.stringify({texts: boxes.length, hits: hits});
document.body.appendChild(out);
</script>
"""


def text_overlaps(figures: list[str], tmp: Path) -> tuple[int, list[list[str]]]:
    """(how many text elements were measured, the pairs whose boxes intersect)."""
    chromium = find_chromium()
    assert chromium is not None
    page = tmp / "figures.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                    + "".join(f"<div>{f}</div>" for f in figures) + _SCRIPT + "</body></html>",
                    encoding="utf-8")
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile-svg",
                           "--dump-dom", page.as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="overlaps">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, done.stderr[-2000:]
    result = json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<")
                        .replace("&gt;", ">"))
    return result["texts"], result["hits"]
