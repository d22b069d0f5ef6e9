"""Lesson handouts (SPEC §3.6): ``build_lesson`` gathers, ``render_html`` and
``render_markdown`` write.  Pure: the capture is read and the file written at the edge
(``capdissect/commands/handout.py``)."""

from capdissect.report.handout.html import render_html
from capdissect.report.handout.lesson import Lesson, build_lesson

__all__ = ["Lesson", "build_lesson", "render_html"]
