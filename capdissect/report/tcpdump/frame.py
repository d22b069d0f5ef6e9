"""What the tcpdump printers share: the packet being printed and tcpdump's early exit."""

from __future__ import annotations


class Cut(Exception):
    """The capture ended where tcpdump's GET_ macros would have jumped out."""

    def __init__(self, proto: str) -> None:
        super().__init__(proto)
        self.proto = proto



class Frame:
    """Per-packet printing state: the bytes, the output so far, tcpdump's protocol name."""

    __slots__ = ("buf", "link_len", "out", "proto")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.out: list[str] = []
        self.proto = ""
        self.link_len = 0
