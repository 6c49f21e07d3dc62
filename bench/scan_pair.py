#!/usr/bin/python3
"""Two kbgap binaries side by side: `kbgap scan` of one real systeminfo, RUNS times each,
alternating, each binary with its own data directory (the catalog index carries the engine's
digest, so each builds and caches its own). Prints the medians and whether every answer was the
same. For judging a change to the scan's speed on a noisy machine.

Usage: bench/scan_pair.py OLD_KBGAP NEW_KBGAP [runs]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INVENTORY = os.path.join(ROOT, "data/inventories/10_21H2_x64_pro_systeminfo.txt")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    binaries = [os.path.abspath(b) for b in sys.argv[1:3]]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    with tempfile.TemporaryDirectory() as old_data, tempfile.TemporaryDirectory() as new_data:
        data = dict(zip(binaries, [old_data, new_data]))
        for b in binaries:  # import the bundled catalog and cache the index
            subprocess.run([b, "--data", data[b], "scan", INVENTORY], capture_output=True,
                           check=True)
        times = {b: [] for b in binaries}
        answers = set()
        for _ in range(runs):
            for b in binaries:
                start = time.perf_counter()
                p = subprocess.run([b, "--data", data[b], "scan", INVENTORY],
                                   capture_output=True, text=True, check=True)
                times[b].append(time.perf_counter() - start)
                answers.add(p.stdout)
    for label, b in zip(["old", "new"], binaries):
        print(f"{label}: {b}: median {statistics.median(times[b]) * 1000:.1f} ms, "
              f"min {min(times[b]) * 1000:.1f} ms over {runs} runs")
    print("same answer from both:", "yes" if len(answers) == 1 else "NO")


if __name__ == "__main__":
    main()
