"""Every public result on a fixed set of inputs, printed with its numbers in hexadecimal.

A refactoring that must not change a single result is checked by running this script on the
tree before and on the tree after, and comparing the two outputs byte for byte:

    python benchmarks/fingerprint.py > before.txt      # on the old tree
    python benchmarks/fingerprint.py > after.txt       # on the new tree
    cmp before.txt after.txt

It covers every estimator (shift, slope, report, groups with and without random intercepts)
through every source (arrays, tables, files, standard input through the command line, Dask),
their statistics (intervals, tests, O/E, the curve), the sketch's bytes and the command line's
JSON. Dask runs on its synchronous scheduler, so the order of merges is fixed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def canonical(value: Any) -> Any:
    """``value`` with every float written exactly (``float.hex``), recursively."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return value
    if isinstance(value, (float, np.floating)):
        return float(value).hex()
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, np.ndarray):
        return [canonical(item) for item in value.tolist()]
    if isinstance(value, dict):
        return {str(key): canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    if dataclasses.is_dataclass(value):
        return canonical(dataclasses.asdict(value))
    if hasattr(value, "to_dict"):
        return canonical(value.to_dict())
    return repr(value)


def show(name: str, compute: Any) -> None:
    """Print ``name`` and the canonical form of ``compute()``, or the error it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = canonical(compute())
        except Exception as error:  # the error is part of the fingerprint
            value = f"{type(error).__name__}: {error}"
    value = json.dumps(value, sort_keys=True)
    for folder in FOLDERS:  # temporary paths differ from run to run
        value = value.replace(folder, "<tmp>")
    said = sorted({str(w.message) for w in caught})
    print(name, value, json.dumps(said))


FOLDERS: list[str] = []


def shift_statistics(result: Any) -> dict[str, Any]:
    return {"fit": result.to_dict(), "profile": result.confint(),
            "wald": result.confint(method="wald"), "lr": result.lr_test(),
            "oe": result.observed_expected, "loss_at": result.loss_at(0.25)}


def slope_statistics(result: Any) -> dict[str, Any]:
    return {"fit": result.to_dict(), "profile": result.confint(),
            "wald": result.confint(method="wald")}


def group_statistics(result: Any) -> dict[str, Any]:
    random = result.shrinkage == "random"
    out = {"fit": result.to_dict(), "lr": result.lr_test(), "pooled": result.pooled.to_dict(),
           "first": shift_statistics(result.fit_of(result.groups[0]))
           if np.isfinite(result.shift[0]) else None,
           "predict": result.predict_shift(list(result.groups[:3])) if random else None}
    if random:
        out["tau_ci"] = result.tau_confint()
    return out


def data(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    offset = rng.normal(0.0, 2.0, n)
    group = rng.integers(0, 12, n)
    effect = rng.normal(0.0, 0.5, 12)[group]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.8 * offset - 0.7 + effect)))).astype(np.int8)
    weight = rng.integers(1, 4, n).astype(np.float64)
    return {"y": y, "f": offset, "w": weight, "g": group, "p": 1.0 / (1.0 + np.exp(-offset)),
            "soft": rng.random(n)}


def main() -> None:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    import logitshift

    rows = data(3000, 1)
    y, f, w, g, p, soft = (rows[k] for k in ("y", "f", "w", "g", "p", "soft"))
    frame = pd.DataFrame(rows)
    ls = logitshift

    # Arrays, every estimator and option.
    show("fit/none", lambda: shift_statistics(ls.fit(y)))
    show("fit/const", lambda: shift_statistics(ls.fit(y, 0.3, w)))
    show("fit/offset", lambda: shift_statistics(ls.fit(y, f)))
    show("fit/weight", lambda: shift_statistics(ls.fit(y, f, w)))
    show("fit/soft", lambda: shift_statistics(ls.fit(soft, f, w, se_type="robust")))
    show("fit/newton", lambda: shift_statistics(ls.fit(y, f, w, method="newton")))
    show("fit/prob", lambda: shift_statistics(ls.fit(y, p, offset_is="probability")))
    show("fit/pseudo", lambda: shift_statistics(ls.fit(np.zeros(50), f[:50], pseudo_count=0.5)))
    show("fit/wide", lambda: shift_statistics(ls.fit(y[:200], f[:200] * 1e6)))
    show("fit/bad", lambda: ls.fit(y, np.where(np.arange(3000) == 7, np.nan, f)))
    show("slope", lambda: slope_statistics(ls.fit_slope(y, f, w)))
    show("slope/robust", lambda: slope_statistics(ls.fit_slope(soft, f, se_type="robust")))
    show("slope/steep", lambda: slope_statistics(ls.fit_slope(y, f * 0.1)))
    show("slope/const", lambda: ls.fit_slope(y, 0.5))
    show("validate", lambda: ls.validate(y, f, w))
    show("validate/prob", lambda: ls.validate(y, p, offset_is="probability", bins=7,
                                              level=0.9))
    show("validate/robust", lambda: ls.validate(soft, f, se_type="robust"))
    show("groups", lambda: group_statistics(ls.fit_groups(y, g, f, w)))
    show("groups/random", lambda: group_statistics(
        ls.fit_groups(y, g, offset=f, shrinkage="random")))
    show("groups/agq", lambda: group_statistics(
        ls.fit_groups(y, g.astype(str), offset=f, shrinkage="random", nagq=5)))
    show("groups/levels", lambda: group_statistics(
        ls.fit_groups(y, g, offset=f, levels=[f"L{i}" for i in range(12)])))

    # Tables.
    show("frame/fit", lambda: shift_statistics(ls.fit_frame(frame, "y", "f", "w")))
    show("frame/slope", lambda: slope_statistics(ls.fit_slope_frame(frame, "y", "f")))
    show("frame/validate", lambda: ls.validate_frame(frame, "y", "p", offset_is="probability"))
    show("frame/groups", lambda: group_statistics(ls.fit_groups_frame(frame, "y", "g", "f")))
    show("arrow/fit", lambda: shift_statistics(
        ls.fit_frame(pa.Table.from_pandas(frame), "y", "f", "w")))
    show("frame/missing", lambda: ls.fit_frame(frame, "y", "nope"))

    with tempfile.TemporaryDirectory() as folder:
        FOLDERS.append(folder)
        parquet, csv = Path(folder, "rows.parquet"), Path(folder, "rows.csv")
        pq.write_table(pa.Table.from_pandas(frame), parquet, row_group_size=700)
        frame.to_csv(csv, index=False)
        for name, path in (("parquet", parquet), ("csv", csv)):
            show(f"{name}/fit", lambda: shift_statistics(
                ls.fit_file(path, "y", "f", "w", batch_rows=512)))
            show(f"{name}/slope", lambda: slope_statistics(ls.fit_slope_file(path, "y", "f")))
            show(f"{name}/validate", lambda: ls.validate_file(path, "y", "f", "w"))
            show(f"{name}/groups", lambda: group_statistics(
                ls.fit_groups_file(path, "y", "g", "f", shrinkage="random")))
        show("file/missing", lambda: ls.fit_file(csv, "y", "nope"))
        sketch = ls.Sketch(robust=True, histogram=True).update(y, f, w)
        show("sketch/bytes", lambda: sketch.to_bytes())
        show("sketch/solve", lambda: (sketch.solve().to_dict(), sketch.solve_slope().to_dict(),
                                      sketch.validate()))
        for arguments in (["fit", str(csv), "--label", "y", "--offset", "f", "--json"],
                          ["validate", str(parquet), "--label", "y", "--offset", "f", "--json"],
                          ["fit", "-", "--label", "y", "--offset", "f", "--group", "g",
                           "--shrink", "--json"]):
            stdin = csv.read_bytes() if "-" in arguments else None
            done = subprocess.run([sys.executable, "-m", "logitshift", *arguments],
                                  input=stdin, capture_output=True)
            show("cli/" + " ".join(arguments[:1] + arguments[2:]).replace(folder, ""),
                 lambda: (done.returncode, done.stdout.decode().replace(folder, ""),
                          done.stderr.decode().replace(folder, "")))

    # Dask, on the synchronous scheduler.
    try:
        import dask
        import dask.array as da
        import dask.dataframe as dd
    except ImportError:
        return
    with dask.config.set(scheduler="synchronous"):
        dy, df_, dw, dg = (da.from_array(a, chunks=700) for a in (y, f, w, g))
        ddf = dd.from_pandas(frame, npartitions=4)
        show("dask/fit", lambda: shift_statistics(ls.fit(dy, df_, dw)))
        show("dask/slope", lambda: slope_statistics(ls.fit_slope(dy, df_)))
        show("dask/validate", lambda: ls.validate(dy, df_, dw))
        show("dask/groups", lambda: group_statistics(ls.fit_groups(dy, dg, offset=df_)))
        show("dask/frame", lambda: shift_statistics(ls.fit_frame(ddf, "y", "f", "w")))
        show("dask/frame_validate", lambda: ls.validate_frame(ddf, "y", "f"))
        show("dask/frame_groups", lambda: group_statistics(
            ls.fit_groups_frame(ddf, "y", "g", "f", shrinkage="random")))
        import logitshift.dask as lsd

        show("dask/fit_arrays", lambda: shift_statistics(lsd.fit_arrays(dy, df_)))
        show("dask/fit_frame", lambda: shift_statistics(lsd.fit_frame(ddf, "y", "f")))
        show("dask/fit_groups_arrays", lambda: group_statistics(lsd.fit_groups_arrays(dy, dg)))
        show("dask/fit_groups_frame", lambda: group_statistics(
            lsd.fit_groups_frame(ddf, "y", "g", "f")))
        show("dask/newton", lambda: ls.fit(dy, df_, method="newton"))


if __name__ == "__main__":
    with contextlib.redirect_stderr(io.StringIO()):
        main()
