"""The per-group row kernels of two source trees of logitshift, in one process, one core.

    python benchmarks/row_kernels.py OLD/src [NEW/src] [--rows 2e6] [--size 100]

Loads each tree's ``_core/kernels.py`` (numba only, no other logitshift module) under its
own name and times, interleaved, each tree's ``group_row_newton`` (a Newton step's sums)
and ``group_row_terms`` (with the loss) over groups of ``--size`` rows of N(0, 1) offsets,
on the calling thread: the median of 7 calls, in nanoseconds a row. A tree whose kernels
take each group's rows as ``row_start[g]:row_start[g + 1]`` (before 2026-12-08's second
round) is called so; a newer one with its first and stopping rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import os
import statistics
import time

import numpy as np


def _kernels(tree: str, name: str):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(tree, "logitshift", "_core", "kernels.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new", nargs="?",
                        default=os.path.join(os.path.dirname(__file__), "..", "src"))
    parser.add_argument("--rows", default="2e6")
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()
    rows = int(float(args.rows)) // args.size * args.size
    groups = rows // args.size
    rng = np.random.default_rng(0)
    offsets = rng.normal(0.0, 1.0, rows)
    labels = (rng.random(rows) < 0.4).astype(np.int8)
    shifts = rng.normal(0.0, 0.3, groups)
    wanted = np.ones(groups, dtype=bool)
    start = np.arange(groups + 1, dtype=np.int64) * args.size
    out = np.zeros((groups, 7))
    calls = {}
    for label, tree in (("old", args.old), ("new", args.new)):
        kernels = _kernels(os.path.abspath(tree), f"kernels_{label}")
        for kind in ("group_row_newton", "group_row_terms"):
            kernel = getattr(kernels, kind)
            by_start = "row_start" in inspect.signature(kernel.py_func).parameters
            rows_of = (start,) if by_start else (start[:-1], start[1:])
            calls[f"{label} {kind}"] = (kernel, rows_of + (
                offsets, labels, np.empty(0), False, shifts, wanted, 0, groups, out))
    for kernel, arguments in calls.values():
        kernel(*arguments)  # compile
    times = {name: [] for name in calls}
    for _ in range(7):
        for name, (kernel, arguments) in calls.items():
            began = time.perf_counter()
            kernel(*arguments)
            times[name].append(time.perf_counter() - began)
    print(f"{rows:.0e} rows in groups of {args.size}, one core, median of 7 interleaved calls\n")
    print("| kernel | old (ns a row) | new (ns a row) | new / old |")
    print("|---|---:|---:|---:|")
    for kind in ("group_row_newton", "group_row_terms"):
        old = statistics.median(times[f"old {kind}"]) / rows * 1e9
        new = statistics.median(times[f"new {kind}"]) / rows * 1e9
        print(f"| {kind} | {old:.2f} | {new:.2f} | {new / old:.2f} |")
    print("\nLoad average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
