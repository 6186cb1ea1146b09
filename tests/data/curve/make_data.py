"""The synthetic data behind curve_reference.R: written once, kept as CSV so that the R output
and the tests read the same rows whatever numpy version runs later.

synthetic.csv: lp ~ N(-0.5, 1.6²), y ~ Bernoulli(σ(0.4 + 0.75·lp - 0.08·lp²)), n = 3000, with
integer frequency weights 1 to 3: scores too confident, and more so at the ends (a curve
that no recalibration line fits).

Run from the repository root: python tests/data/curve/make_data.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def synthetic() -> None:
    rng = np.random.default_rng(20261208)
    n = 3000
    lp = rng.normal(-0.5, 1.6, n)
    truth = 0.4 + 0.75 * lp - 0.08 * lp ** 2
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-truth))).astype(int)
    w = rng.integers(1, 4, n)
    lines = ["y,lp,w"] + [f"{a},{b!r},{c}" for a, b, c in zip(y, lp.tolist(), w)]
    (HERE / "synthetic.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    synthetic()
