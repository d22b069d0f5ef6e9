"""Remake the sample captures in this folder: one per lesson scenario, from real traffic.

    sudo .venv/bin/python captures/make_samples.py                 # all of them
    sudo .venv/bin/python captures/make_samples.py tcp-reset ...   # only these

Each file is made by capdissect.demo.scenarios.run_scenario over IPv4 on the lesson's
ports (TCP 30002, UDP 10001): tcpdump on lo captures while the scenario drives the
sockets, and the capture must pass the scenario's own shape check (up to 3 attempts)
before it replaces the file here.  The two simultaneous scenarios run in a network
namespace that is created and deleted for them.  Needs root, tcpdump, iproute2, nftables.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root, for an uninstalled checkout

from capdissect.demo.scenarios import SCENARIOS, run_scenario  # noqa: E402
from capdissect.errors import DemoUnavailable, ScenarioError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="SCENARIO",
                        help=f"which captures to remake (default: all of {', '.join(SCENARIOS)})")
    parser.add_argument("--out-dir", type=Path, default=HERE)
    args = parser.parse_args()
    names: list[str] = args.names or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}")
    out_dir: Path = args.out_dir
    for name in names:
        # A temporary file first: a failed run must not clobber the good capture.
        with tempfile.TemporaryDirectory(prefix="capdissect-samples-") as tmp:
            path = Path(tmp) / f"{name}.pcap"  # .pcap: tcpdump's AppArmor profile allows it
            try:
                run = run_scenario(name, path, family=4)
            except (DemoUnavailable, ScenarioError) as exc:
                raise SystemExit(f"{name}: {exc}") from None
            shutil.copyfile(path, out_dir / path.name)
        print(f"{name}.pcap: {run.packets} packets (attempt {run.attempts}): {run.shape}")


if __name__ == "__main__":
    main()
