"""Net benefit by the Python package dcurves (1.1.7, with pandas 2), on the rows of
make_data.py, written to dcurves_reference.csv for tests/test_decision.py.

dcurves does not install beside pandas 3, so it runs in a separate environment:

    python -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install dcurves==1.1.7
    /tmp/refvenv/bin/python tests/data/dcurves/dcurves_reference.py

It treats a row when ``risk >= threshold`` and moves risks of exactly 0 and 1 by one machine
epsilon, below and above every threshold.
"""

from pathlib import Path

import pandas as pd
from dcurves import dca

HERE = Path(__file__).parent
THRESHOLDS = [i / 100 for i in range(1, 100)]


def main() -> None:
    parts = []
    for name in ("breast_cancer", "ties"):
        data = pd.read_csv(HERE / f"{name}.csv")
        result = dca(data=data, outcome="y", modelnames=["risk"], thresholds=THRESHOLDS)
        result = result[["model", "threshold", "prevalence", "tp_rate", "fp_rate",
                         "net_benefit"]].copy()
        result.insert(0, "data", name)
        parts.append(result)
    pd.concat(parts).to_csv(HERE / "dcurves_reference.csv", index=False)


if __name__ == "__main__":
    main()
