"""The data behind dcurves_reference.py: written once, kept as CSV so that dcurves and the
tests read the same rows whatever numpy or scikit-learn version runs later.

- breast_cancer.csv: the rows of ../valprob/breast_cancer.csv (a logistic regression fitted on
  the even rows of scikit-learn's breast-cancer data, applied to the odd rows), with the
  predicted risk ``risk = σ(lp)`` written out at full precision.
- ties.csv: y ~ Bernoulli(risk) with risks rounded to whole percents, so that many rows sit
  exactly on a threshold (ties count as treated), plus rows of risk 0 (label 0) and 1
  (label 1); n = 3000.

Run from the repository root: python tests/data/dcurves/make_data.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def breast_cancer() -> None:
    rows = (HERE.parent / "valprob" / "breast_cancer.csv").read_text().split()[1:]
    y = [int(row.split(",")[0]) for row in rows]
    lp = np.array([float(row.split(",")[1]) for row in rows])
    risk = 1.0 / (1.0 + np.exp(-lp))
    lines = ["y,risk"] + [f"{a},{b!r}" for a, b in zip(y, risk.tolist())]
    (HERE / "breast_cancer.csv").write_text("\n".join(lines) + "\n")


def ties() -> None:
    rng = np.random.default_rng(20261208)
    n = 3000
    risk = np.round(rng.beta(1.2, 3.0, n), 2)
    y = (rng.random(n) < risk).astype(int)
    risk[:20], y[:20] = 0.0, 0
    risk[20:30], y[20:30] = 1.0, 1
    lines = ["y,risk"] + [f"{a},{b!r}" for a, b in zip(y, risk.tolist())]
    (HERE / "ties.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    breast_cancer()
    ties()
