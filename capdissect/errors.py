"""The exception tree.  Every error capdissect raises on purpose is a CapdissectError.

Errors carry fields and format their own message; the CLI prints ``str(error)`` as
one line on stderr and exits 1.  The core never logs or prints.
"""

from __future__ import annotations


class CapdissectError(Exception):
    """Base of every error capdissect raises on purpose."""


class CaptureError(CapdissectError):
    """A capture source cannot be read: not a capture file, no privilege, no interface."""


class TruncatedFile(CaptureError):
    """A capture file ends in the middle of a record.

    tcpdump prints every packet before the damage and then reports the truncation;
    the readers do the same by raising this only after yielding what was whole.
    """

    def __init__(self, what: str, offset: int, need: int, have: int, name: str = "") -> None:
        self.what = what
        self.offset = offset
        self.need = need
        self.have = have
        prefix = f"{name}: " if name else ""
        super().__init__(
            f"{prefix}truncated capture file: {what} at byte {offset} needs {need} bytes, "
            f"only {have} there"
        )


class OutputError(CapdissectError):
    """An output could not be written: a full disk, a closed or broken stream, or a file
    that is also an input (writing it would destroy what is being read)."""

    def __init__(self, target: str, reason: str) -> None:
        self.target = target
        self.reason = reason
        super().__init__(f"{target}: {reason}")

    @classmethod
    def from_os(cls, target: str, exc: OSError) -> OutputError:
        return cls(target, exc.strerror or str(exc))


class DissectError(CapdissectError):
    """A packet could not be decoded; recorded on the packet, never raised past it."""


class Truncated(DissectError):
    def __init__(self, layer: str, offset: int, need: int, have: int) -> None:
        self.layer = layer
        self.offset = offset
        self.need = need
        self.have = have
        super().__init__(f"{layer}: truncated at offset {offset}: need {need} bytes, have {have}")


class Malformed(DissectError):
    def __init__(self, layer: str, offset: int, reason: str) -> None:
        self.layer = layer
        self.offset = offset
        self.reason = reason
        super().__init__(f"{layer}: malformed at offset {offset}: {reason}")


class TrackError(CapdissectError):
    """The connection tracker met something it cannot follow."""
