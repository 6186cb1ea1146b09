"""A/B timing of two source trees of logitshift, in alternating fresh processes.

    python benchmarks/ab.py OLD/src NEW/src [--rounds 5] [--rows 1e7]

Each round starts one process per tree, in turn, with that tree first on ``sys.path``; the
process warms the kernels up (numba compiles or loads its cache), then times each workload
(the median of three calls) and prints the seconds. Alternating the trees round by round
spreads the machine's drift over both. The table gives, per workload, each tree's median over
the rounds and their ratio (new / old), with the spread of the per-round ratios: a change is
a regression only where the ratio's range lies above 1 by more than that spread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r'''
import json, sys, time
import numpy as np
import logitshift

rows, path = int(float(sys.argv[1])), sys.argv[2]
rng = np.random.default_rng(0)
offset = rng.normal(0.0, 2.0, rows)
y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(offset - 1.0)))).astype(np.int8)
small = slice(0, rows // 10)
group = rng.integers(0, 1000, rows // 10)
small_groups = rng.integers(0, 10000, rows // 10)  # about 100 rows a group

def median(call):
    times = []
    for _ in range(3):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[1]

work = {
    "fit, arrays": lambda: logitshift.fit(y, offset),
    "fit_file, Parquet": lambda: logitshift.fit_file(path, "y", "f"),
    "validate, arrays (n/10)": lambda: logitshift.validate(y[small], offset[small]),
    "fit_groups, 1000 groups (n/10)": lambda: logitshift.fit_groups(y[small], group,
                                                                    offset=offset[small]),
    "fit_groups, 10000 groups (n/10)": lambda: logitshift.fit_groups(
        y[small], small_groups, offset=offset[small]),
}
for call in work.values():  # compile or load the kernels
    call()
print(json.dumps({name: median(call) for name, call in work.items()}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", default="1e7")
    args = parser.parse_args()
    rows = int(float(args.rows))
    with tempfile.TemporaryDirectory() as folder:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        rng = np.random.default_rng(0)
        offset = rng.normal(0.0, 2.0, rows)
        y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(offset - 1.0)))).astype(np.int8)
        path = os.path.join(folder, "rows.parquet")
        pq.write_table(pa.table({"y": y, "f": offset}), path, row_group_size=1 << 20)
        del offset, y
        results: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
        for _ in range(args.rounds):
            for name in ("old", "new"):
                tree = os.path.abspath(getattr(args, name))
                env = {**os.environ, "PYTHONPATH": tree}
                done = subprocess.run([sys.executable, "-c", CHILD, str(rows), path], env=env,
                                      capture_output=True, text=True, check=True)
                results[name].append(json.loads(done.stdout))
    print(f"{rows:.0e} rows, {args.rounds} rounds of alternating fresh processes, "
          f"old = {args.old}, new = {args.new}\n")
    print("| workload | old (s) | new (s) | new / old | per-round ratios |")
    print("|---|---:|---:|---:|---|")
    for work in results["old"][0]:
        old = [r[work] for r in results["old"]]
        new = [r[work] for r in results["new"]]
        ratios = [b / a for a, b in zip(old, new)]
        print(f"| {work} | {statistics.median(old):.4f} | {statistics.median(new):.4f} | "
              f"{statistics.median(new) / statistics.median(old):.3f} | "
              f"{min(ratios):.2f}-{max(ratios):.2f} |")


if __name__ == "__main__":
    main()
