"""Write ``sketch_v1.bin``: a sketch in wire-format version 1 (a JSON header, no checksum).

Run once, at commit 0ce7dd8 (the last code that wrote version 1), from the repository root:

    python tests/data/make_sketch_v1.py

`tests/test_sketch.py` imports `legacy_rows` from this file, so it can check that the stored
sketch solves to the same shift as a fit of those rows with the code of today. Two chunks are merged,
with weights, soft labels and an infinite offset, so that every field of the header is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import logitshift


def legacy_rows() -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20240610)
    chunks = []
    for n_rows in (300, 200):
        offsets = rng.normal(-1.0, 2.0, n_rows)
        labels = (rng.random(n_rows) < 1 / (1 + np.exp(1.0 - offsets))).astype(np.float64)
        labels[:5] = 0.25  # soft labels
        weights = rng.uniform(0.5, 2.0, n_rows)
        chunks.append((labels, offsets, weights))
    chunks[1][0][0], chunks[1][1][0] = 1.0, np.inf  # a certain positive, in no cell
    return chunks


if __name__ == "__main__":
    here = Path(__file__).parent
    chunks = legacy_rows()
    sketch = logitshift.Sketch()
    for labels, offsets, weights in chunks:
        sketch.update(labels, offsets, weights)
    blob = sketch.to_bytes()
    if json.loads(blob[8:8 + int.from_bytes(blob[4:8], "little")])["version"] != 1:
        raise SystemExit("run this at commit 0ce7dd8: this code writes another version")
    (here / "sketch_v1.bin").write_bytes(blob)
    result = sketch.solve()
    (here / "sketch_v1.json").write_text(json.dumps(
        {"shift": result.shift, "se": result.se, "n_rows": result.n_rows,
         "n_cells": sketch.n_cells}, indent=1) + "\n")
    print(result)
