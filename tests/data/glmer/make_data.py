"""The data behind glmer_reference.R, kept as CSV so that R and the tests read the same rows.

grouped.csv: y ~ Bernoulli(σ(offset + μ + u_g)), u_g ~ N(0, τ²) with μ = -1.2, τ = 0.6,
offset ~ N(0, 1); 60 groups of uneven sizes (3 to 400 rows), one of them with every label 0
forced, so that a per-group estimate is infinite there while the random-intercept model is
finite. Run from the repository root: python tests/data/glmer/make_data.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def grouped() -> None:
    rng = np.random.default_rng(11)
    sizes = np.concatenate([[3, 4, 5, 8], rng.integers(10, 400, 56)])
    u = rng.normal(0.0, 0.6, sizes.size)
    rows = []
    for g, (size, effect) in enumerate(zip(sizes, u)):
        offset = rng.normal(0.0, 1.0, size)
        y = (rng.random(size) < 1.0 / (1.0 + np.exp(-(offset - 1.2 + effect)))).astype(int)
        if g == 2:
            y[:] = 0
        rows += [f"{a},{b!r},g{g:02d}" for a, b in zip(y, offset.tolist())]
    (HERE / "grouped.csv").write_text("y,offset,group\n" + "\n".join(rows) + "\n")


if __name__ == "__main__":
    grouped()
