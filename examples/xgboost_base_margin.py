"""Boost from a first model's scores with XGBoost, starting from their optimal shift.

A first model was trained where positives were common; here they are about e² ≈ 7 times
rarer in the odds, and a feature it never saw matters. Its scores go in as ``base_margin``, so
XGBoost starts from them as they are (``base_score`` is not used). ``shift_dmatrix`` moves the
margin by the optimal shift first, and the same shift goes on every other DMatrix the booster
sees. Run: ``python examples/xgboost_base_margin.py``.
"""

from __future__ import annotations

import numpy as np
import xgboost

from logitshift.boosting import shift_dmatrix

PARAMS = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 3, "eval_metric": "logloss"}
ROUNDS = 10


def make_data(rng: np.random.Generator, n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, the first model's scores (log-odds) and labels from the new population."""
    features = rng.normal(size=(n_rows, 3))
    scores = 1.5 * features[:, 0] - features[:, 1] + rng.normal(0.0, 1.0, n_rows)
    log_odds = scores - 2.0 + 0.8 * features[:, 2]
    labels = (rng.random(n_rows) < 1.0 / (1.0 + np.exp(-log_odds))).astype(np.float64)
    return features, scores, labels


def validation_logloss(dtrain: xgboost.DMatrix, dvalid: xgboost.DMatrix) -> float:
    history: dict = {}
    xgboost.train(PARAMS, dtrain, ROUNDS, evals=[(dvalid, "valid")], evals_result=history,
                  verbose_eval=False)
    return history["valid"]["logloss"][-1]


def main() -> dict[str, float]:
    rng = np.random.default_rng(7)
    train_x, train_scores, train_y = make_data(rng, 4000)
    valid_x, valid_scores, valid_y = make_data(rng, 4000)
    dtrain = xgboost.DMatrix(train_x, label=train_y, base_margin=train_scores)
    dvalid = xgboost.DMatrix(valid_x, label=valid_y, base_margin=valid_scores)
    from_scores = validation_logloss(dtrain, dvalid)

    result = shift_dmatrix(dtrain)
    dvalid.set_base_margin(valid_scores + result.shift)
    from_shifted = validation_logloss(dtrain, dvalid)

    low, high = result.confint()
    print(f"shift {result.shift:.3f} (95% CI {low:.3f} to {high:.3f})")
    print(f"training log loss of the first model's scores: {result.loss_at_zero:.4f}, "
          f"shifted: {result.loss:.4f}")
    print(f"validation log loss after {ROUNDS} rounds from the scores: {from_scores:.4f}, "
          f"from the shifted scores: {from_shifted:.4f}")
    return {"shift": result.shift, "loss_before": result.loss_at_zero,
            "loss_after": result.loss, "valid_from_scores": from_scores,
            "valid_from_shifted": from_shifted}


if __name__ == "__main__":
    main()
