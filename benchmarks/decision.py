"""Decision curves against the calibration report in memory, and against ``fit_file`` from a
streamed Parquet file.

Run from the repository root::

    python benchmarks/decision.py                          # 1e7 rows in memory and in the file
    python benchmarks/decision.py --rows 1e6 --file-rows 1e6 --repeats 3   # quick

Scores ``f ~ N(0, 2)`` (float64) miscalibrated in both senses, labels (int8) from
``σ(0.8 f - 1.5)``, as ``benchmarks/calibration.py`` draws them. Every time is the median of
``--repeats`` runs in this process, each row's ratio taken against the baseline timed in the
same loop (``validate`` in memory, ``fit_file`` streamed). The decision curve is at the
default 99 thresholds, with both recalibrations unless said.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import logitshift

SEED = 2026


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * offsets - 1.5)))).astype(np.int8)
    return labels, offsets


def medians(rows: dict[str, callable], repeats: int) -> dict[str, float]:
    """Each callable's median time, the callables interleaved in every repeat."""
    for run in rows.values():  # compile and warm the caches
        run()
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(repeats):
        for name, run in rows.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def table(title: str, timed: dict[str, float], baseline: str, unit: str = "ms") -> str:
    scale, digits = (1e3, 1) if unit == "ms" else (1.0, 3)
    lines = [f"### {title}", "", f"| row | median ({unit}) | × {baseline} |", "|---|---:|---:|"]
    for name, seconds in timed.items():
        lines.append(f"| {name} | {seconds * scale:.{digits}f} | "
                     f"{seconds / timed[baseline]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--file-rows", type=float, default=1e7)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, "
          f"logitshift {logitshift.__version__}\n")

    if args.rows:
        n = int(args.rows)
        y, f = make_data(n)
        timed = medians({
            "`validate`": lambda: logitshift.validate(y, f),
            "`validate(decision=True)`": lambda: logitshift.validate(y, f, decision=True),
            "`decision_curve`": lambda: logitshift.decision_curve(y, f),
            "`decision_curve(recalibrate=False)`":
                lambda: logitshift.decision_curve(y, f, recalibrate=False),
        }, args.repeats)
        print(table(f"In memory: n = {n:,}, median of {args.repeats}", timed, "`validate`"))
        print()

    if args.file_rows:
        n = int(args.file_rows)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "rows.parquet"
            y, f = make_data(n)
            pq.write_table(pa.table({"label": y, "offset": f}), path)
            del y, f
            timed = medians({
                "`fit_file`": lambda: logitshift.fit_file(path, "label", "offset",
                                                          progress=False),
                "`validate_file`": lambda: logitshift.validate_file(path, "label", "offset",
                                                                    progress=False),
                "`decision_curve_file`": lambda: logitshift.decision_curve_file(
                    path, "label", "offset", progress=False),
                "`validate_file(decision=True)`": lambda: logitshift.validate_file(
                    path, "label", "offset", decision=True, progress=False),
            }, max(1, args.repeats - 2))
            curve = logitshift.decision_curve_file(path, "label", "offset", progress=False)
        print(table(f"Streamed: {n:,} rows of Parquet, median of {max(1, args.repeats - 2)}",
                    timed, "`fit_file`", unit="s"))
        print(f"\nlargest bound on the net benefit: {curve.model.bound.max():.1e} (model), "
              f"{max(net.bound.max() for net in curve.curves().values()):.1e} (any curve)")


if __name__ == "__main__":
    main()
