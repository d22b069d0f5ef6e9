"""The exception tree.  Every error capdissect raises on purpose is a CapdissectError,
and every one is defined here::

    CapdissectError
    ├── CaptureError          a capture source cannot be read
    │   ├── TruncatedFile     ... it ends in the middle of a record
    │   ├── TraceError        ... strace cannot run, or the traced program failed
    │   └── DemoUnavailable   ... this machine cannot capture a lesson scenario
    ├── OutputError           an output cannot be written (the one type for that)
    ├── DissectError          Truncated, Malformed: recorded on the packet
    ├── TrackError
    ├── NoSuchFlow            a connection number the capture does not have
    ├── NotTcp                ... or one that is not TCP, where a stream is needed
    ├── SocketError           a moment the capture does not have
    ├── HandoutError          a handout that cannot be made (format, paper, Chromium)
    │   └── HandoutTooBig
    ├── ExportError           export and sql: a bad table, job count or export
    │   └── MissingExtra      an optional dependency is not installed
    └── ScenarioError         a lesson scenario did not behave as the lesson says
        └── PortInUse

Errors carry fields and format their own message; the CLI prints ``str(error)`` as
one line on stderr and exits 1.  The core never logs or prints.

The tcpdump printer's ``Cut`` (report/tcpdump/frame.py) is not here: it is not an
error but the printer's early exit, caught inside the printer and never seen outside.
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

    def __reduce__(self) -> tuple[type[OutputError], tuple[str, str]]:
        # export's worker processes send it back pickled; args holds only the message.
        return type(self), (self.target, self.reason)


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


class TraceError(CaptureError):
    """strace could not run, or the traced program failed; the message is one line."""


class DemoUnavailable(CaptureError):
    """This machine cannot capture the scenario (privilege, a missing tool, no netns)."""


class NoSuchFlow(CapdissectError):
    """The capture *name* has no connection or conversation *flow_id*."""

    def __init__(self, name: str, flow_id: int, flows: int) -> None:
        super().__init__(f"{name}: no connection or conversation {flow_id} "
                         f"(the capture has {flows})")


class NotTcp(CapdissectError):
    def __init__(self, name: str, conn: int) -> None:
        super().__init__(f"{name}: no TCP connection {conn} (see `capdissect flows`; UDP "
                         "conversations have no stream to follow)")


class SocketError(CapdissectError):
    """A moment that the capture does not have, or cannot be read as a time."""


class HandoutError(CapdissectError):
    """The handout could not be made (unknown format, no Chromium for a PDF...)."""


class HandoutTooBig(HandoutError):
    def __init__(self, name: str, max_packets: int) -> None:
        super().__init__(f"{name}: more than {max_packets} packets; a handout is for a lesson "
                         "(cut the capture, e.g. with `tcpdump -r IN -w OUT -c 200`, or pick "
                         "one connection with --conn N)")


class ExportError(CapdissectError):
    """An export or a query of one cannot go on (a bad table, no export there...)."""


class MissingExtra(ExportError):
    def __init__(self, command: str, module: str, extra: str) -> None:
        super().__init__(f"{command} needs {module}, which is not installed: "
                         f"pip install 'capdissect[{extra}]'")


class ScenarioError(CapdissectError):
    """A scenario ran but its sockets or its capture did not behave as the lesson says."""

    def __init__(self, scenario: str, reason: str) -> None:
        self.scenario = scenario
        self.reason = reason
        super().__init__(f"{scenario}: {reason}")


class PortInUse(ScenarioError):
    """The lesson's port is taken on this machine: trying again would not help."""

    def __init__(self, scenario: str, ports: tuple[int, ...]) -> None:
        taken = " or ".join(str(p) for p in ports)
        super().__init__(scenario, f"port {taken} is in use (another program, or an earlier "
                                   f"run's socket); choose a free one with --port "
                                   f"{max(ports) + 100}")
