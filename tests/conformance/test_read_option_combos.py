"""No option combination of ``capdissect read`` ends in a traceback (SPEC 3: a user error
is one line on stderr and exit status 1, a usage error exit status 2).

Two layers: a list of combinations, valid and invalid, each with the exit status and
message tcpdump's user would expect, run as real processes on a few files; then a few
hundred seeded random combinations through the typer app in process (cheap), which
must end with status 0, 1 or 2 and no exception of ours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from typer.testing import CliRunner

from capdissect.cli import app
from tests.support.compare import Run, capdissect_command, run

CORPUS = Path(__file__).parents[1] / "corpus"
FILES = ["pcpp_tls.pcap", "pcpp_IcmpPackets.pcapng"]
BANNER_PREFIXES = ("reading from file ", "Warning: interface names")

# (words after `read FILE`, expected exit status, a piece of the message for 1 and 2)
CASES: list[tuple[tuple[str, ...], int, str]] = [
    (("--plain", "-nn"), 0, ""),
    (("--plain", "-n", "-v", "-X", "-e"), 0, ""),
    (("--plain", "-nnn", "-vvvv", "-XXX", "-xxx"), 0, ""),  # tcpdump counts, caps quietly
    (("--plain", "-x", "-X", "-t", "-t"), 0, ""),
    (("--plain", "-c", "1"), 0, ""),
    (("--plain", "-c", "99999999999999999999"), 0, ""),
    (("--plain", "-S", "-K", "-e", "-ttttt", "tcp"), 0, ""),
    (("--plain", "-nn", "tcp", "and", "port", "443"), 0, ""),  # several words, as tcpdump
    (("--plain", "not", "(", "tcp", "or", "udp", ")"), 0, ""),
    (("--plain", "-c", "5", "udp"), 0, ""),
    (("--plain", "tcp[100000:4] = 1"), 0, ""),  # past every packet: nothing matches
    (("--plain", "ip6 protochain 6"), 0, ""),
    (("--plain", "-nn", ""), 0, ""),  # an empty expression filters nothing
    (("-n", "tcp"), 0, ""),  # annotated, filtered
    (("-vv", "-e", "-c", "3"), 0, ""),
    (("--plain", "tcp and"), 1, "can't parse filter expression"),
    (("--plain", "--", "-nn"), 1, "can't parse filter expression"),
    (("--plain", "port 99999"), 1, "illegal port number"),
    (("--plain", "vlan 5000"), 1, "VLAN tag 5000"),
    (("--plain", "inbound"), 1, "not supported"),
    (("--plain", "-c", "0"), 1, "invalid packet count 0"),
    (("--plain", "-c", "-1"), 1, "invalid packet count -1"),
    (("--plain", "-tttttt"), 1, "only -t, -tt, -ttt, -tttt and -ttttt"),
    (("--plain", "-Q"), 2, "No such option"),
    (("--plain", "--bogus"), 2, "No such option"),
    (("--plain", "-c"), 2, "requires an argument"),
    (("--plain", "-c", "x"), 2, "-c"),
    (("--plain", "-c", "1.5"), 2, "-c"),
    (("--json-please",), 2, "No such option"),
]  # fmt: skip


def judge(result: Run, expected: int, message: str) -> str | None:
    """What is wrong with *result*, or None."""
    if "Traceback" in result.stderr:
        return f"traceback:\n{result.stderr[-2000:]}"
    if result.timed_out:
        return "timed out"
    if result.returncode != expected:
        return f"exit {result.returncode}, expected {expected}; stderr:\n{result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if expected == 1:
        errors = [line for line in lines if not line.startswith(BANNER_PREFIXES)]
        if len(errors) != 1 or not errors[0].startswith("capdissect: "):
            return f"not one error line:\n{result.stderr}"
        if message not in errors[0]:
            return f"{message!r} not in {errors[0]!r}"
        if result.stdout:
            return f"printed packets before the error:\n{result.stdout[:500]}"
    elif expected == 2:  # typer's own message (with "Usage:" for most)
        if message not in result.stderr or result.stdout:
            return f"no usage message with {message!r}:\n{result.stderr}"
    elif any(not line.startswith(BANNER_PREFIXES) for line in lines):
        return f"unexpected stderr:\n{result.stderr}"
    return None


def test_listed_combinations_as_real_processes() -> None:
    jobs = [(name, words, expected, message)
            for name in FILES for words, expected, message in CASES]

    def one(job: tuple[str, tuple[str, ...], int, str]) -> str | None:
        name, words, expected, message = job
        result = run([*capdissect_command(), "read", str(CORPUS / name), *words])
        problem = judge(result, expected, message)
        return None if problem is None else f"read {name} {' '.join(words)}: {problem}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = [p for p in pool.map(one, jobs) if p is not None]
    assert not problems, "\n\n".join(problems[:5])


def test_missing_file_with_a_filter_is_one_line() -> None:
    result = run([*capdissect_command(), "read", str(CORPUS / "nope.pcap"), "tcp"])
    assert judge(result, 1, "No such file") is None, result.stderr


FLAG_POOL: Sequence[tuple[str, ...]] = [
    ("-n",), ("-nn",), ("-v",), ("-vv",), ("-vvv",), ("-x",), ("-xx",), ("-X",), ("-XX",),
    ("-e",), ("-S",), ("-K",), ("-t",), ("-tt",), ("-ttt",), ("-tttt",), ("-ttttt",),
    ("-tttttt",), ("-c", "1"), ("-c", "3"), ("-c", "0"), ("-c", "-2"), ("-c",), ("--plain",),
    ("--plain",), ("--nope",), ("-Z",),
]  # fmt: skip
EXPRESSION_POOL: Sequence[tuple[str, ...]] = [
    (), (), ("tcp",), ("udp", "and", "port", "53"), ("tcp and",), ("ip6 protochain 6",),
    ("vlan",), ("not (tcp or udp)",), ("icmp[icmptype] == icmp-echo",), ("tcp[",),
    ("len", ">", "100"), ("ether", "proto", "\\arp"), ("",), ("greater",),
]  # fmt: skip
RANDOM_FILES = ["pcpp_tls.pcap", "pcpp_IcmpPackets.pcapng", "zeek_irc-353.pcap",
                "tcpdump_mptcp-v1.pcap", "zeek_icmp_icmp6-mldv2.pcap"]


def random_combinations(count: int, seed: int = 3) -> list[list[str]]:
    rng = random.Random(seed)
    combos = []
    for _ in range(count):
        words: list[str] = []
        for flags in rng.sample(FLAG_POOL, rng.randint(0, 5)):
            words += flags
        expression = list(rng.choice(EXPRESSION_POOL))
        # the expression may come before, between or after the options
        cut = rng.randint(0, len(words))
        combos.append([*words[:cut], *expression, *words[cut:]])
    return combos


def test_random_combinations_in_process() -> None:
    runner = CliRunner()
    problems = []
    statuses: set[int] = set()
    for index, words in enumerate(random_combinations(240)):
        name = RANDOM_FILES[index % len(RANDOM_FILES)]
        stdin = None
        path = str(CORPUS / name)
        if index % 7 == 0:  # some from stdin
            stdin, path = (CORPUS / name).read_bytes(), "-"
        result = runner.invoke(app, ["read", path, *words], input=stdin)
        statuses.add(result.exit_code)
        crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
        if crashed or result.exit_code not in (0, 1, 2):
            problems.append(f"read {path} {' '.join(words)}: exit {result.exit_code}, "
                            f"{result.exception!r}")
    assert not problems, "\n".join(problems[:10])
    assert statuses == {0, 1, 2}  # the sample reaches every outcome
