"""``tcpdump -r F -w - | capdissect read - ...`` and a gzip-compressed copy of F print
exactly what ``capdissect read F ...`` prints (SPEC 3.2: stdin and gzip).

tcpdump rewrites F as a classic microsecond pcap on the way (a pcapng, a big-endian or a
nanosecond file comes out little-endian, microseconds): what is printed must not change.
Real processes, a real pipe, run in parallel.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.compare import RUN_TIMEOUT_S, capdissect_command, fixed_env, run

CORPUS = Path(__file__).parents[1] / "corpus"
FILES = [
    "lwerdna_simple_http.pcap",  # pcap, little-endian, microseconds
    "pcpp_nanosecs_big_endian.pcap",  # pcap, big-endian, nanoseconds
    "pcpp_tls.pcap",  # IPv4 and IPv6
    "lwerdna_200722_tcp_anon.pcapng",  # pcapng, little-endian
    "scapy_pfcp.pcapng",  # pcapng, big-endian, RAW
    "zeek_irc-353.pcap",  # NULL link type (the filter depends on the byte order)
]
OPTIONS = [
    pytest.param(("-nn", "-v", "-X"), id="nn-v-X"),
    pytest.param(("-ttttt", "-S", "tcp and not port 80"), id="ttttt-S-filter"),
    pytest.param(("-nn", "-c", "4", "ip6 or udp"), id="nn-c4-filter"),
]


def read_through_tcpdump_pipe(path: Path, options: tuple[str, ...]) -> tuple[str, str]:
    """``tcpdump -r PATH -w - | capdissect read - --plain OPTIONS``: (stdout, stderr)."""
    env = fixed_env()
    with subprocess.Popen(["tcpdump", "-r", str(path), "-w", "-"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
                          ) as writer:
        assert writer.stdout is not None
        try:
            reader = subprocess.run(
                [*capdissect_command(), "read", "-", "--plain", *options], stdin=writer.stdout,
                capture_output=True, env=env, timeout=RUN_TIMEOUT_S, check=False,
            )  # fmt: skip
        finally:
            writer.stdout.close()  # capdissect may stop early (-c): tcpdump then ends too
            writer.wait(RUN_TIMEOUT_S)
    assert reader.returncode == 0, reader.stderr.decode("utf-8", "replace")
    return reader.stdout.decode("latin-1"), reader.stderr.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def gzipped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gzip")
    copies = {}
    for name in FILES:
        target = folder / f"{name}.gz"
        target.write_bytes(gzip.compress((CORPUS / name).read_bytes()))
        copies[name] = target
    return copies


@pytest.mark.tcpdump
@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
@pytest.mark.parametrize("options", OPTIONS)
def test_stdin_and_gzip_print_what_the_file_prints(
    options: tuple[str, ...], gzipped: dict[str, Path]
) -> None:
    def three_ways(name: str) -> tuple[str, str, str, str]:
        direct = run([*capdissect_command(), "read", str(CORPUS / name), "--plain", *options])
        assert direct.problem() is None, direct.problem()
        piped, piped_err = read_through_tcpdump_pipe(CORPUS / name, options)
        packed = run([*capdissect_command(), "read", str(gzipped[name]), "--plain", *options])
        assert packed.problem() is None, packed.problem()
        assert "reading from file -," in piped_err
        return direct.stdout, piped, packed.stdout, name

    with ThreadPoolExecutor(max_workers=len(FILES)) as pool:
        outcomes = list(pool.map(three_ways, FILES))
    printed = 0
    for direct, piped, packed, name in outcomes:
        assert piped == direct, f"{name}: stdin from tcpdump -w - differs"
        assert packed == direct, f"{name}: the gzip copy differs"
        printed += direct.count("\n")
    assert printed > 0
