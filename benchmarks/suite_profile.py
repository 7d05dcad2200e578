"""Sum a test-suite profile per test file: ``python benchmarks/suite_profile.py DIR``.

``DIR`` is what ``JAXRL_TEST_PROFILE=DIR pytest ...`` wrote (``tests/conftest.py``): one JSON
file per pytest process mapping each test id to its CPU seconds (``cpu``) and the seconds JAX
reported for tracing, lowering and XLA compilation (``trace``, ``lower``, ``compile``; wall
time, so they exceed ``cpu`` on a loaded machine). Prints the files by CPU, largest first.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path


def per_file(directory: Path) -> dict[str, dict[str, float]]:
    """``{test file: {"tests", "cpu", "trace", "lower", "compile", "compiles"}}`` summed."""
    totals: dict[str, dict[str, float]] = collections.defaultdict(
        lambda: collections.defaultdict(float))
    for path in sorted(directory.glob("profile-*.json")):
        for test, row in json.loads(path.read_text()).items():
            total = totals[test.split("::")[0]]
            total["tests"] += 1
            for name, value in row.items():
                total[name] += value
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--top", type=int, default=30, help="files to print")
    args = parser.parse_args()
    totals = per_file(args.directory)
    print(f"{'cpu s':>8} {'compile s':>10} {'tests':>6}  file "
          f"(all: {sum(t['cpu'] for t in totals.values()):.0f} s CPU, "
          f"{sum(t['tests'] for t in totals.values()):.0f} tests)")
    for file, total in sorted(totals.items(), key=lambda item: -item[1]["cpu"])[:args.top]:
        print(f"{total['cpu']:8.1f} {total['compile']:10.1f} {total['tests']:6.0f}  {file}")


if __name__ == "__main__":
    main()
