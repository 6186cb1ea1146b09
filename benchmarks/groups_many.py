"""Random intercepts with many small groups: ``fit_groups(..., shrinkage="random")`` and
``GroupShiftFit.tau_confint()``, the two steps of ``logitshift fit --group g --shrink``.

``--rows`` rows (default 3e5) in ``--groups`` groups (default 1e5, about three rows each),
offsets ~ N(0, 1), labels from σ(offset - 1 + u_g), u_g ~ N(0, 0.6²), seeded: the median of
``--repeats`` runs (default 3) of each step, with nagq = 1 and nagq = 9, in this process
(after one untimed run that compiles the kernels), and the answers, so that two runs can be
compared digit for digit.

    python benchmarks/groups_many.py
    python benchmarks/groups_many.py --rows 3e4 --groups 1e4 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import logitshift


def _data(rows: int, groups: int, seed: int = 12) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, rows)
    offset = rng.normal(0.0, 1.0, rows)
    effect = rng.normal(0.0, 0.6, groups)
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(offset - 1.0 + effect[group])))).astype(
        np.int8)
    return y, group, offset


def _timed(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=3e5)
    parser.add_argument("--groups", type=float, default=1e5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, groups = int(args.rows), int(args.groups)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, numpy {np.__version__}\n")
    y, group, offset = _data(rows, groups)
    print(f"**Random intercepts, n = {rows:.0e}, {len(np.unique(group)):,} groups: median of "
          f"{args.repeats} runs, seconds**\n")
    print("| nagq | fit_groups | tau_confint | both | μ̂ | τ̂ | log L | τ interval (95%) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = logitshift.fit_groups(y[:3000], group[:3000], offset[:3000],
                                      shrinkage="random", nagq=9)
        small.tau_confint()  # compile
        for nagq in (1, 9):
            fit_seconds, fit = _timed(lambda: logitshift.fit_groups(
                y, group, offset, shrinkage="random", nagq=nagq), args.repeats)
            # Each run on a fresh fit, so that no run finds the last one's modes.
            fits = [logitshift.fit_groups(y, group, offset, shrinkage="random", nagq=nagq)
                    for _ in range(args.repeats)]
            runs = iter(fits)
            ci_seconds, (low, high) = _timed(lambda: next(runs).tau_confint(), args.repeats)
            print(f"| {nagq} | {fit_seconds:.2f} | {ci_seconds:.2f} | "
                  f"{fit_seconds + ci_seconds:.2f} | {fit.mean:.10f} | {fit.tau:.10f} | "
                  f"{fit.loglik:.10f} | [{low:.8f}, {high:.8f}] |")
    print()
    print("Load average at the end (1, 5, 15 min): "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
