"""Sum a test-suite profile per test file: ``python benchmarks/suite_profile.py DIR``.

``DIR`` is what ``JAXRL_TEST_PROFILE=DIR pytest ...`` wrote (``tests/conftest.py``): one JSON
file per pytest process mapping each test id to its CPU seconds (``cpu``) and the seconds JAX
reported for tracing, lowering and XLA compilation (``trace``, ``lower``, ``compile``; wall
time, so they exceed ``cpu`` on a loaded machine). Prints the files by CPU, largest first;
``--against EARLIER_DIR`` adds each file's CPU in an earlier profile.
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
    parser.add_argument("--against", type=Path, default=None,
                        help="an earlier profile directory: print its CPU per file beside")
    args = parser.parse_args()
    totals = per_file(args.directory)
    before = per_file(args.against) if args.against else None
    print(f"{'cpu s':>8} {'compile s':>10} {'tests':>6}"
          + (f" {'before':>8}" if before is not None else "") + "  file "
          f"(all: {sum(t['cpu'] for t in totals.values()):.0f} s CPU, "
          f"{sum(t['tests'] for t in totals.values()):.0f} tests"
          + (f"; before: {sum(t['cpu'] for t in before.values()):.0f} s CPU"
             if before is not None else "") + ")")
    for file, total in sorted(totals.items(), key=lambda item: -item[1]["cpu"])[:args.top]:
        earlier = "" if before is None else f" {before.get(file, {}).get('cpu', 0.0):8.1f}"
        print(f"{total['cpu']:8.1f} {total['compile']:10.1f} {total['tests']:6.0f}{earlier}  "
              f"{file}")


if __name__ == "__main__":
    main()
