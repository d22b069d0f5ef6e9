"""Capture sources: files (pcap, pcapng, gzip, stdin) and, later, live interfaces."""

from capdissect.capture.files import CaptureFile, open_capture

__all__ = ["CaptureFile", "open_capture"]
