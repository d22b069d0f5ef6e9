"""Capture sources: files (pcap, pcapng, gzip, stdin) and live interfaces (``live.py``)."""

from capdissect.sources.files import CaptureFile, open_capture

__all__ = ["CaptureFile", "open_capture"]
